// Pulls from a real registry (Debian's docker-registry 2.8 on 127.0.0.1) of images built offline
// with umoci and pushed with skopeo (tests/support/image-fixtures.ts): tags and digests, OCI index
// and Docker list, platform choice, Bearer and basic auth, a corrupted blob, a download SIGKILLed
// mid-layer and resumed with a Range request, two pulling processes, and unknown names. The
// registry's own log says what it served (bytes per request), so "resumed" and "downloaded once"
// are checked from the server's side.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ContentStore } from "../../src/content/store.ts";
import { digestOf } from "../../src/content/digest.ts";
import { MediaType } from "../../src/content/oci.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import { fetchImage, type PullProgressEvent } from "../../src/registry/pull.ts";
import { parsePlatform } from "../../src/registry/platform.ts";
import { readCredentials } from "../../src/registry/credentials.ts";
import { BIG_LAYER_BYTES, fixtureDescriptor, imageFixtures, pushFixture, removeImageFixtures } from "../support/image-fixtures.ts";
import { startRegistry, TEST_PASSWORD, TEST_USER, type TestRegistry } from "../support/registry.ts";
import { describeWith } from "../support/require.ts";

const PULL_CHILD = join(import.meta.dir, "../support/pull-child.ts");
const anonymous = () => new RegistryClient({ credentials: () => null });
const creds = { username: TEST_USER, password: TEST_PASSWORD };

const tmp = mkdtempSync(join(tmpdir(), "bunker-pull-"));
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
  removeImageFixtures();
});

function freshStore(): ContentStore {
  return new ContentStore(mkdtempSync(join(tmp, "root-")));
}

/** Runs pull-child.ts; resolves with its JSON lines when it exits. */
function pullChild(root: string, ref: string, stopAt?: number) {
  const argv = [process.execPath, PULL_CHILD, root, ref, ...(stopAt === undefined ? [] : [String(stopAt)])];
  const proc = Bun.spawn(argv, { stdout: "pipe", stderr: "inherit" });
  const lines: Record<string, any>[] = [];
  const reading = (async () => {
    let buf = "";
    for await (const chunk of proc.stdout) {
      buf += new TextDecoder().decode(chunk);
      for (let nl; (nl = buf.indexOf("\n")) >= 0; buf = buf.slice(nl + 1)) lines.push(JSON.parse(buf.slice(0, nl)));
    }
  })();
  return { proc, lines, done: async () => (await proc.exited, await reading, lines) };
}

const blobGets = (r: TestRegistry, digest: string) => r.requests().filter((q) => q.method === "GET" && q.uri.endsWith(`/blobs/${digest}`));

describeWith(["bin:docker-registry", "bin:skopeo", "bin:umoci", "bin:openssl"], "registry pull", () => {
  let reg: TestRegistry;
  const pushed: Record<string, string> = {};

  beforeAll(async () => {
    imageFixtures();
    reg = await startRegistry();
    pushed.busybox = await pushFixture("busybox", reg.host, "test/busybox:latest");
    pushed.multi = await pushFixture("multi", reg.host, "test/multi:latest", { all: true });
    pushed.multiDocker = await pushFixture("multi", reg.host, "test/multi-docker:latest", { all: true, format: "v2s2" });
    pushed.docker = await pushFixture("busybox", reg.host, "test/busybox-docker:v2s2", { format: "v2s2" });
    pushed.multilayer = await pushFixture("multilayer", reg.host, "test/multilayer:1");
    pushed.big = await pushFixture("big", reg.host, "test/big:latest");
  }, 120_000);
  afterAll(async () => {
    await reg?.stop();
  });

  test("by tag: index-less OCI image, every blob verified into the store; skopeo reads the layout once named", async () => {
    const store = freshStore();
    const events: PullProgressEvent[] = [];
    const image = await fetchImage(store, anonymous(), `${reg.host}/test/busybox`, { onProgress: (e) => events.push(e) });
    expect(image.name).toBe(`${reg.host}/test/busybox:latest`);
    // umoci's manifests carry no mediaType field: the type comes from the response's Content-Type.
    expect(JSON.parse(await Bun.file(store.blobPath(pushed.busybox!)).text()).mediaType).toBeUndefined();
    expect(image.target).toEqual({ mediaType: MediaType.ociManifest, digest: pushed.busybox!, size: image.target.size });
    expect(image.manifest).toEqual(image.target);
    expect(image.configJson.os).toBe("linux");
    expect(image.configJson.architecture).toBe("amd64");
    expect(image.layers).toHaveLength(1);
    for (const d of [image.manifest, image.config, ...image.layers]) expect(digestOf(await Bun.file(store.blobPath(d.digest)).bytes())).toBe(d.digest);
    const last = events.at(-1)!;
    expect(last.totalCurrent).toBe(last.totalSize);
    expect(last.totalSize).toBe(image.config.size + image.layers[0]!.size);
    expect(readdirSync(join(store.dir, "ingest"))).toEqual([]);
    expect(store.names.listImages()).toEqual([]); // naming is the image store's job

    await store.names.putImage(image.name, image.target);
    const inspect = Bun.spawnSync(["skopeo", "inspect", `oci:${store.dir}:latest`]);
    expect(inspect.stderr.toString()).toBe("");
    expect(JSON.parse(inspect.stdout.toString()).Digest).toBe(pushed.busybox!);
  });

  test("by digest, and again: blobs already stored are not downloaded twice", async () => {
    const store = freshStore();
    const before = reg.requests().length;
    const image = await fetchImage(store, anonymous(), `${reg.host}/test/busybox@${pushed.busybox}`);
    expect(image.name).toBe(`${reg.host}/test/busybox@${pushed.busybox}`);
    expect(image.target.digest).toBe(pushed.busybox!);
    const layer = image.layers[0]!.digest;
    const gets = () => reg.requests().slice(before).filter((q) => q.uri.endsWith(`/blobs/${layer}`)).length;
    expect(gets()).toBe(1);
    await fetchImage(store, anonymous(), `${reg.host}/test/busybox:latest`);
    expect(gets()).toBe(1);
  });

  test("an OCI index: the platform's manifest, the attestation skipped, a missing platform listed", async () => {
    const store = freshStore();
    const amd64 = await fetchImage(store, anonymous(), `${reg.host}/test/multi:latest`, { platform: parsePlatform("linux/amd64") });
    expect(amd64.target).toMatchObject({ mediaType: MediaType.ociIndex, digest: pushed.multi! });
    expect(store.has(pushed.multi!)).toBe(true);
    expect(amd64.manifest.digest).toBe(fixtureDescriptor("busybox").digest);
    const arm64 = await fetchImage(store, anonymous(), `${reg.host}/test/multi:latest`, { platform: parsePlatform("linux/arm64") });
    expect(arm64.manifest.digest).toBe(fixtureDescriptor("arm64").digest);
    expect(arm64.configJson.architecture).toBe("arm64");
    await expect(fetchImage(freshStore(), anonymous(), `${reg.host}/test/multi:latest`, { platform: parsePlatform("linux/s390x") })).rejects.toThrow(
      `${reg.host}/test/multi:latest: no image for platform linux/s390x (available: linux/amd64, linux/arm64/v8)`,
    );
  });

  test("a Docker manifest list and a Docker schema2 manifest", async () => {
    const store = freshStore();
    const list = await fetchImage(store, anonymous(), `${reg.host}/test/multi-docker:latest`, { platform: parsePlatform("linux/arm64") });
    expect(list.target).toMatchObject({ mediaType: MediaType.dockerManifestList, digest: pushed.multiDocker! });
    expect(list.manifest.mediaType).toBe(MediaType.dockerManifest);
    expect(list.configJson.architecture).toBe("arm64");
    const single = await fetchImage(store, anonymous(), `${reg.host}/test/busybox-docker:v2s2`);
    expect(single.target).toMatchObject({ mediaType: MediaType.dockerManifest, digest: pushed.docker! });
    expect(single.config.mediaType).toBe(MediaType.dockerConfig);
    expect(single.layers[0]!.mediaType).toBe(MediaType.dockerLayerGzip);
    await expect(fetchImage(store, anonymous(), `${reg.host}/test/busybox-docker:v2s2`, { platform: parsePlatform("linux/arm64") })).rejects.toThrow(
      /no image for platform linux\/arm64\/v8 \(the image is linux\/amd64\)/,
    );
  });

  test("the multi-layer image: every layer, in order", async () => {
    const image = await fetchImage(freshStore(), anonymous(), `${reg.host}/test/multilayer:1`);
    expect(image.target.digest).toBe(pushed.multilayer!);
    expect(image.layers).toHaveLength(2);
    expect(image.configJson.rootfs?.diff_ids).toHaveLength(2);
  });

  test("unknown repository, tag and digest are one-line not-found errors", async () => {
    const store = freshStore();
    // distribution 2.8's filesystem driver answers an unknown repository with MANIFEST_UNKNOWN too.
    await expect(fetchImage(store, anonymous(), `${reg.host}/test/nope:latest`)).rejects.toThrow(
      new RegExp(`^${reg.host}/test/nope:latest: not found \\((NAME|MANIFEST)_UNKNOWN: [a-z ]+\\)$`),
    );
    await expect(fetchImage(store, anonymous(), `${reg.host}/test/busybox:nope`)).rejects.toThrow(
      `${reg.host}/test/busybox:nope: not found (MANIFEST_UNKNOWN: manifest unknown)`,
    );
    const missing = digestOf("nothing");
    await expect(fetchImage(store, anonymous(), `${reg.host}/test/busybox@${missing}`)).rejects.toThrow(/not found \(MANIFEST_UNKNOWN/);
    expect(store.list()).toEqual([]);
  });

  test("a download SIGKILLed mid-layer resumes with a Range request for the rest", async () => {
    const store = freshStore();
    const ref = `${reg.host}/test/big:latest`;
    const child = pullChild(store.dir.replace(/\/content$/, ""), ref, 8 << 20);
    const deadline = Date.now() + 60_000;
    while (!child.lines.some((l) => "stopped" in l || "error" in l || "done" in l)) {
      if (Date.now() > deadline) throw new Error("the pulling child never reached the big layer");
      await Bun.sleep(20);
    }
    const stop = child.lines.find((l) => "stopped" in l);
    expect(stop).toBeDefined();
    process.kill(child.proc.pid, "SIGKILL");
    await child.done();
    const big = stop!.digest as string;
    const partial = Bun.file(join(store.dir, "ingest", big.slice(7), "data")).size;
    expect(partial).toBeGreaterThanOrEqual(8 << 20);
    const image = await fetchImage(store, anonymous(), ref);
    const layer = image.layers.find((l) => l.digest === big)!;
    expect(layer.size).toBeGreaterThan(BIG_LAYER_BYTES);
    const served = blobGets(reg, big).map((q) => ({ status: q.status, written: q.written }));
    expect(served.at(-1)).toEqual({ status: 206, written: layer.size - partial });
    expect(digestOf(await Bun.file(store.blobPath(big)).bytes())).toBe(big);
  }, 120_000);

  test("two processes pulling one image at once download each blob once", async () => {
    const root = mkdtempSync(join(tmp, "root-"));
    const image = await fetchImage(freshStore(), anonymous(), `${reg.host}/test/multilayer:1`); // learn the blobs
    const counts = () => Object.fromEntries([image.config, ...image.layers].map((d) => [d.digest, blobGets(reg, d.digest).length]));
    const before = counts();
    const [a, b] = [pullChild(root, `${reg.host}/test/multilayer:1`), pullChild(root, `${reg.host}/test/multilayer:1`)];
    const [la, lb] = await Promise.all([a.done(), b.done()]);
    expect([a.proc.exitCode, b.proc.exitCode]).toEqual([0, 0]);
    expect(la.at(-1)!.done.target).toBe(pushed.multilayer!);
    expect(lb.at(-1)!.done.target).toBe(pushed.multilayer!);
    const after = counts();
    for (const d of Object.keys(after)) expect(after[d]! - before[d]!).toBe(1);
    expect(readdirSync(join(root, "content/ingest"))).toEqual([]);
  }, 60_000);
});

describeWith(["bin:docker-registry", "bin:skopeo", "bin:umoci", "bin:openssl"], "registry pull: auth and corruption", () => {
  const registries: TestRegistry[] = [];
  beforeAll(() => {
    imageFixtures();
  });
  afterAll(async () => {
    for (const r of registries) await r.stop();
  });

  test("Bearer tokens: credentials sent to the realm, token scoped to the repository; anonymous and wrong ones refused", async () => {
    const reg = await startRegistry({ auth: "token" });
    registries.push(reg);
    const digest = await pushFixture("busybox", reg.host, "private/busybox:latest", { creds });
    const client = new RegistryClient({ credentials: (h) => (h === reg.host ? creds : null) });
    const image = await fetchImage(freshStore(), client, `${reg.host}/private/busybox:latest`);
    expect(image.target.digest).toBe(digest);
    const pulls = reg.tokenRequests.filter((t) => t.scope === "repository:private/busybox:pull");
    expect(pulls.length).toBeGreaterThanOrEqual(1);
    expect(pulls.every((t) => t.user === TEST_USER && t.granted)).toBe(true);
    // One token serves the whole pull (manifest, config, layers): the cache works.
    expect(pulls).toHaveLength(1);

    const prefix = `^${reg.host}/private/busybox:latest: http://127\\.0\\.0\\.1:\\d+ refused the`;
    await expect(fetchImage(freshStore(), anonymous(), `${reg.host}/private/busybox:latest`)).rejects.toThrow(
      new RegExp(`${prefix} anonymous token request \\(HTTP 401\\)$`),
    );
    const wrong = new RegistryClient({ credentials: () => ({ username: TEST_USER, password: "wrong" }) });
    await expect(fetchImage(freshStore(), wrong, `${reg.host}/private/busybox:latest`)).rejects.toThrow(
      new RegExp(`${prefix} credentials \\(HTTP 401\\)$`),
    );
    expect(reg.tokenRequests.filter((t) => !t.granted).map((t) => t.user)).toEqual([null, TEST_USER]);
  }, 60_000);

  test("Basic auth: credentials from docker's config.json; none and wrong ones refused", async () => {
    const reg = await startRegistry({ auth: "basic" });
    registries.push(reg);
    const digest = await pushFixture("busybox", reg.host, "basic/busybox:latest", { creds });
    const config = join(tmp, "docker-config.json");
    writeFileSync(config, JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from(`${TEST_USER}:${TEST_PASSWORD}`).toString("base64") } } }));
    const client = new RegistryClient({ credentials: (h) => readCredentials(h, config) });
    expect((await fetchImage(freshStore(), client, `${reg.host}/basic/busybox:latest`)).target.digest).toBe(digest);
    await expect(fetchImage(freshStore(), anonymous(), `${reg.host}/basic/busybox:latest`)).rejects.toThrow(
      `${reg.host}/basic/busybox:latest: ${reg.host} requires a login (no credentials; run bunker login ${reg.host})`,
    );
    const wrong = new RegistryClient({ credentials: () => ({ username: TEST_USER, password: "wrong" }) });
    await expect(fetchImage(freshStore(), wrong, `${reg.host}/basic/busybox:latest`)).rejects.toThrow(
      `${reg.host}/basic/busybox:latest: ${reg.host} refused our credentials (HTTP 401)`,
    );
  }, 60_000);

  test("a blob redirect to another host is followed without our Authorization", async () => {
    const reg = await startRegistry({ auth: "basic" });
    registries.push(reg);
    const digest = await pushFixture("busybox", reg.host, "basic/redirected:latest", { creds });
    // Blob storage elsewhere (as S3 behind Docker Hub): another loopback address, serving the
    // registry's own blob files, recording what it was sent.
    const storageSaw: (string | null)[] = [];
    const storage = Bun.serve({
      hostname: "127.0.0.2",
      port: 0,
      fetch(req) {
        storageSaw.push(req.headers.get("authorization"));
        return new Response(Bun.file(reg.blobFile(new URL(req.url).pathname.split("/").pop()!)));
      },
    });
    // The registry's front: everything proxied, except blob GETs, which redirect to the storage.
    const frontSawAuth: boolean[] = [];
    const front = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(req) {
        const url = new URL(req.url);
        frontSawAuth.push(req.headers.has("authorization"));
        const blob = /\/blobs\/(sha256:[a-f0-9]{64})$/.exec(url.pathname);
        if (req.method === "GET" && blob && req.headers.has("authorization")) {
          return new Response(null, { status: 307, headers: { Location: `http://127.0.0.2:${storage.port}/signed/${blob[1]}` } });
        }
        const headers = new Headers(req.headers);
        headers.delete("host");
        return fetch(`http://${reg.host}${url.pathname}${url.search}`, { method: req.method, headers, redirect: "manual" });
      },
    });
    try {
      const frontHost = `127.0.0.1:${front.port}`;
      const client = new RegistryClient({ credentials: (h) => (h === frontHost ? creds : null) });
      const image = await fetchImage(freshStore(), client, `${frontHost}/basic/redirected:latest`);
      expect(image.target.digest).toBe(digest);
      expect(frontSawAuth).toContain(true);
      expect(storageSaw).toHaveLength(2); // the config and the layer
      expect(storageSaw).toEqual([null, null]);
    } finally {
      front.stop(true);
      storage.stop(true);
    }
  }, 60_000);

  test("a corrupted blob in the registry: digest mismatch, nothing committed, no ingest left", async () => {
    const reg = await startRegistry();
    registries.push(reg);
    await pushFixture("busybox", reg.host, "test/corrupt:latest");
    const layer = fixtureLayer("busybox");
    const file = reg.blobFile(layer.digest);
    const size = Bun.file(file).size;
    writeFileSync(file, new Uint8Array(size).fill(0x5a));
    const store = freshStore();
    await expect(fetchImage(store, anonymous(), `${reg.host}/test/corrupt:latest`)).rejects.toThrow(
      `blob ${layer.digest} from ${reg.host}/test/corrupt: digest mismatch (got ${digestOf(new Uint8Array(size).fill(0x5a))})`,
    );
    expect(store.has(layer.digest)).toBe(false);
    expect(readdirSync(join(store.dir, "ingest"))).toEqual([]);
  }, 60_000);

  test("a manifest whose bytes are not what the registry's digest names is refused", async () => {
    const reg = await startRegistry();
    registries.push(reg);
    const digest = await pushFixture("busybox", reg.host, "test/bad-manifest:latest");
    // Same JSON, other bytes (indented): parses fine, hashes differently.
    const file = reg.blobFile(digest);
    const altered = JSON.stringify(JSON.parse(readFileSync(file, "utf8")), null, 2);
    writeFileSync(file, altered);
    const store = freshStore();
    await expect(fetchImage(store, anonymous(), `${reg.host}/test/bad-manifest:latest`)).rejects.toThrow(
      `manifest ${reg.host}/test/bad-manifest:latest: digest mismatch (got ${digestOf(altered)}, expected ${digest})`,
    );
    await expect(fetchImage(store, anonymous(), `${reg.host}/test/bad-manifest@${digest}`)).rejects.toThrow(/digest mismatch/);
    expect(store.list()).toEqual([]);
  }, 60_000);
});

/** The first layer descriptor of a fixture tag, read from the fixture layout. */
function fixtureLayer(tag: string): { digest: string; size: number } {
  const m = fixtureDescriptor(tag);
  const manifest = JSON.parse(readFileSync(join(imageFixtures().layout, "blobs/sha256", m.digest.slice(7)), "utf8"));
  return manifest.layers[0];
}
