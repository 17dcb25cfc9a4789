// The layer applier on a real temp dir, owned by the current user (no root): whiteouts in both modes
// (overlay's char devices and xattrs through FakeSyscalls), opaque markers before and after the
// entries they keep, names and symlinks that try to leave the root, hardlinks, replacement rules,
// metadata order, and the diff ID.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { applyLayer, type ApplyOptions } from "../../src/archive/apply.ts";
import { tarBytes, type TarWriteHeader } from "../../src/archive/tar-writer.ts";
import { FailedPreconditionError, InvalidArgumentError } from "../../src/errdefs.ts";
import { FakeSyscalls, SysError } from "../../src/sys/index.ts";
import { streamOf, tempDir, text } from "../support/archive-fixtures.ts";

const uid = process.getuid!();
const gid = process.getgid!();
const T = 1_600_000_000_000_000_000n; // a fixed mtime, in ns

let base: string;
let root: string;

beforeEach(() => {
  base = tempDir("apply");
  root = join(base, "root");
  mkdirSync(root);
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

type Entry = { header: TarWriteHeader; body?: Uint8Array };
const own = (header: TarWriteHeader): TarWriteHeader => ({ uid, gid, mtimeNs: T, ...header });
const dir = (name: string, extra: Partial<TarWriteHeader> = {}): Entry => ({ header: own({ name, type: "dir", mode: 0o755, ...extra }) });
const file = (name: string, content = name, extra: Partial<TarWriteHeader> = {}): Entry => ({ header: own({ name, type: "file", mode: 0o644, ...extra }), body: text(content) });
const symlink = (name: string, linkname: string): Entry => ({ header: own({ name, type: "symlink", linkname }) });
const hardlink = (name: string, linkname: string, extra: Partial<TarWriteHeader> = {}): Entry => ({ header: own({ name, type: "hardlink", linkname, ...extra }) });

function apply(entries: Entry[], opts: Partial<ApplyOptions> = {}) {
  return applyLayer(root, streamOf(tarBytes(entries), 700), { whiteouts: "remove", ...opts });
}

/** Every path under root, sorted, with "/" after directories and "@" after symlinks. */
function tree(dirPath = root, prefix = ""): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dirPath).sort()) {
    const stat = lstatSync(join(dirPath, name));
    const rel = prefix + name;
    if (stat.isDirectory()) out.push(`${rel}/`, ...tree(join(dirPath, name), `${rel}/`));
    else out.push(stat.isSymbolicLink() ? `${rel}@` : rel);
  }
  return out;
}

/** A FakeSyscalls whose mknod leaves a placeholder file, so that chown, chmod and utimes can follow. */
function fakeWithNodes(): FakeSyscalls {
  const fake = new FakeSyscalls();
  fake.on("mknod", (path) => writeFileSync(path, ""));
  return fake;
}

describe("entries", () => {
  test("files, directories, symlinks and hardlinks with their metadata (a hardlink leaves its target's alone)", async () => {
    const warnings: string[] = [];
    await apply([dir("etc"), file("etc/passwd", "root:x:0:0\n", { mode: 0o4750 }), symlink("etc/link", "passwd"), hardlink("etc/hard", "etc/passwd"), dir("var", { mode: 0o1777, mtimeNs: T + 5_000_000n })], { onWarning: (m) => warnings.push(m) });
    expect(tree()).toEqual(["etc/", "etc/hard", "etc/link@", "etc/passwd", "var/"]);
    expect(readFileSync(join(root, "etc/passwd"), "utf8")).toBe("root:x:0:0\n");
    const passwd = lstatSync(join(root, "etc/passwd"), { bigint: true });
    expect(Number(passwd.mode & 0o7777n)).toBe(0o4750);
    expect(passwd.mtimeNs).toBe(T);
    expect(lstatSync(join(root, "etc/hard")).ino).toBe(Number(passwd.ino));
    expect(readlinkSync(join(root, "etc/link"))).toBe("passwd");
    expect(lstatSync(join(root, "etc/link"), { bigint: true }).mtimeNs).toBe(T);
    const etc = lstatSync(join(root, "etc"), { bigint: true });
    // Directory times are set after their children were written.
    expect(etc.mtimeNs).toBe(T);
    // Node's lutimes takes seconds as a double: sub-second times are exact to about a microsecond.
    const varDrift = lstatSync(join(root, "var"), { bigint: true }).mtimeNs - (T + 5_000_000n);
    expect(varDrift < 1000n && varDrift > -1000n).toBe(true);
    expect(lstatSync(join(root, "var")).mode & 0o7777).toBe(0o1777);
    expect(warnings).toEqual([]);
  });

  test("the diff ID is the sha256 of every uncompressed byte, trailing padding included", async () => {
    const bytes = new Uint8Array(Buffer.concat([tarBytes([file("a", "x".repeat(3000))]), new Uint8Array(10240 - 4608)]));
    const result = await applyLayer(root, streamOf(bytes, 333), { whiteouts: "remove" });
    expect(result).toEqual({ diffId: `sha256:${createHash("sha256").update(bytes).digest("hex")}`, size: bytes.length });
  });

  test("missing parents are made 0755; the root entry is ignored", async () => {
    const before = lstatSync(root).mode;
    await apply([dir("./", { mode: 0o700 }), file("a/b/c")]);
    expect(tree()).toEqual(["a/", "a/b/", "a/b/c"]);
    expect(lstatSync(join(root, "a/b")).mode & 0o7777).toBe(0o755);
    expect(lstatSync(root).mode).toBe(before);
  });

  test("over lower layers (an overlay upper), a missing parent takes the nearest lower's directory metadata, else 0755 at the epoch", async () => {
    const near = join(base, "near"), far = join(base, "far");
    mkdirSync(join(near, "opt"), { recursive: true });
    mkdirSync(join(far, "tmp"), { recursive: true });
    mkdirSync(join(far, "opt"), { recursive: true });
    mkdirSync(join(far, "gone"), { recursive: true });
    writeFileSync(join(near, "gone"), ""); // replaced by a non-directory in a nearer layer: nothing to take after
    chmodSync(join(far, "tmp"), 0o1777);
    utimesSync(join(far, "tmp"), 1_700_000_000, 1_700_000_000);
    chmodSync(join(near, "opt"), 0o750);
    chmodSync(join(far, "opt"), 0o700);
    const fake = new FakeSyscalls();
    fake.lsetxattr(join(far, "tmp"), "user.kept", text("yes"));
    fake.lsetxattr(join(far, "tmp"), "trusted.overlay.opaque", text("y"));
    await apply([file("tmp/x"), file("opt/y"), file("gone/z"), file("new/w"), dir("listed", { mode: 0o711 }), file("listed/v")], { whiteouts: "overlay", parents: [near, far], sys: fake });
    const mode = (p: string) => lstatSync(join(root, p)).mode & 0o7777;
    expect([mode("tmp"), mode("opt"), mode("gone"), mode("new"), mode("listed")]).toEqual([0o1777, 0o750, 0o755, 0o755, 0o711]);
    expect(lstatSync(join(root, "tmp"), { bigint: true }).mtimeNs).toBe(1_700_000_000_000_000_000n);
    expect(lstatSync(join(root, "new"), { bigint: true }).mtimeNs).toBe(0n);
    expect(fake.xattrs.get(join(root, "tmp"))).toEqual(new Map([["user.kept", text("yes")]]));
  });

  test("an existing non-directory is replaced; a directory met by a non-directory is removed first; dir on dir merges", async () => {
    mkdirSync(join(root, "was-dir/deep"), { recursive: true });
    writeFileSync(join(root, "was-dir/deep/f"), "old");
    writeFileSync(join(root, "was-file"), "old");
    mkdirSync(join(root, "merged"));
    writeFileSync(join(root, "merged/lower"), "kept");
    symlinkSync(join(base, "outside"), join(root, "was-link"));
    writeFileSync(join(base, "outside"), "must stay");
    await apply([file("was-dir", "now a file"), dir("was-file"), dir("merged", { mode: 0o750 }), file("was-link", "replaced, not followed")]);
    expect(readFileSync(join(root, "was-dir"), "utf8")).toBe("now a file");
    expect(lstatSync(join(root, "was-file")).isDirectory()).toBe(true);
    expect(readFileSync(join(root, "merged/lower"), "utf8")).toBe("kept");
    expect(lstatSync(join(root, "merged")).mode & 0o7777).toBe(0o750);
    expect(readFileSync(join(root, "was-link"), "utf8")).toBe("replaced, not followed");
    expect(readFileSync(join(base, "outside"), "utf8")).toBe("must stay");
  });

  test("devices, FIFOs and xattrs go through sys: mknod with the type bits, lsetxattr with raw bytes", async () => {
    const fake = fakeWithNodes();
    const capability = new Uint8Array([1, 0, 0, 2, 0xff, 0, 0, 0]);
    await apply([{ header: own({ name: "dev/null", type: "char", mode: 0o666, devmajor: 1, devminor: 3 }) }, { header: own({ name: "dev/sda", type: "block", mode: 0o660, devmajor: 8, devminor: 0 }) }, { header: own({ name: "run/fifo", type: "fifo", mode: 0o600 }) }, file("bin/ping", "elf", { xattrs: new Map([["security.capability", capability]]) })], { sys: fake });
    expect(fake.callsOf("mknod")).toEqual([
      [join(root, "dev/null"), 0o020666, 1, 3],
      [join(root, "dev/sda"), 0o060660, 8, 0],
      [join(root, "run/fifo"), 0o010600, 0, 0],
    ]);
    expect(fake.callsOf("lsetxattr")).toEqual([[join(root, "bin/ping"), "security.capability", capability]]);
    expect(lstatSync(join(root, "dev/null")).mode & 0o7777).toBe(0o666);
  });

  test("an xattr the filesystem does not support is skipped with a warning; other xattr errors fail", async () => {
    const fake = new FakeSyscalls().fail("lsetxattr", "ENOTSUP");
    const warnings: string[] = [];
    await apply([file("f", "x", { xattrs: new Map([["user.a", text("1")]]) })], { sys: fake, onWarning: (m) => warnings.push(m) });
    expect(warnings).toEqual([expect.stringContaining("ignored xattr user.a on \"f\"")]);
    fake.fail("lsetxattr", "EPERM");
    const error = await apply([file("g", "x", { xattrs: new Map([["trusted.a", text("1")]]) })], { sys: fake }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(FailedPreconditionError);
    expect((error as Error).message).toStartWith('apply layer: entry "g": lsetxattr');
    expect((error as Error).cause).toBeInstanceOf(SysError);
  });
});

describe("whiteouts", () => {
  beforeEach(() => {
    for (const path of ["a/sub", "opq/sub", "opq/keepdir"]) mkdirSync(join(root, path), { recursive: true });
    for (const path of ["a/old", "a/sub/f", "b", "opq/lower", "opq/sub/lower", "opq/keepdir/lower"]) writeFileSync(join(root, path), "lower");
  });

  test("remove mode: .wh.<name> removes it, files and directories alike", async () => {
    await apply([file("a/.wh.old", ""), file("a/.wh.sub", ""), file(".wh.b", ""), file(".wh.missing", "")]);
    expect(tree().filter((p) => !p.startsWith("opq"))).toEqual(["a/"]);
  });

  test("remove mode: an opaque marker AFTER the entries keeps what this layer wrote, below too", async () => {
    await apply([dir("opq"), file("opq/new"), file("opq/keepdir/new"), dir("opq/newdir"), file("opq/.wh..wh..opq", "")]);
    expect(tree().filter((p) => p.startsWith("opq"))).toEqual(["opq/", "opq/keepdir/", "opq/keepdir/new", "opq/new", "opq/newdir/"]);
  });

  test("remove mode: an opaque marker BEFORE the entries empties the directory first", async () => {
    await apply([dir("opq"), file("opq/.wh..wh..opq", ""), file("opq/new")]);
    expect(tree().filter((p) => p.startsWith("opq"))).toEqual(["opq/", "opq/new"]);
  });

  test("overlay mode: a whiteout is a 0:0 char device owned as the entry, an opaque dir the trusted.overlay.opaque xattr", async () => {
    const fake = fakeWithNodes();
    await apply([file("a/.wh.old", ""), file("opq/.wh..wh..opq", ""), file("opq/new")], { whiteouts: "overlay", sys: fake });
    expect(fake.callsOf("mknod")).toEqual([[join(root, "a/old"), 0o020000, 0, 0]]);
    expect(readFileSync(join(root, "a/old"), "utf8")).toBe(""); // the fake's placeholder replaced the lower file
    expect(fake.callsOf("lsetxattr")).toEqual([[join(root, "opq"), "trusted.overlay.opaque", text("y")]]);
    expect(existsSync(join(root, "opq/lower"))).toBe(true);
  });

  test("a whiteout for '.' or '..' is refused; aufs metadata is skipped with a warning", async () => {
    for (const name of ["a/.wh..", "a/.wh..."]) {
      const error = await apply([file(name, "")]).catch((err: unknown) => err);
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect((error as Error).message).toContain("invalid whiteout name");
    }
    const warnings: string[] = [];
    await apply([file(".wh..wh.plnk/123.4", ""), file("a/.wh..wh.aufs", "")], { onWarning: (m) => warnings.push(m) });
    expect(warnings).toEqual([expect.stringContaining("a/.wh..wh.aufs")]);
    expect(existsSync(join(root, "a/old"))).toBe(true);
  });
});

describe("staying inside the root", () => {
  function outsideUntouched(): void {
    expect(readdirSync(base).sort()).toEqual(["root"]);
  }

  test("'../' and absolute names land inside", async () => {
    await apply([file("../../escape", "a"), file("/abs/file", "b"), file("x/../../../y", "c")]);
    expect(tree()).toEqual(["abs/", "abs/file", "escape", "y"]);
    outsideUntouched();
  });

  test("a symlink to '/' or '../../' in the path is resolved inside root", async () => {
    await apply([symlink("rootlink", "/"), symlink("uplink", "../../.."), dir("d"), symlink("d/deeper", "../../../../etc"), file("rootlink/etc/a", "1"), file("uplink/etc/b", "2"), file("d/deeper/c", "3")]);
    expect(readFileSync(join(root, "etc/a"), "utf8")).toBe("1");
    expect(readFileSync(join(root, "etc/b"), "utf8")).toBe("2");
    expect(readFileSync(join(root, "etc/c"), "utf8")).toBe("3");
    outsideUntouched();
  });

  test("a directory the layer itself replaces by a symlink is resolved again (resolved parents are remembered)", async () => {
    // the applier remembers where a parent name resolved; replacing "a" must make "a/y" follow the
    // new symlink (into root), not the removed directory, in a fresh root and over an existing one
    const entries = [dir("a"), file("a/x", "1"), dir("b"), symlink("a", "/b"), file("a/y", "2"), symlink("b/up", "../../.."), dir("b/up/c"), file("a/up/c/z", "3")];
    await apply(entries);
    expect(tree()).toEqual(["a@", "b/", "b/up@", "b/y", "c/", "c/z"]);
    outsideUntouched();
    rmSync(root, { recursive: true });
    mkdirSync(join(root, "a"), { recursive: true });
    writeFileSync(join(root, "a/old"), "0");
    await apply(entries);
    expect(tree()).toEqual(["a@", "b/", "b/up@", "b/y", "c/", "c/z"]);
    outsideUntouched();
  });

  test("a symlink loop is an error, not a hang", async () => {
    const error = await apply([symlink("l1", "l2"), symlink("l2", "l1"), file("l1/x")]).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as Error).message).toContain("too many levels of symbolic links");
  });

  test("a hardlink that climbs out of the root is refused, naming the entry", async () => {
    const error = await apply([hardlink("passwd", "../../etc/passwd")]).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as Error).message).toBe('apply layer: entry "passwd": hardlink "passwd" -> "../../etc/passwd" points outside the root');
    outsideUntouched();
  });

  test("a hardlink through a symlinked directory resolves inside root; the target's own symlink is linked, not followed", async () => {
    writeFileSync(join(base, "secret"), "outside");
    await apply([dir("real"), file("real/f", "inside"), symlink("via", "/real"), symlink("escape", join(base, "secret")), hardlink("h1", "via/f"), hardlink("h2", "escape")]);
    expect(lstatSync(join(root, "h1")).ino).toBe(lstatSync(join(root, "real/f")).ino);
    expect(lstatSync(join(root, "h2")).isSymbolicLink()).toBe(true);
    expect(lstatSync(join(root, "h2")).ino).toBe(lstatSync(join(root, "escape")).ino);
  });

  test("a hardlink to a missing target fails clearly", async () => {
    const error = await apply([hardlink("h", "nowhere")]).catch((err: unknown) => err);
    expect((error as Error).message).toBe('apply layer: entry "h": hardlink target "nowhere" does not exist');
  });
});

describe("bad input", () => {
  test("a truncated layer fails with one line and the stream is released", async () => {
    const bytes = tarBytes([file("a", "x".repeat(2000))]).subarray(0, 1500);
    const error = await applyLayer(root, streamOf(bytes), { whiteouts: "remove" }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as Error).message).toBe('apply layer: entry "a": truncated tar archive');
  });

  test("a bad header is reported after the last good entry, not as part of it", async () => {
    const bytes = tarBytes([file("a"), file("b")]);
    bytes[1024 + 148] = bytes[1024 + 148]! ^ 1; // b's header sits after a's header and padded body
    const error = await applyLayer(root, streamOf(bytes), { whiteouts: "remove" }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as Error).message).toStartWith('apply layer: after entry "a": invalid tar header: checksum mismatch');
  });

  test("a parent that is a file fails clearly", async () => {
    const error = await apply([file("f"), file("f/g")]).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(FailedPreconditionError);
    expect((error as Error).message).toBe('apply layer: entry "f/g": /f is not a directory');
  });

  test("a missing root is NotFound", async () => {
    const error = await applyLayer(join(base, "nope"), streamOf(tarBytes([])), { whiteouts: "remove" }).catch((err: unknown) => err);
    expect((error as Error).message).toContain("does not exist");
  });
});
