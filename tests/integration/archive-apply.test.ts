// The layer applier as root against the real kernel and GNU tar: devices, FIFOs, ownership, setuid,
// binary xattrs (security.capability), hardlinks; a layer GNU tar made, applied by us and extracted by
// GNU tar, must give the same tree; gzip and zstd blobs; and a 100 MB layer in a child process whose
// peak RSS must grow less than 50 MiB.
import { afterEach, beforeEach, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, utimesSync, writeFileSync, chownSync, chmodSync, lchownSync } from "node:fs";
import { join } from "node:path";
import { applyLayer } from "../../src/archive/apply.ts";
import { decompressStream } from "../../src/archive/compression.ts";
import { tarBytes } from "../../src/archive/tar-writer.ts";
import { sys } from "../../src/sys/index.ts";
import { gnuTar, streamOf, tempDir, text } from "../support/archive-fixtures.ts";
import { describeWith } from "../support/require.ts";

// A valid VFS_CAP_REVISION_2 value (effective flag set, permitted = capabilities 0-7 and 13): 20 bytes
// with NULs and 0xff, exactly what a UTF-8 decoding of PAX values destroys.
const CAPABILITY = new Uint8Array([0x01, 0x00, 0x00, 0x02, 0xff, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
const T = 1_700_000_000_000_000_000n;

let base: string;
beforeEach(() => {
  base = tempDir("apply-root");
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

function newRoot(name: string): string {
  const path = join(base, name);
  mkdirSync(path);
  return path;
}

/** What must match between two extractions, per path (the root itself excluded). */
function describeTree(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const inodes = new Map<bigint, string>();
  const walk = (dir: string, prefix: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const rel = prefix + name;
      const st = lstatSync(path, { bigint: true });
      const kind = st.isDirectory() ? "dir" : st.isSymbolicLink() ? "symlink" : st.isFIFO() ? "fifo" : st.isCharacterDevice() ? "char" : st.isBlockDevice() ? "block" : "file";
      const xattrs = sys().llistxattr(path).sort().map((key) => `${key}=${Buffer.from(sys().lgetxattr(path, key) ?? new Uint8Array()).toString("hex")}`);
      const fields = [kind, `mode=${(st.mode & 0o7777n).toString(8)}`, `owner=${st.uid}:${st.gid}`, `mtimeUs=${st.mtimeNs / 1000n}`, `xattrs=${xattrs.join(",")}`];
      if (kind === "file") {
        fields.push(`sha=${createHash("sha256").update(readFileSync(path)).digest("hex")}`);
        // Hardlinks: every name of an inode points at the first name seen.
        if (st.nlink > 1n) {
          const first = inodes.get(st.ino);
          if (first) fields.push(`linkof=${first}`);
          else inodes.set(st.ino, rel);
        }
      }
      if (kind === "symlink") fields.push(`target=${readlinkSync(path)}`);
      if (kind === "char" || kind === "block") fields.push(`rdev=${st.rdev}`);
      out.set(rel, fields.join(" "));
      if (kind === "dir") walk(path, `${rel}/`);
    }
  };
  walk(root, "");
  return out;
}

describeWith(["root"], "archive: applying layers as root", () => {
  test("devices, FIFOs, ownership, setuid, binary xattrs and hardlinks", async () => {
    const root = newRoot("root");
    const own = { uid: 1234, gid: 5678, mtimeNs: T };
    const layer = tarBytes([
      { header: { name: "dev", type: "dir", mode: 0o755, ...own } },
      { header: { name: "dev/null", type: "char", mode: 0o666, devmajor: 1, devminor: 3, ...own } },
      { header: { name: "dev/loop0", type: "block", mode: 0o660, devmajor: 7, devminor: 0, ...own } },
      { header: { name: "run/fifo", type: "fifo", mode: 0o620, ...own } },
      { header: { name: "bin/ping", type: "file", mode: 0o4755, ...own, xattrs: new Map([["security.capability", CAPABILITY], ["trusted.bin", new Uint8Array([0, 0xff, 0, 0xfe])], ["user.text", text("hello")]]) }, body: text("ELF") },
      { header: { name: "bin/ping6", type: "hardlink", linkname: "bin/ping", mode: 0o4755, ...own } },
      { header: { name: "shared", type: "dir", mode: 0o2775, ...own } },
      { header: { name: "link", type: "symlink", linkname: "bin/ping", uid: 1234, gid: 5678, mtimeNs: T } },
    ]);
    const { diffId } = await applyLayer(root, streamOf(layer, 4096), { whiteouts: "remove" });
    expect(diffId).toBe(`sha256:${createHash("sha256").update(layer).digest("hex")}`);

    const nullDev = lstatSync(join(root, "dev/null"));
    expect(nullDev.isCharacterDevice()).toBe(true);
    expect(nullDev.rdev).toBe(0x103);
    expect(nullDev.mode & 0o7777).toBe(0o666);
    expect(lstatSync(join(root, "dev/loop0")).isBlockDevice()).toBe(true);
    expect(lstatSync(join(root, "dev/loop0")).rdev).toBe(0x700);
    expect(lstatSync(join(root, "run/fifo")).isFIFO()).toBe(true);
    const ping = lstatSync(join(root, "bin/ping"));
    expect([ping.uid, ping.gid, ping.mode & 0o7777]).toEqual([1234, 5678, 0o4755]);
    expect(sys().lgetxattr(join(root, "bin/ping"), "security.capability")).toEqual(CAPABILITY);
    expect(sys().lgetxattr(join(root, "bin/ping"), "trusted.bin")).toEqual(new Uint8Array([0, 0xff, 0, 0xfe]));
    expect(lstatSync(join(root, "bin/ping6")).ino).toBe(ping.ino);
    expect(lstatSync(join(root, "shared")).mode & 0o7777).toBe(0o2775);
    const link = lstatSync(join(root, "link"));
    expect([link.uid, link.gid]).toEqual([1234, 5678]);
  });

  test("overlay mode writes real whiteout devices and the opaque xattr", async () => {
    const upper = newRoot("upper");
    await applyLayer(upper, streamOf(tarBytes([{ header: { name: "etc/.wh.gone", type: "file", uid: 0, gid: 0 } }, { header: { name: "var/.wh..wh..opq", type: "file" } }])), { whiteouts: "overlay" });
    const whiteout = lstatSync(join(upper, "etc/gone"));
    expect(whiteout.isCharacterDevice()).toBe(true);
    expect(whiteout.rdev).toBe(0);
    expect(sys().lgetxattr(join(upper, "var"), "trusted.overlay.opaque")).toEqual(text("y"));
  });

  test("a layer made by GNU tar applies exactly as GNU tar extracts it, from plain, gzip and zstd blobs", async () => {
    const src = newRoot("src");
    mkdirSync(join(src, "etc/deep", ), { recursive: true });
    mkdirSync(join(src, "d".repeat(120), "e".repeat(40)), { recursive: true });
    writeFileSync(join(src, "d".repeat(120), "e".repeat(40), "f".repeat(90)), "long");
    writeFileSync(join(src, "etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
    writeFileSync(join(src, "etc/big"), Buffer.alloc(300_000, 0x5a));
    writeFileSync(join(src, "etc/empty"), "");
    linkSync(join(src, "etc/passwd"), join(src, "etc/passwd-hard"));
    symlinkSync("../etc/passwd", join(src, "etc/deep/rel"));
    symlinkSync("/etc/shadow", join(src, "abs-link"));
    sys().mknod(join(src, "etc/null"), 0o020666, 1, 3);
    sys().mknod(join(src, "etc/fifo"), 0o010640);
    writeFileSync(join(src, "etc/ping"), "ELF");
    chownSync(join(src, "etc/ping"), 1234, 4321);
    chmodSync(join(src, "etc/ping"), 0o4711);
    sys().lsetxattr(join(src, "etc/ping"), "security.capability", CAPABILITY);
    sys().lsetxattr(join(src, "etc/passwd"), "user.note", new Uint8Array([0, 1, 0xff]));
    lchownSync(join(src, "abs-link"), 99, 98);
    chmodSync(join(src, "etc/deep"), 0o2750);
    utimesSync(join(src, "etc/big"), 1_600_000_000.25, 1_600_000_000.5);
    utimesSync(join(src, "etc/deep"), 1_500_000_000, 1_500_000_000);

    gnuTar(["--format=pax", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-cf", join(base, "layer.tar"), "-C", src, "."], base);
    const layer = readFileSync(join(base, "layer.tar"));
    const byGnuTar = newRoot("by-gnu-tar");
    gnuTar(["-xpf", join(base, "layer.tar"), "--xattrs", "--xattrs-include=*", "--numeric-owner", "-C", byGnuTar], base);
    const expected = describeTree(byGnuTar);
    expect(expected.get("etc/ping")).toContain("security.capability=");
    expect(expected.get("etc/deep")).toContain("mode=2750");

    Bun.spawnSync(["gzip", "-k", join(base, "layer.tar")]);
    const zstd = Bun.which("zstd");
    if (zstd) Bun.spawnSync([zstd, "-q", "-k", join(base, "layer.tar")]);
    const blobs = [["plain", "layer.tar"], ["gzip", "layer.tar.gz"], ...(zstd ? [["zstd", "layer.tar.zst"]] : [])];
    for (const [kind, file] of blobs) {
      const ours = newRoot(`ours-${kind}`);
      const { compression, stream } = await decompressStream(Bun.file(join(base, file!)).stream());
      expect(compression).toBe(kind === "plain" ? "none" : kind as "gzip" | "zstd");
      const result = await applyLayer(ours, stream, { whiteouts: "remove" });
      expect(result).toEqual({ diffId: `sha256:${createHash("sha256").update(layer).digest("hex")}`, size: layer.length });
      expect(describeTree(ours)).toEqual(expected);
    }
  });
});

describeWith(["root", "bin:zstd"], "archive: zstd layers from the zstd tool", () => {
  test("a zstd blob made by the zstd binary decompresses and applies", async () => {
    const layer = tarBytes([{ header: { name: "z/file", type: "file", uid: 1234, gid: 1234 }, body: Buffer.alloc(200_000, 1) }]);
    writeFileSync(join(base, "l.tar"), layer);
    const run = Bun.spawnSync(["zstd", "-q", "-19", join(base, "l.tar"), "-o", join(base, "l.tar.zst")]);
    expect(run.exitCode).toBe(0);
    const root = newRoot("z");
    const { compression, stream } = await decompressStream(Bun.file(join(base, "l.tar.zst")).stream());
    expect(compression).toBe("zstd");
    const { diffId } = await applyLayer(root, stream, { whiteouts: "remove" });
    expect(diffId).toBe(`sha256:${createHash("sha256").update(layer).digest("hex")}`);
    expect(lstatSync(join(root, "z/file")).size).toBe(200_000);
  });
});

describeWith(["root"], "archive: a 100 MB layer streams in bounded memory", () => {
  test("peak RSS grows less than 50 MiB while 100 MB are applied", async () => {
    const root = newRoot("big");
    // A child process, so that its peak RSS (VmHWM) measures the apply alone.
    const script = `
      import { applyLayer } from ${JSON.stringify(join(import.meta.dir, "../../src/archive/apply.ts"))};
      import { tarStream, tarBytes } from ${JSON.stringify(join(import.meta.dir, "../../src/archive/tar-writer.ts"))};
      const status = () => Object.fromEntries(require("node:fs").readFileSync("/proc/self/status", "utf8").split("\\n").filter(Boolean).map((l) => l.split(/:\\s+/)));
      const kb = (v) => Number(v.split(" ")[0]);
      const root = process.argv[2];
      await applyLayer(root, new Blob([tarBytes([{ header: { name: "warm", type: "file" }, body: new Uint8Array(1 << 20) }])]).stream(), { whiteouts: "remove" });
      Bun.gc(true);
      const before = kb(status().VmRSS);
      require("node:fs").writeFileSync("/proc/self/clear_refs", "5"); // resets VmHWM to the current RSS
      const MB = 1 << 20;
      async function* body() { for (let i = 0; i < 100; i++) { const chunk = new Uint8Array(MB); chunk.fill(i); yield chunk; } }
      const result = await applyLayer(root, tarStream([{ header: { name: "big/file", type: "file", size: 100 * MB }, body: body() }]), { whiteouts: "remove" });
      console.log(JSON.stringify({ growthKiB: kb(status().VmHWM) - before, size: result.size }));
    `;
    writeFileSync(join(base, "child.ts"), script);
    const child = Bun.spawnSync([process.execPath, join(base, "child.ts"), root], { stdout: "pipe", stderr: "pipe" });
    expect(child.stderr.toString()).toBe("");
    const { growthKiB, size } = JSON.parse(child.stdout.toString()) as { growthKiB: number; size: number };
    expect(size).toBe(100 * (1 << 20) + 512 + 1024);
    expect(lstatSync(join(root, "big/file")).size).toBe(100 * (1 << 20));
    if (process.env.BUNKER_SHOW_RSS) console.log(`peak RSS growth: ${growthKiB} KiB`);
    expect(growthKiB).toBeLessThan(50 * 1024);
  }, 120_000);
});
