// The image store through the compiled `bunker`, against a real registry (docker-registry 2.8 on
// 127.0.0.1, images built offline with umoci and pushed with skopeo) and real runc: run's --pull
// policies, rmi and image prune around containers that use an image, tag/save/load round trips that
// skopeo reads, archives made by skopeo (docker-archive, OCI, gzip), and bad input, each refused in
// one line with nothing half-made visible: truncated and lying archives, unknown names and
// registries, a pull SIGKILLed mid-download, two pulls of one image at once.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { BunkerEnv, type Result } from "../support/cli-harness.ts";
import { dockerArchive, fixtureDescriptor, imageFixtures, ociArchive, pushFixture, removeImageFixtures } from "../support/image-fixtures.ts";
import { imageBuilds } from "../support/image-builds.ts";
import { startRegistry, type TestRegistry } from "../support/registry.ts";
import { describeWith } from "../support/require.ts";

const NEEDS = ["root", "bin:runc", "bin:docker-registry", "bin:skopeo", "bin:umoci"] as const;

/** The digests of a fixture tag's config and layers, from the layout's manifest. */
function blobsOfFixture(tag: string): { config: string; layers: string[] } {
  const m = JSON.parse(readFileSync(join(imageFixtures().layout, "blobs/sha256", fixtureDescriptor(tag).digest.slice(7)), "utf8")) as { config: { digest: string }; layers: { digest: string }[] };
  return { config: m.config.digest, layers: m.layers.map((l) => l.digest) };
}

/** Each file of a tar: its name, and where its body starts and ends (ustar headers, as skopeo writes them). */
function tarEntries(bytes: Uint8Array): { name: string; start: number; size: number }[] {
  const out: { name: string; start: number; size: number }[] = [];
  const text = (from: number, len: number) => Buffer.from(bytes.subarray(from, from + len)).toString("latin1").replace(/\0.*$/s, "");
  for (let off = 0; off + 512 <= bytes.length; ) {
    const name = text(off, 100);
    if (name === "") break;
    const prefix = text(off + 345, 155);
    const size = parseInt(text(off + 124, 12).trim() || "0", 8);
    out.push({ name: prefix ? `${prefix}/${name}` : name, start: off + 512, size });
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

/** A failed command: the exit code, one `bunker:` line matching `message`, nothing on stdout. */
function expectOneLineError(r: Result, code: number, message: RegExp): void {
  expect({ code: r.code, stdout: r.stdout }).toEqual({ code, stdout: "" });
  const lines = r.stderr.split("\n").filter(Boolean);
  expect(lines).toEqual([expect.stringMatching(/^bunker: /)]);
  expect(lines[0]).toMatch(message);
}

/**
 * Waits until an ingest's data file holds more than `bytes`; returns its size. The download takes a
 * few hundred milliseconds on loopback, so the file is watched without yielding (the puller is
 * another process); gives up after 30 s.
 */
function waitForIngest(data: string, bytes: number): number {
  const deadline = Date.now() + 30_000;
  let seen = 0;
  while (Date.now() < deadline && seen <= bytes) {
    try {
      seen = statSync(data).size;
    } catch {
      seen = 0;
    }
  }
  return seen;
}

function dirEntries(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : [];
}

describeWith([...NEEDS], "images: the store through the CLI", () => {
  let reg: TestRegistry;
  const envs: BunkerEnv[] = [];
  let busybox: string, multilayer: string, big: string;
  let busyboxDigest: string;

  /** A fresh bunker root, state and namespace (disposed after the file). */
  async function freshEnv(): Promise<BunkerEnv> {
    const env = await BunkerEnv.create("bunker-images-store-");
    envs.push(env);
    return env;
  }

  const images = async (env: BunkerEnv) => (await env.run(["images"])).stdout.trimEnd().split("\n").slice(1);

  beforeAll(async () => {
    imageBuilds();
    reg = await startRegistry();
    [busybox, multilayer, big] = [`${reg.host}/test/busybox:1`, `${reg.host}/test/multilayer:1`, `${reg.host}/test/big:1`];
    busyboxDigest = await pushFixture("busybox", reg.host, "test/busybox:1");
    await pushFixture("multilayer", reg.host, "test/multilayer:1");
    await pushFixture("big", reg.host, "test/big:1");
  }, 120_000);
  afterAll(async () => {
    for (const env of envs) await env.dispose();
    await reg?.stop();
    removeImageFixtures();
  }, 60_000);

  test("run --pull never of a missing image: exit 125, one line, nothing made; --pull missing pulls; --pull always re-resolves the tag", async () => {
    const env = await freshEnv();
    for (const mode of [["--rm"], ["-d"]]) {
      const r = await env.run(["run", ...mode, "--pull", "never", "--name", "pn1", busybox, "echo", "hi"]);
      expectOneLineError(r, 125, /image .*test\/busybox:1: not found, and --pull never forbids pulling it/);
      expect(existsSync(join(env.root, "containers", env.namespace, "pn1"))).toBe(false);
      expect(existsSync(join(env.state, env.namespace, "pn1"))).toBe(false);
      expect(dirEntries(join(env.root, "snapshots/overlayfs/by-key"))).toEqual([]);
      expect(await images(env)).toEqual([]);
    }

    expect(await env.run(["run", "--rm", "--pull", "missing", busybox, "cat", "/etc/keep"])).toMatchObject({ code: 0, stdout: "kept\n" });
    expect(await images(env)).toEqual([expect.stringMatching(/test\/busybox\s+1\s/)]);

    // a tag that moves: --pull missing keeps what is stored, --pull always asks the registry again
    await pushFixture("multilayer", reg.host, "test/moving:1");
    const moving = `${reg.host}/test/moving:1`;
    const probe = ["sh", "-c", "test -e /hl/one && echo multilayer; test -e /big.bin && echo big; true"];
    expect(await env.run(["run", "--rm", moving, ...probe])).toMatchObject({ code: 0, stdout: "multilayer\n" });
    await pushFixture("big", reg.host, "test/moving:1");
    const manifestGets = () => reg.requests().filter((q) => q.method === "GET" && q.uri.startsWith("/v2/test/moving/manifests/")).length;
    const before = manifestGets();
    expect(await env.run(["run", "--rm", "--pull", "missing", moving, ...probe])).toEqual({ code: 0, stdout: "multilayer\n", stderr: "" });
    expect(await env.run(["run", "--rm", "--pull", "never", moving, ...probe])).toEqual({ code: 0, stdout: "multilayer\n", stderr: "" });
    expect(manifestGets()).toBe(before);
    expect(await env.run(["run", "--rm", "--pull", "always", moving, ...probe])).toMatchObject({ code: 0, stdout: "big\n" });
    expect(manifestGets()).toBeGreaterThan(before);
    expect(await env.run(["run", "--rm", "--pull", "never", moving, ...probe])).toEqual({ code: 0, stdout: "big\n", stderr: "" });
  }, 120_000);

  test("rmi is refused while a container uses the image, allowed after rm; rmi -f untags only; image prune -a keeps a live container's layers, then empties the stores", async () => {
    const env = await freshEnv();
    expect((await env.run(["pull", "-q", busybox])).code).toBe(0);
    expect((await env.run(["pull", "-q", multilayer])).code).toBe(0);
    expect(await env.run(["run", "-d", "--name", "u1", busybox, "sleep", "1000"])).toMatchObject({ code: 0 });
    const refused = await env.run(["rmi", busybox]);
    expectOneLineError(refused, 1, new RegExp(`rmi .*: image ${reg.host}/test/busybox:1 is used by container ${env.namespace}/u1`));
    expect(await images(env)).toHaveLength(2);
    expect((await env.run(["rm", "-f", "u1"])).code).toBe(0);
    expect(await env.run(["rmi", busybox])).toEqual({ code: 0, stdout: `Untagged: ${busybox}\n`, stderr: "" });
    expect(await images(env)).toEqual([expect.stringMatching(/test\/multilayer\s+1\s/)]);

    // rmi -f with a container on the image: only the name goes
    expect(await env.run(["run", "-d", "--name", "u2", multilayer, "sleep", "1000"])).toMatchObject({ code: 0 });
    expect(await env.run(["rmi", "-f", multilayer])).toEqual({ code: 0, stdout: `Untagged: ${multilayer}\n`, stderr: "" });
    expect(await images(env)).toEqual([]);
    const store = join(env.root, "snapshots/overlayfs");
    const chains = dirEntries(join(store, "by-chain"));
    expect(chains).toHaveLength(2);
    const prune = await env.run(["image", "prune", "-a"]);
    expect(prune.code).toBe(0);
    // the container's two layers survive; every blob goes (no image is named any more)
    expect(dirEntries(join(store, "by-chain")).sort()).toEqual(chains.sort());
    expect(dirEntries(join(env.root, "content/blobs/sha256"))).toEqual([]);
    expect(await env.run(["exec", "u2", "sh", "-c", "cat /etc/keep /hl/two; ls /opt/dir"])).toEqual({ code: 0, stdout: "kept\nlinked twice\nnew\n", stderr: "" });

    expect((await env.run(["rm", "-f", "u2"])).code).toBe(0);
    expect((await env.run(["image", "prune", "-a"])).stdout).toMatch(/Deleted 0 blobs \(0 bytes\) and 2 snapshots/);
    expect(dirEntries(join(env.root, "content/blobs/sha256"))).toEqual([]);
    expect(dirEntries(join(env.root, "content/ingest"))).toEqual([]);
    for (const sub of ["by-chain", "by-key", "tmp"]) expect(dirEntries(join(store, sub))).toEqual([]);
    // no snapshot dir is left (numbered dirs are the layers' trees)
    expect(dirEntries(store).filter((f) => /^\d+$/.test(f))).toEqual([]);
  }, 120_000);

  test("rmi by image ID: refused while the image has several names, rmi -f removes them all, one name goes alone", async () => {
    const env = await freshEnv();
    expect((await env.run(["pull", "-q", busybox])).code).toBe(0);
    expect((await env.run(["tag", busybox, "mine/alias:1"])).code).toBe(0);
    const ids = (await env.run(["images", "-q"])).stdout.trim().split("\n");
    expect(ids).toEqual([ids[0]!, ids[0]!]);
    const id = ids[0]!;
    expectOneLineError(await env.run(["rmi", id]), 1, new RegExp(`image ${id} is named ${reg.host}/test/busybox:1, docker.io/mine/alias:1: remove a name, or rmi -f`));
    expect(await images(env)).toHaveLength(2);
    expect(await env.run(["rmi", "-f", id])).toEqual({ code: 0, stdout: `Untagged: ${busybox}\nUntagged: mine/alias:1\n`, stderr: "" });
    expect(await images(env)).toEqual([]);
    expect((await env.run(["pull", "-q", busybox])).code).toBe(0);
    expect(await env.run(["rmi", id])).toEqual({ code: 0, stdout: `Untagged: ${busybox}\n`, stderr: "" });
    expect(await images(env)).toEqual([]);
  }, 60_000);

  test("tag, save -o, load -i into a fresh root; skopeo reads the saved file as oci-archive and docker-archive", async () => {
    const env = await freshEnv();
    expect((await env.run(["pull", "-q", busybox])).code).toBe(0);
    expect((await env.run(["pull", "-q", multilayer])).code).toBe(0);
    expect(await env.run(["tag", busybox, "mine/bb:v1"])).toEqual({ code: 0, stdout: "", stderr: "" });
    const listed = await images(env);
    const idOf = (rows: string[], repo: string) => rows.find((r) => r.startsWith(`${repo} `))?.split(/\s{3,}/)[2];
    expect(idOf(listed, "mine/bb")).toBe(idOf(listed, `${reg.host}/test/busybox`));
    const saved = join(env.dir, "saved.tar");
    expect(await env.run(["save", "-o", saved, "mine/bb:v1", multilayer])).toEqual({ code: 0, stdout: "", stderr: "" });
    const oci = Bun.spawnSync(["skopeo", "inspect", `oci-archive:${saved}:v1`]);
    expect(oci.exitCode).toBe(0);
    expect(JSON.parse(oci.stdout.toString()).Layers).toEqual(blobsOfFixture("busybox").layers);
    const docker = Bun.spawnSync(["skopeo", "inspect", `docker-archive:${saved}:${multilayer}`]);
    expect(docker.exitCode).toBe(0);
    expect(JSON.parse(docker.stdout.toString()).Layers).toHaveLength(2);

    const other = await freshEnv();
    const loaded = await other.run(["load", "-i", saved]);
    expect(loaded).toEqual({ code: 0, stdout: `Loaded image: mine/bb:v1\nLoaded image: ${multilayer}\n`, stderr: "" });
    // the same names and IMAGE IDs as where they were saved from
    const columns = (rows: string[]) => rows.map((r) => r.split(/\s{3,}/).slice(0, 3).join(" ")).sort();
    expect(columns(await images(other))).toEqual(columns((await images(env)).filter((r) => !r.startsWith(`${reg.host}/test/busybox `))));
    expect(await other.run(["run", "--rm", "--pull", "never", "mine/bb:v1", "cat", "/etc/keep"])).toEqual({ code: 0, stdout: "kept\n", stderr: "" });
    expect(await other.run(["run", "--rm", "--pull", "never", multilayer, "ls", "/opt/dir"])).toEqual({ code: 0, stdout: "new\n", stderr: "" });
  }, 120_000);

  test("save of an image known by digest only: docker's manifest.json lists it untagged (docker load takes only repo:tag)", async () => {
    const env = await freshEnv();
    const byDigest = `${reg.host}/test/busybox@${busyboxDigest}`;
    expect(await env.run(["pull", "-q", byDigest])).toEqual({ code: 0, stdout: `${byDigest}\n`, stderr: "" });
    expect(await images(env)).toEqual([expect.stringMatching(/test\/busybox\s+<none>\s/)]);
    expect((await env.run(["tag", byDigest, "mine/tagged:1"])).code).toBe(0);
    const saved = join(env.dir, "by-digest.tar");
    expect(await env.run(["save", "-o", saved, byDigest, "mine/tagged:1"])).toEqual({ code: 0, stdout: "", stderr: "" });
    const bytes = new Uint8Array(readFileSync(saved));
    const manifest = tarEntries(bytes).find((e) => e.name === "manifest.json")!;
    const entries = JSON.parse(Buffer.from(bytes.subarray(manifest.start, manifest.start + manifest.size)).toString()) as { RepoTags: string[] }[];
    expect(entries.map((e) => e.RepoTags)).toEqual([[], ["docker.io/mine/tagged:1"]]);
    const other = await freshEnv();
    expect(await other.run(["load", "-i", saved])).toEqual({ code: 0, stdout: `Loaded image: ${byDigest}\nLoaded image: mine/tagged:1\n`, stderr: "" });
    expect(await other.run(["run", "--rm", "--pull", "never", byDigest, "cat", "/etc/keep"])).toEqual({ code: 0, stdout: "kept\n", stderr: "" });
  }, 60_000);

  test("load: a docker-archive and an OCI archive made by skopeo, and a gzip-compressed archive", async () => {
    const env = await freshEnv();
    const dockerTar = dockerArchive("multilayer", join(env.dir, "docker.tar"), "example.com/from/docker:1");
    const ociTar = ociArchive("busybox", join(env.dir, "oci.tar"), "example.com/from/oci:2");
    const gz = join(env.dir, "docker.tar.gz");
    writeFileSync(gz, gzipSync(readFileSync(dockerArchive("busybox", join(env.dir, "docker2.tar"), "example.com/from/gzip:3"))));
    expect(await env.run(["load", "-i", dockerTar])).toEqual({ code: 0, stdout: "Loaded image: example.com/from/docker:1\n", stderr: "" });
    expect(await env.run(["load", "-i", ociTar])).toEqual({ code: 0, stdout: "Loaded image: example.com/from/oci:2\n", stderr: "" });
    expect(await env.run(["load", "-i", gz])).toEqual({ code: 0, stdout: "Loaded image: example.com/from/gzip:3\n", stderr: "" });
    expect((await images(env)).map((r) => r.split(/\s{3,}/).slice(0, 2))).toEqual([
      ["example.com/from/docker", "1"],
      ["example.com/from/oci", "2"],
      ["example.com/from/gzip", "3"],
    ]);
    expect(await env.run(["run", "--rm", "--pull", "never", "example.com/from/docker:1", "sh", "-c", "ls /opt/dir; test -e /etc/gone || echo gone"])).toEqual({ code: 0, stdout: "new\ngone\n", stderr: "" });
    expect(await env.run(["run", "--rm", "--pull", "never", "example.com/from/oci:2", "cat", "/etc/keep"])).toEqual({ code: 0, stdout: "kept\n", stderr: "" });
    expect(await env.run(["run", "--rm", "--pull", "never", "example.com/from/gzip:3", "cat", "/etc/keep"])).toEqual({ code: 0, stdout: "kept\n", stderr: "" });
  }, 120_000);

  test("bad archives: truncated mid-layer, a blob that does not hash to its name, a layer that does not match its diff ID; one line each, nothing named", async () => {
    const env = await freshEnv();
    const fresh = ociArchive("multilayer", join(env.dir, "ml-oci.tar"), "example.com/bad/oci:1");
    const bytes = new Uint8Array(readFileSync(fresh));
    const layer = blobsOfFixture("multilayer").layers[0]!;
    const entry = tarEntries(bytes).find((e) => e.name === `blobs/sha256/${layer.slice(7)}`)!;
    expect(entry.size).toBeGreaterThan(100_000);

    const truncated = join(env.dir, "truncated.tar");
    writeFileSync(truncated, bytes.subarray(0, entry.start + Math.floor(entry.size / 2)));
    expectOneLineError(await env.run(["load", "-i", truncated]), 1, /truncated/);

    const lying = join(env.dir, "lying.tar");
    const flipped = bytes.slice();
    flipped[entry.start + Math.floor(entry.size / 2)]! ^= 0xff;
    writeFileSync(lying, flipped);
    expectOneLineError(await env.run(["load", "-i", lying]), 1, new RegExp(`blobs/sha256/${layer.slice(7)} hashes to sha256:[0-9a-f]{64}: the archive is corrupt`));

    // a docker-archive names layers by file, not digest: the bytes are caught by the config's diff IDs
    const dockerBytes = new Uint8Array(readFileSync(dockerArchive("multilayer", join(env.dir, "ml-docker.tar"), "example.com/bad/docker:1")));
    const upper = tarEntries(dockerBytes).filter((e) => e.name.endsWith(".tar") && e.size > 0).sort((a, b) => a.size - b.size)[0]!;
    // one byte of a file's body inside the (uncompressed) upper layer: both tars stay valid
    const inner = tarEntries(dockerBytes.subarray(upper.start, upper.start + upper.size)).find((e) => e.name.endsWith("opt/dir/new"))!;
    expect(inner.size).toBeGreaterThan(0);
    const badDocker = join(env.dir, "bad-docker.tar");
    const patched = dockerBytes.slice();
    patched[upper.start + inner.start]! ^= 0x01;
    writeFileSync(badDocker, patched);
    expectOneLineError(await env.run(["load", "-i", badDocker]), 1, /unpacks to sha256:[0-9a-f]{64}, but the config says sha256:/);

    expect(await images(env)).toEqual([]);
    expect(dirEntries(join(env.root, "content/ingest"))).toEqual([]);
    // the lying blob is not stored under the name it claimed, and no container layer or temp is left
    expect(existsSync(join(env.root, "content/blobs", layer.replace(":", "/")))).toBe(false);
    expect(dirEntries(join(env.root, "snapshots/overlayfs/tmp"))).toEqual([]);
    expect(dirEntries(join(env.root, "snapshots/overlayfs/by-key"))).toEqual([]);
    // the same archive intact loads
    expect((await env.run(["load", "-i", fresh])).code).toBe(0);
  }, 120_000);

  test("unknown image, unknown tag, a registry that refuses connections: one line each, exit 1 (125 for run), nothing named", async () => {
    const env = await freshEnv();
    expectOneLineError(await env.run(["pull", `${reg.host}/test/nope:1`]), 1, /test\/nope:1: not found/);
    expectOneLineError(await env.run(["pull", `${reg.host}/test/busybox:nope`]), 1, /test\/busybox:nope: not found/);
    // a port nothing listens on: bind one, close it
    const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const closed = server.port;
    server.stop(true);
    expectOneLineError(await env.run(["pull", `127.0.0.1:${closed}/test/busybox:1`]), 1, /cannot reach http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
    expectOneLineError(await env.run(["run", "--rm", `127.0.0.1:${closed}/test/busybox:1`, "true"]), 125, /ECONNREFUSED/);
    expectOneLineError(await env.run(["run", "-d", `${reg.host}/test/nope:1`, "true"]), 125, /not found/);
    expectOneLineError(await env.run(["image", "inspect", "nothing:here"]), 1, /image nothing:here: not found/);
    expectOneLineError(await env.run(["rmi", "nothing:here"]), 1, /image nothing:here: not found/);
    expect(await images(env)).toEqual([]);
    expect(dirEntries(join(env.root, "containers", env.namespace))).toEqual([]);
  }, 60_000);

  test("a registry that serves a corrupted layer: the unpack reading it as it downloads reports the digest mismatch; nothing named, no snapshot, no temp", async () => {
    // a registry of its own: the shared one's blobs must stay whole
    const liar = await startRegistry();
    try {
      await pushFixture("busybox", liar.host, "test/liar:1");
      const manifest = JSON.parse(readFileSync(join(imageFixtures().layout, "blobs/sha256", fixtureDescriptor("busybox").digest.slice(7)), "utf8"));
      const layer = manifest.layers[0] as { digest: string; size: number };
      writeFileSync(liar.blobFile(layer.digest), new Uint8Array(layer.size).fill(0x5a));
      const env = await freshEnv();
      const failed = await env.run(["pull", `${liar.host}/test/liar:1`]);
      // progress lines, then the error: no "… in 0.1s" summary for a pull that failed
      expect(failed.stderr).not.toMatch(/ in \d+\.\ds\n/);
      expect(failed.stderr.trimEnd().split("\n").at(-1)).toMatch(new RegExp(`^bunker: blob ${layer.digest} from ${liar.host}/test/liar: digest mismatch`));
      expectOneLineError(await env.run(["pull", "-q", `${liar.host}/test/liar:1`]), 1, new RegExp(`blob ${layer.digest} from ${liar.host}/test/liar: digest mismatch`));
      expect(await images(env)).toEqual([]);
      expect(existsSync(join(env.root, "content/blobs/sha256", layer.digest.slice(7)))).toBe(false);
      expect(dirEntries(join(env.root, "content/ingest"))).toEqual([]);
      expect(dirEntries(join(env.root, "snapshots/overlayfs/by-chain"))).toEqual([]);
      expect(dirEntries(join(env.root, "snapshots/overlayfs/tmp")).filter((n) => !n.startsWith("spare."))).toEqual([]);
    } finally {
      await liar.stop();
    }
  }, 60_000);

  test("a pull SIGKILLed mid-download names nothing; the next pull resumes and completes", async () => {
    const env = await freshEnv();
    const layer = blobsOfFixture("big").layers[1]!;
    const data = join(env.root, "content/ingest", layer.slice(7), "data");
    const proc = Bun.spawn([env.bunker, ...env.globals(), "pull", "-q", big], { env: env.spawnEnv(), stdin: "ignore", stdout: "ignore", stderr: "ignore" });
    const seen = waitForIngest(data, 4 << 20);
    process.kill(proc.pid, "SIGKILL");
    await proc.exited;
    expect(proc.signalCode).toBe("SIGKILL");
    expect(seen).toBeGreaterThan(4 << 20);
    expect(await images(env)).toEqual([]);
    expect(existsSync(join(env.root, "content/blobs", layer.replace(":", "/")))).toBe(false);

    const mark = reg.requests().length;
    expect(await env.run(["pull", "-q", big])).toEqual({ code: 0, stdout: `${big}\n`, stderr: "" });
    expect(await images(env)).toEqual([expect.stringMatching(/test\/big\s+1\s/)]);
    const resumed = reg.requests().slice(mark).filter((q) => q.method === "GET" && q.uri.endsWith(`/blobs/${layer}`));
    expect(resumed).toHaveLength(1);
    expect(resumed[0]!.written).toBeLessThan(statSync(join(env.root, "content/blobs", layer.replace(":", "/"))).size);
    expect(dirEntries(join(env.root, "content/ingest"))).toEqual([]);
    expect(await env.run(["run", "--rm", big, "ls", "-l", "/big.bin"])).toMatchObject({ code: 0, stdout: expect.stringContaining(String(48 << 20)) });
  }, 120_000);

  test("image prune while a pull is mid-download waits for it: the pull completes whole, and nothing it stored is swept", async () => {
    const env = await freshEnv();
    const layer = blobsOfFixture("big").layers[1]!;
    const pulling = Bun.spawn([env.bunker, ...env.globals(), "pull", "-q", big], { env: env.spawnEnv(), stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    // by the time the big layer streams in, the manifest, the config and the busybox layer are committed and not yet named
    expect(waitForIngest(join(env.root, "content/ingest", layer.slice(7), "data"), 1 << 20)).toBeGreaterThan(1 << 20);
    const prune = await env.run(["image", "prune"]);
    const pulled = { code: await pulling.exited, stdout: await new Response(pulling.stdout).text(), stderr: await new Response(pulling.stderr).text() };
    expect(pulled).toEqual({ code: 0, stdout: `${big}\n`, stderr: "" });
    expect(prune).toEqual({ code: 0, stdout: expect.stringMatching(/^Deleted 0 blobs \(0 bytes\) and 0 snapshots/), stderr: "" });
    expect(await images(env)).toEqual([expect.stringMatching(/test\/big\s+1\s/)]);
    expect(await env.run(["run", "--rm", "--pull", "never", big, "cat", "/etc/keep"])).toEqual({ code: 0, stdout: "kept\n", stderr: "" });
  }, 120_000);

  test("two bunker pull processes of one image both succeed, and each blob is fetched once", async () => {
    const env = await freshEnv();
    const { config, layers } = blobsOfFixture("big");
    const mark = reg.requests().length;
    const pull = () => Bun.spawn([env.bunker, ...env.globals(), "pull", "-q", big], { env: env.spawnEnv(), stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const procs = [pull(), pull()];
    const results = await Promise.all(procs.map(async (p) => ({ code: await p.exited, stdout: await new Response(p.stdout).text(), stderr: await new Response(p.stderr).text() })));
    for (const r of results) expect(r).toEqual({ code: 0, stdout: `${big}\n`, stderr: "" });
    const gets = reg.requests().slice(mark).filter((q) => q.method === "GET" && q.uri.includes("/blobs/"));
    for (const digest of [config, ...layers]) expect(gets.filter((q) => q.uri.endsWith(`/blobs/${digest}`))).toHaveLength(1);
    expect(await images(env)).toEqual([expect.stringMatching(/test\/big\s+1\s/)]);
    expect(await env.run(["run", "--rm", big, "cat", "/etc/keep"])).toEqual({ code: 0, stdout: "kept\n", stderr: "" });
  }, 120_000);
});
