// Test images built offline from /bin/busybox (busybox-static) with umoci, in one OCI layout per
// test process (built once, removed at exit), and pushed to a test registry with skopeo: the real
// tools, so that what bunker reads is what other clients write. Tags in the layout:
//   busybox     one layer: /bin/busybox and its applet symlinks (amd64)
//   multilayer  busybox + a hand-made layer (GNU tar, so the entries are exactly ours): a whiteout,
//               an opaque dir, a hardlink pair and symlinks over the base layer's files
//   big         busybox + a 48 MiB incompressible layer (to interrupt a download mid-layer)
//   arm64       busybox's layer with an arm64 config (the bytes are amd64; only pulls use it)
//   multi       an OCI index: amd64 and arm64 entries, plus a BuildKit-style attestation entry
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, linkSync, writeFileSync, copyFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash, randomBytes } from "node:crypto";
import { removeAtEnd } from "./cleanup.ts";

export const BIG_LAYER_BYTES = 48 << 20;
const APPLETS = ["sh", "ls", "cat", "echo", "true", "false", "sleep", "id", "env"];

export interface ImageFixtures {
  /** The OCI layout holding every tag above. */
  layout: string;
  dir: string;
}

let built: ImageFixtures | undefined;

function run(argv: string[], what = argv.join(" ")): string {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${what} failed (${r.status}): ${r.stderr || r.stdout}`);
  return r.stdout;
}

function sha256(bytes: Buffer | string): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

interface IndexEntry {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Record<string, string>;
}

function readIndex(layout: string): { schemaVersion: number; manifests: IndexEntry[] } {
  return JSON.parse(readFileSync(join(layout, "index.json"), "utf8"));
}

function manifestOf(layout: string, tag: string): IndexEntry {
  const e = readIndex(layout).manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === tag);
  if (!e) throw new Error(`fixture layout has no tag ${tag}`);
  return e;
}

/** A tar of `stage` made with GNU tar: numeric root ownership, sorted, hardlinks kept. */
function tarOf(stage: string, out: string): void {
  run(["tar", "--sort=name", "--numeric-owner", "--owner=0", "--group=0", "--mtime=@1700000000", "-C", stage, "-cf", out, "."]);
}

function buildBusybox(dir: string, layout: string): void {
  const stage = join(dir, "stage-busybox");
  mkdirSync(join(stage, "bin"), { recursive: true });
  copyFileSync("/bin/busybox", join(stage, "bin/busybox"));
  chmodSync(join(stage, "bin/busybox"), 0o755);
  for (const a of APPLETS) symlinkSync("busybox", join(stage, "bin", a));
  mkdirSync(join(stage, "etc"));
  writeFileSync(join(stage, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
  writeFileSync(join(stage, "etc/keep"), "kept\n");
  writeFileSync(join(stage, "etc/gone"), "whited out by the next layer\n");
  mkdirSync(join(stage, "opt/dir"), { recursive: true });
  writeFileSync(join(stage, "opt/dir/old"), "hidden by an opaque dir\n");
  mkdirSync(join(stage, "tmp"));
  chmodSync(join(stage, "tmp"), 0o1777);
  tarOf(stage, join(dir, "busybox.tar"));
  run(["umoci", "new", "--image", `${layout}:busybox`]);
  run(["umoci", "raw", "add-layer", "--image", `${layout}:busybox`, join(dir, "busybox.tar")]);
  run(["umoci", "config", "--image", `${layout}:busybox`, "--os", "linux", "--architecture", "amd64", "--config.cmd", "/bin/sh",
    "--config.env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]);
}

function addLayerTag(dir: string, layout: string, from: string, tag: string, fill: (stage: string) => void): void {
  const stage = join(dir, `stage-${tag}`);
  mkdirSync(stage, { recursive: true });
  fill(stage);
  tarOf(stage, join(dir, `${tag}.tar`));
  run(["umoci", "config", "--image", `${layout}:${from}`, "--tag", tag]);
  run(["umoci", "raw", "add-layer", "--image", `${layout}:${tag}`, join(dir, `${tag}.tar`)]);
}

function buildMulti(layout: string): void {
  run(["umoci", "config", "--image", `${layout}:busybox`, "--tag", "arm64", "--architecture", "arm64"]);
  const amd64 = manifestOf(layout, "busybox"), arm64 = manifestOf(layout, "arm64");
  const entry = (e: IndexEntry, platform: Record<string, string>, annotations?: Record<string, string>): IndexEntry =>
    ({ mediaType: e.mediaType, digest: e.digest, size: e.size, platform, ...(annotations ? { annotations } : {}) });
  const index = JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [
      entry(amd64, { architecture: "amd64", os: "linux" }),
      entry(arm64, { architecture: "arm64", os: "linux", variant: "v8" }),
      // What BuildKit adds: an attestation manifest for the amd64 image (here any manifest will do).
      entry(arm64, { architecture: "unknown", os: "unknown" }, { "vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": amd64.digest }),
    ],
  });
  const digest = sha256(index);
  writeFileSync(join(layout, "blobs/sha256", digest.slice(7)), index);
  const top = readIndex(layout);
  top.manifests.push({ mediaType: "application/vnd.oci.image.index.v1+json", digest, size: Buffer.byteLength(index), annotations: { "org.opencontainers.image.ref.name": "multi" } });
  writeFileSync(join(layout, "index.json"), JSON.stringify(top));
}

/** Removes the built fixtures (call from afterAll: bun test does not run "exit" handlers reliably). */
export function removeImageFixtures(): void {
  if (!built) return;
  rmSync(built.dir, { recursive: true, force: true });
  built = undefined;
}

/** Builds the fixture layout once per process (until removeImageFixtures). */
export function imageFixtures(): ImageFixtures {
  if (built) return built;
  const dir = mkdtempSync(join(tmpdir(), "bunker-images-"));
  removeAtEnd(dir);
  const layout = join(dir, "oci");
  run(["umoci", "init", "--layout", layout]);
  buildBusybox(dir, layout);
  addLayerTag(dir, layout, "busybox", "multilayer", (stage) => {
    mkdirSync(join(stage, "etc"));
    writeFileSync(join(stage, "etc/.wh.gone"), "");
    mkdirSync(join(stage, "opt/dir"), { recursive: true });
    writeFileSync(join(stage, "opt/dir/.wh..wh..opq"), "");
    writeFileSync(join(stage, "opt/dir/new"), "after the opaque dir\n");
    mkdirSync(join(stage, "hl"));
    writeFileSync(join(stage, "hl/one"), "linked twice\n");
    linkSync(join(stage, "hl/one"), join(stage, "hl/two"));
    symlinkSync("/etc/keep", join(stage, "abs-link"));
    symlinkSync("../etc/keep", join(stage, "hl/rel-link"));
  });
  addLayerTag(dir, layout, "busybox", "big", (stage) => {
    writeFileSync(join(stage, "big.bin"), randomBytes(BIG_LAYER_BYTES));
  });
  buildMulti(layout);
  built = { layout, dir };
  return built;
}

export interface PushOptions {
  /** skopeo --format: v2s2 makes a Docker schema2 manifest (a Docker list with --all). */
  format?: "oci" | "v2s2";
  /** Copy every entry of an index (skopeo --all). */
  all?: boolean;
  creds?: { username: string; password: string };
}

/**
 * Pushes a fixture tag to `host/repo:tag` with skopeo; returns the pushed manifest's digest. Async
 * (not spawnSync) because a token-auth registry's token server runs in this very process.
 */
export async function pushFixture(tag: string, host: string, dest: string, opts: PushOptions = {}): Promise<string> {
  const fx = imageFixtures();
  const digestFile = join(fx.dir, `digest-${randomBytes(6).toString("hex")}`);
  const argv = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--digestfile", digestFile];
  if (opts.format) argv.push("--format", opts.format);
  if (opts.all) argv.push("--all");
  if (opts.creds) argv.push("--dest-creds", `${opts.creds.username}:${opts.creds.password}`);
  argv.push(`oci:${fx.layout}:${tag}`, `docker://${host}/${dest}`);
  const proc = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe" });
  const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  if (code !== 0) throw new Error(`${argv.join(" ")} failed (${code}): ${stderr}`);
  return readFileSync(digestFile, "utf8").trim();
}

/** A docker-archive tar (`docker save` format) of a fixture tag, named `name` inside. */
export function dockerArchive(tag: string, file: string, name: string): string {
  run(["skopeo", "copy", "--quiet", `oci:${imageFixtures().layout}:${tag}`, `docker-archive:${file}:${name}`]);
  return file;
}

/** An oci-archive tar of a fixture tag, its index entry named `refName`. */
export function ociArchive(tag: string, file: string, refName = tag): string {
  run(["skopeo", "copy", "--quiet", `oci:${imageFixtures().layout}:${tag}`, `oci-archive:${file}:${refName}`]);
  return file;
}

/** The manifest descriptor a fixture tag points to in the layout. */
export function fixtureDescriptor(tag: string): { mediaType: string; digest: string; size: number } {
  const e = manifestOf(imageFixtures().layout, tag);
  return { mediaType: e.mediaType, digest: e.digest, size: e.size };
}
