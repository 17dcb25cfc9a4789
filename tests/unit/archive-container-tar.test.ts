// `bunker cp` with "-": the tar of a container tree (docker's layout: the base name on top, "." for
// DIR/.; symlinks kept, hardlinks linked) read back by the extractor, and the extractor's refusals of
// hostile archives (absolute names, "..", symlinks and hardlinks out, writes through a symlink out of
// the directory), each a one-line error that changes nothing outside the target directory.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { checkedEntryName, checkHeader, extractTarInto, treeTarStream } from "../../src/archive/container-tar.ts";
import { TarReader, type TarHeader } from "../../src/archive/tar.ts";
import { tarBytes, type TarWriteHeader } from "../../src/archive/tar-writer.ts";
import { parseArgs } from "../../src/cli/args.ts";
import { tarTopName } from "../../src/cli/cp-stream.ts";
import { InvalidArgumentError } from "../../src/errdefs.ts";

const me = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
let dir: string;
beforeEach(() => {
  dir = mkdtempSync("/tmp/bunker-ctar-");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function streamOf(bytes: Uint8Array): () => ReadableStream<Uint8Array> {
  return () => new Blob([bytes]).stream();
}

async function names(stream: ReadableStream<Uint8Array>): Promise<TarHeader[]> {
  const reader = new TarReader(stream);
  const out: TarHeader[] = [];
  for (let e = await reader.next(); e; e = await reader.next()) out.push(e.header);
  return out;
}

/** Every path under a dir, for "nothing changed" checks. */
function tree(root: string): string[] {
  const out: string[] = [];
  const walk = (p: string, rel: string): void => {
    for (const name of readdirSync(p).sort()) {
      out.push(`${rel}${name}`);
      if (lstatSync(join(p, name)).isDirectory()) walk(join(p, name), `${rel}${name}/`);
    }
  };
  walk(root, "");
  return out;
}

describe("parsing", () => {
  test("cp takes - as either side", () => {
    expect(parseArgs(["cp", "c1:/etc", "-"]).command).toEqual({ name: "cp", source: "c1:/etc", destination: "-", archive: false, followLink: false });
    expect(parseArgs(["cp", "-a", "-", "c1:/tmp"]).command).toEqual({ name: "cp", source: "-", destination: "c1:/tmp", archive: true, followLink: false });
  });

  test("the top entry is the base name, or . for DIR/. and /", () => {
    expect([tarTopName("/etc/hostname"), tarTopName("/etc/"), tarTopName("/etc/."), tarTopName("/"), tarTopName("etc")]).toEqual(["hostname", "etc", ".", ".", "etc"]);
  });

  test("entry names: relative and inside, else a one-line refusal", () => {
    expect(checkedEntryName("./a/b/")).toBe("a/b");
    expect(checkedEntryName("a/../b")).toBe("b");
    expect(checkedEntryName("./")).toBe("");
    expect(() => checkedEntryName("/etc/passwd")).toThrow(/absolute names are refused/);
    expect(() => checkedEntryName("a/../../x")).toThrow(/outside of the target directory/);
    const h = (over: Partial<TarHeader>): TarHeader => ({ name: "x", type: "file", mode: 0o644, uid: 0, gid: 0, size: 0, mtimeNs: 0n, linkname: "", devmajor: 0, devminor: 0, xattrs: new Map(), ...over });
    expect(() => checkHeader(h({ name: "a/l", type: "symlink", linkname: "../b" }))).not.toThrow();
    expect(() => checkHeader(h({ name: "l", type: "symlink", linkname: "/etc" }))).not.toThrow(); // docker: the container's /etc
    expect(() => checkHeader(h({ name: "a/l", type: "symlink", linkname: "../../b" }))).toThrow(InvalidArgumentError);
    expect(() => checkHeader(h({ name: "l", type: "hardlink", linkname: "../x" }))).toThrow(/outside/);
    expect(() => checkHeader(h({ name: "l", type: "hardlink", linkname: "/x" }))).toThrow(/absolute/);
  });
});

describe("a tree out and back in", () => {
  test("docker's layout, modes, symlinks and hardlinks kept; owners as asked", async () => {
    const src = join(dir, "src");
    mkdirSync(join(src, "sub"), { recursive: true });
    writeFileSync(join(src, "a.txt"), "hello\n", { mode: 0o640 });
    writeFileSync(join(src, "sub", "big"), Buffer.alloc(3 << 20, 7));
    linkSync(join(src, "a.txt"), join(src, "sub", "same"));
    symlinkSync("../a.txt", join(src, "sub", "link"));
    const headers = await names(treeTarStream(src, "src"));
    expect(headers.map((h) => `${h.type} ${h.name}${h.linkname ? ` -> ${h.linkname}` : ""}`)).toEqual([
      "dir src/", "file src/a.txt", "dir src/sub/", "file src/sub/big", "symlink src/sub/link -> ../a.txt", "hardlink src/sub/same -> src/a.txt",
    ]);
    expect((await names(treeTarStream(src, "."))).map((h) => h.name).slice(0, 2)).toEqual(["./", "./a.txt"]);

    const root = join(dir, "root");
    mkdirSync(join(root, "dst"), { recursive: true });
    const bytes = new Uint8Array(await new Response(treeTarStream(src, "src")).arrayBuffer());
    expect(await extractTarInto(root, "/dst", streamOf(bytes), { owner: me })).toBe(6);
    const out = join(root, "dst", "src");
    expect(readFileSync(join(out, "a.txt"), "utf8")).toBe("hello\n");
    expect(lstatSync(join(out, "a.txt")).mode & 0o7777).toBe(0o640);
    expect(readFileSync(join(out, "sub", "big")).equals(Buffer.alloc(3 << 20, 7))).toBe(true);
    expect(readlinkSync(join(out, "sub", "link"))).toBe("../a.txt");
    expect(lstatSync(join(out, "sub", "same")).ino).toBe(lstatSync(join(out, "a.txt")).ino);
    expect(Math.abs(lstatSync(join(out, "a.txt")).mtimeMs - lstatSync(join(src, "a.txt")).mtimeMs)).toBeLessThan(0.01);
  });
});

describe("hostile archives: one line, nothing written outside the directory", () => {
  const file = (name: string, body = "x"): { header: TarWriteHeader; body: Uint8Array } => ({ header: { name, type: "file", mode: 0o644 }, body: new TextEncoder().encode(body) });
  const link = (name: string, linkname: string, type: "symlink" | "hardlink" = "symlink") => ({ header: { name, type, linkname } as TarWriteHeader });

  for (const [what, entries, message] of [
    ["a .. entry", [file("ok"), file("../escaped")], /tar entry "..\/escaped": outside of the target directory/],
    ["an absolute name", [file("ok"), file("/abs")], /tar entry "\/abs": absolute names are refused/],
    ["a symlink that climbs out", [file("ok"), link("l", "../../..")], /symlink to "..\/..\/.." points outside/],
    ["a hardlink that climbs out", [file("ok"), link("h", "../outside", "hardlink")], /hardlink to "..\/outside" is outside/],
  ] as const) {
    test(`${what}: refused before anything is written`, async () => {
      const root = join(dir, "root");
      mkdirSync(join(root, "dst"), { recursive: true });
      writeFileSync(join(root, "outside"), "keep");
      const err = await extractTarInto(root, "/dst", streamOf(tarBytes(entries)), { owner: me }).catch((e: Error) => e);
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message).not.toContain("\n");
      expect(tree(root)).toEqual(["dst", "outside"]);
    });
  }

  test("a write through a symlink the archive made, or one already there, that leaves the directory", async () => {
    const root = join(dir, "root");
    mkdirSync(join(root, "dst"), { recursive: true });
    mkdirSync(join(root, "etc"));
    symlinkSync("/etc", join(root, "dst", "planted"));
    for (const entries of [[link("evil", "/etc"), file("evil/passwd")], [file("planted/shadow")]]) {
      const err = await extractTarInto(root, "/dst", streamOf(tarBytes(entries)), { owner: me }).catch((e: Error) => e);
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect((err as Error).message).toMatch(/goes through a symlink out of \/dst$/);
    }
    expect(readdirSync(join(root, "etc"))).toEqual([]);
    // the host's /etc was never in reach: the link resolves inside the root
    expect(existsSync("/etc/passwd")).toBe(true);
  });

  test("a directory is not replaced by a file, nor a file by a directory (docker's NoOverwriteDirNonDir)", async () => {
    const root = join(dir, "root");
    mkdirSync(join(root, "dst", "d"), { recursive: true });
    writeFileSync(join(root, "dst", "f"), "keep");
    const onto = await extractTarInto(root, "/dst", streamOf(tarBytes([file("d")])), { owner: me }).catch((e: Error) => e);
    expect((onto as Error).message).toBe('tar entry "d": cannot overwrite directory /dst/d with a non-directory');
    const over = await extractTarInto(root, "/dst", streamOf(tarBytes([{ header: { name: "f/", type: "dir" } }])), { owner: me }).catch((e: Error) => e);
    expect((over as Error).message).toMatch(/cannot overwrite non-directory \/dst\/f with a directory/);
    expect(readFileSync(join(root, "dst", "f"), "utf8")).toBe("keep");
  });

  test("a truncated archive is one line", async () => {
    const root = join(dir, "root");
    mkdirSync(join(root, "dst"), { recursive: true });
    const bytes = tarBytes([file("a", "x".repeat(2000))]).subarray(0, 1024);
    const err = await extractTarInto(root, "/dst", streamOf(bytes), { owner: me }).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/truncated/);
    expect(tree(root)).toEqual(["dst"]);
  });
});
