// More test images for the CLI's image tests, added as tags to the offline fixture layout
// (image-fixtures.ts) with the same real tools, umoci and GNU tar, so pushFixture() and the archive
// helpers take them like the base tags:
//   users   busybox + /etc/passwd and /etc/group naming nobody (65534) and app (1000, also in group
//           extra 2000), /srv, WorkingDir /srv, GREETING in Env and a Cmd that reports who and where
//           it runs: what `run -u/-w/-e/--entrypoint` and "the image's Cmd" are checked against
//   deep    busybox + DEEP_LAYERS small layers (layers/<i>): a lowerdir list past a page of mount
//           options, which the overlay mount must compact (containerd's compactLowerdirOption)
//   escape  busybox + two layers written byte by byte with our tar writer (GNU tar will not write
//           them): "../" climbs, an absolute name, and writes through absolute symlinks (one planted
//           in the same layer, one in the layer below), all aimed at ESCAPE_TARGET on the host
//   parents busybox + a GNU tar layer of files only, no directory entries (tmp/newfile, opt/dir/f2,
//           fresh/dir/f3): the directories it writes into must keep the lower layer's metadata
// Built once per process (until removeImageFixtures), after the base fixtures.
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tarBytes, type TarWriteHeader } from "../../src/archive/tar-writer.ts";
import { imageFixtures } from "./image-fixtures.ts";

export const DEEP_LAYERS = 130;

let builtFor: string | undefined;

function run(argv: string[]): void {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8", maxBuffer: 16 << 20 });
  if (r.status !== 0) throw new Error(`${argv.join(" ")} failed (${r.status}): ${r.stderr || r.stdout}`);
}

/** A tar of `stage` made with GNU tar: numeric root ownership, sorted, fixed times. */
function gnuTar(stage: string, out: string): void {
  run(["tar", "--sort=name", "--numeric-owner", "--owner=0", "--group=0", "--mtime=@1700000000", "-C", stage, "-cf", out, "."]);
}

/** Where the escape layers aim on the host; a correct applier puts their files under the same path inside the container's root. */
export function escapeTarget(): string {
  return join(imageFixtures().dir, "escape-target");
}

function buildUsers(dir: string, layout: string): void {
  const stage = join(dir, "stage-users");
  mkdirSync(join(stage, "etc"), { recursive: true });
  mkdirSync(join(stage, "srv"));
  writeFileSync(join(stage, "srv/marker"), "in srv\n");
  writeFileSync(
    join(stage, "etc/passwd"),
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000:app:/home/app:/bin/sh\n",
  );
  writeFileSync(join(stage, "etc/group"), "root:x:0:\nnogroup:x:65534:\napp:x:1000:\nextra:x:2000:app\n");
  gnuTar(stage, join(dir, "users.tar"));
  run([
    "umoci", "config", "--image", `${layout}:busybox`, "--tag", "users",
    "--config.workingdir", "/srv",
    "--config.env", "GREETING=from-image",
    "--config.cmd", "sh", "--config.cmd", "-c", "--config.cmd", 'echo "default cmd: uid $(id -u) in $(pwd) says $GREETING"',
  ]);
  run(["umoci", "raw", "add-layer", "--image", `${layout}:users`, join(dir, "users.tar")]);
}

function buildDeep(dir: string, layout: string): void {
  run(["umoci", "config", "--image", `${layout}:busybox`, "--tag", "deep"]);
  for (let i = 1; i <= DEEP_LAYERS; i++) {
    const stage = join(dir, "stage-deep", String(i));
    mkdirSync(join(stage, "layers"), { recursive: true });
    writeFileSync(join(stage, "layers", String(i)), `layer ${i}\n`);
    const tar = join(dir, `deep-${i}.tar`);
    gnuTar(stage, tar);
    run(["umoci", "raw", "add-layer", "--image", `${layout}:deep`, tar]);
  }
}

function entry(name: string, type: TarWriteHeader["type"], extra: Partial<TarWriteHeader> = {}, body?: string): { header: TarWriteHeader; body?: Uint8Array } {
  const header: TarWriteHeader = { name, type, mode: type === "dir" ? 0o755 : type === "symlink" ? 0o777 : 0o644, mtimeNs: 1_700_000_000_000_000_000n, ...extra };
  return body === undefined ? { header } : { header, body: new TextEncoder().encode(body) };
}

function buildEscape(dir: string, layout: string): void {
  const target = escapeTarget();
  mkdirSync(target, { recursive: true });
  chmodSync(target, 0o755);
  const rel = target.replace(/^\/+/, "");
  // The lower layer plants an absolute symlink to the host target; the upper layer writes through it.
  const lower = tarBytes([entry("lowlink", "symlink", { linkname: target })]);
  const upper = tarBytes([
    entry(`../../../../../../../${rel}/dotdot`, "file", {}, "climbed with ../\n"),
    entry(`/${rel}/absolute`, "file", {}, "an absolute name\n"),
    entry("samelink", "symlink", { linkname: target }),
    entry("samelink/through-same", "file", {}, "through a symlink of the same layer\n"),
    entry("lowlink/through-lower", "file", {}, "through a symlink of the layer below\n"),
  ]);
  writeFileSync(join(dir, "escape-lower.tar"), lower);
  writeFileSync(join(dir, "escape-upper.tar"), upper);
  run(["umoci", "config", "--image", `${layout}:busybox`, "--tag", "escape"]);
  run(["umoci", "raw", "add-layer", "--image", `${layout}:escape`, join(dir, "escape-lower.tar")]);
  run(["umoci", "raw", "add-layer", "--image", `${layout}:escape`, join(dir, "escape-upper.tar")]);
}

function buildParents(dir: string, layout: string): void {
  const stage = join(dir, "stage-parents");
  for (const [path, content] of [["tmp/newfile", "x\n"], ["opt/dir/f2", "y\n"], ["fresh/dir/f3", "z\n"]] as const) {
    mkdirSync(join(stage, path, ".."), { recursive: true });
    writeFileSync(join(stage, path), content);
  }
  // files named one by one: GNU tar then writes no entries for their directories
  run(["tar", "--numeric-owner", "--owner=0", "--group=0", "--mtime=@1700000000", "-C", stage, "-cf", join(dir, "parents.tar"), "tmp/newfile", "opt/dir/f2", "fresh/dir/f3"]);
  run(["umoci", "config", "--image", `${layout}:busybox`, "--tag", "parents"]);
  run(["umoci", "raw", "add-layer", "--image", `${layout}:parents`, join(dir, "parents.tar")]);
}

/** Adds the tags above to the fixture layout (once per built layout). */
export function imageBuilds(): { layout: string; dir: string } {
  const fx = imageFixtures();
  if (builtFor === fx.dir) return fx;
  buildUsers(fx.dir, fx.layout);
  buildDeep(fx.dir, fx.layout);
  buildEscape(fx.dir, fx.layout);
  buildParents(fx.dir, fx.layout);
  builtFor = fx.dir;
  return fx;
}
