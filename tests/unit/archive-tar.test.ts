// The tar reader and writer against byte vectors: archives GNU tar writes in each of its formats,
// hand-made headers (base-256, global PAX, binary xattrs, libarchive xattrs, bad checksums, truncation,
// hostile sizes) and writer → reader and writer → GNU tar round trips. Chunk sizes are odd on
// purpose so that headers and bodies straddle chunk boundaries.
import { describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, linkSync } from "node:fs";
import { join } from "node:path";
import { decompressStream, detectCompression, isLayerMediaType, layerCompression, layerMediaType, MEDIA_TYPE } from "../../src/archive/compression.ts";
import { formatPaxRecord, parsePaxRecords } from "../../src/archive/pax.ts";
import { TarReader } from "../../src/archive/tar.ts";
import { formatBase256 } from "../../src/archive/tar-format.ts";
import { encodeHeader, tarBytes, tarStream } from "../../src/archive/tar-writer.ts";
import { InvalidArgumentError } from "../../src/errdefs.ts";
import { gnuTar, patchHeader, readArchive, streamOf, tempDir, text } from "../support/archive-fixtures.ts";

const LONG_DIR = "d".repeat(120);
const LONG_FILE = "f".repeat(110);
const SIZE_OFFSET = 124;
const CHECKSUM_OFFSET = 148;

function gnuTree(): string {
  const dir = tempDir("tar-src");
  mkdirSync(join(dir, "src", LONG_DIR, "sub"), { recursive: true });
  writeFileSync(join(dir, "src", LONG_DIR, "sub", LONG_FILE), "long body\n");
  writeFileSync(join(dir, "src", "x"), Buffer.alloc(1500, 7));
  linkSync(join(dir, "src", "x"), join(dir, "src", "hl"));
  symlinkSync("target/of/link", join(dir, "src", "link"));
  Bun.spawnSync(["mkfifo", join(dir, "src", "fifo")]);
  return dir;
}

async function expectInvalid(bytes: Uint8Array, message: string | RegExp, chunkSize?: number): Promise<void> {
  const error = await readArchive(bytes, chunkSize).then(() => null, (err: unknown) => err);
  expect(error).toBeInstanceOf(InvalidArgumentError);
  expect((error as Error).message).toMatch(message);
  expect((error as Error).message).not.toContain("\n");
}

describe("reading GNU tar's formats", () => {
  for (const format of ["pax", "gnu", "oldgnu", "ustar", "v7"] as const) {
    test(format, async () => {
      const dir = gnuTree();
      try {
        // ustar and v7 cannot hold the long name; GNU tar skips it (and exits 2), we check the rest.
        const run = Bun.spawnSync(["tar", `--format=${format}`, "-cf", "-", "-C", join(dir, "src"), "--sort=name", "."], { stdout: "pipe", stderr: "pipe" });
        const archive = run.stdout;
        const { entries, bytesRead } = await readArchive(archive, 777);
        expect(bytesRead).toBe(archive.length);
        const byName = new Map(entries.map((e) => [e.header.name.replace(/^\.\//, ""), e]));
        // Sorted by name, "hl" comes first and holds the data; "x" is the link to it.
        expect(byName.get("hl")!.body).toEqual(new Uint8Array(Buffer.alloc(1500, 7)));
        expect(byName.get("hl")!.header).toMatchObject({ type: "file", size: 1500 });
        expect(byName.get("x")!.header).toMatchObject({ type: "hardlink", linkname: "./hl", size: 0 });
        expect(byName.get("link")!.header).toMatchObject({ type: "symlink", linkname: "target/of/link" });
        if (format !== "v7") expect(byName.get("fifo")!.header.type).toBe("fifo");
        const long = byName.get(`${LONG_DIR}/sub/${LONG_FILE}`);
        if (format === "ustar" || format === "v7") expect(long).toBeUndefined();
        else expect(new TextDecoder().decode(long!.body)).toBe("long body\n");
        expect(byName.get("x")!.header.uid).toBe(process.getuid!());
        if (format === "pax") expect(byName.get("x")!.header.mtimeNs % 1_000_000_000n).not.toBe(-1n);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

describe("hand-made headers", () => {
  test("base-256 size, uid and a negative base-256 mtime", async () => {
    let archive: Uint8Array = tarBytes([{ header: { name: "big", type: "file", uid: 5 }, body: text("hello") }]);
    archive = patchHeader(archive, 0, SIZE_OFFSET, formatBase256(5n, 12));
    archive = patchHeader(archive, 0, 108, formatBase256(3_000_000_000n, 8));
    archive = patchHeader(archive, 0, 136, formatBase256(-100n, 12));
    const { entries } = await readArchive(archive);
    expect(entries[0]!.header).toMatchObject({ name: "big", size: 5, uid: 3_000_000_000, mtimeNs: -100_000_000_000n });
    expect(entries[0]!.body).toEqual(text("hello"));
  });

  test("an absurd base-256 size is refused, not allocated", async () => {
    const archive = patchHeader(tarBytes([{ header: { name: "huge", type: "file" }, body: text("x") }]), 0, SIZE_OFFSET, formatBase256(1n << 62n, 12));
    await expectInvalid(archive, /size 4611686018427387904 is out of range/);
  });

  test("a non-numeric size field is refused", async () => {
    const archive = patchHeader(tarBytes([{ header: { name: "bad", type: "file" }, body: text("x") }]), 0, SIZE_OFFSET, "12z4\0");
    await expectInvalid(archive, /size field "12z4" is not an octal number/);
  });

  test("a bad checksum is refused; a signed-sum checksum (old Sun tar) is accepted", async () => {
    const good = tarBytes([{ header: { name: "\u00e9t\u00e9", type: "file", uname: "a" }, body: text("x") }]);
    const bad = good.slice();
    bad[CHECKSUM_OFFSET] = 0x37;
    await expectInvalid(bad, /checksum mismatch/);
    // A header with high bytes sums differently signed; store the signed sum in the field.
    let signed = 0;
    for (let i = 0; i < 512; i++) signed += i >= 148 && i < 156 ? 32 : good[i]! > 127 ? good[i]! - 256 : good[i]!;
    const signedArchive = good.slice();
    signedArchive.set(text(`${signed.toString(8).padStart(6, "0")}\0 `), CHECKSUM_OFFSET);
    const { entries } = await readArchive(signedArchive);
    expect(entries[0]!.header.name).toBe("\u00e9t\u00e9");
  });

  test("a binary xattr value with NUL and 0xff bytes survives the PAX header as bytes", async () => {
    const capability = new Uint8Array([0x01, 0x00, 0x00, 0x02, 0xff, 0x00, 0x20, 0x00, 0x0a, 0x3d, 0xc3]);
    const archive = tarBytes([{ header: { name: "bin/ping", type: "file", mode: 0o755, xattrs: new Map([["security.capability", capability], ["user.empty", new Uint8Array(0)]]) }, body: text("ELF") }]);
    const { entries } = await readArchive(archive, 97);
    expect(entries[0]!.header.xattrs.get("security.capability")).toEqual(capability);
    expect(entries[0]!.header.xattrs.get("user.empty")).toEqual(new Uint8Array(0));
    expect(entries[0]!.body).toEqual(text("ELF"));
  });

  test("LIBARCHIVE.xattr records are URL-decoded names with base64 values", async () => {
    const value = new Uint8Array([0, 255, 1, 2]);
    const pax = formatPaxRecord(`LIBARCHIVE.xattr.${encodeURIComponent("user.a b")}`, Buffer.from(value).toString("base64"));
    const archive = withPaxHeader("x", pax, tarBytes([{ header: { name: "f", type: "file" }, body: text("1") }]));
    const { entries } = await readArchive(archive);
    expect(entries[0]!.header.xattrs.get("user.a b")).toEqual(value);
  });

  test("a global PAX header applies to every later entry; a per-entry header overrides it", async () => {
    const global = new Uint8Array(Buffer.concat([formatPaxRecord("uid", "4242"), formatPaxRecord("comment", "git commit"), formatPaxRecord("path", "ignored")]));
    const entries = tarBytes([
      { header: { name: "a", type: "file", uid: 1 }, body: text("a") },
      { header: { name: "b", type: "file", uid: 1, xattrs: new Map([["user.k", text("v")]]) }, body: text("b") },
    ]);
    const archive = withPaxHeader("g", global, entries);
    const perEntryUid = withPaxHeader("x", formatPaxRecord("uid", "7"), entries);
    const { entries: read } = await readArchive(concatBytes(archive.subarray(0, archive.length - 1024), perEntryUid));
    expect(read.map((e) => [e.header.name, e.header.uid])).toEqual([["a", 4242], ["b", 4242], ["a", 7], ["b", 4242]]);
  });

  test("PAX mtime keeps nanoseconds and negative fractions", async () => {
    const archive = withPaxHeader("x", concatBytes(formatPaxRecord("mtime", "1700000000.123456789123"), formatPaxRecord("atime", "-1.5")), tarBytes([{ header: { name: "t", type: "file" } }]));
    const { entries } = await readArchive(archive);
    expect(entries[0]!.header.mtimeNs).toBe(1_700_000_000_123_456_789n);
    expect(entries[0]!.header.atimeNs).toBe(-1_500_000_000n);
  });

  test("a PAX header over 1 MiB is refused before it is read", async () => {
    const archive = withPaxHeader("x", new Uint8Array(0), tarBytes([{ header: { name: "f", type: "file" } }]));
    const huge = patchHeader(archive, 0, SIZE_OFFSET, "00010000001\0");
    await expectInvalid(huge, /PAX header of 2097153 bytes exceeds the 1048576-byte limit/);
  });

  test("malformed PAX records are refused", () => {
    expect(() => parsePaxRecords(text("5 a=b\n"))).toThrow(/does not end in a newline/);
    expect(() => parsePaxRecords(text("x a=b\n"))).toThrow(/not a number/);
    expect(() => parsePaxRecords(text("9 a=b\n"))).toThrow(/runs past/);
    expect(() => parsePaxRecords(text("6 abc\n"))).toThrow(/no '='/);
    expect(parsePaxRecords(formatPaxRecord("k", "v=w")).get("k")).toEqual(text("v=w"));
  });

  test("a PAX path with a NUL byte is refused", async () => {
    const archive = withPaxHeader("x", formatPaxRecord("path", new Uint8Array([0x61, 0, 0x62])), tarBytes([{ header: { name: "f", type: "file" } }]));
    await expectInvalid(archive, /path contains a NUL byte/);
  });

  test("GNU sparse entries are refused with their name", async () => {
    const archive = patchHeader(tarBytes([{ header: { name: "sparse", type: "file" } }]), 0, 156, "S");
    await expectInvalid(archive, /unsupported tar entry "sparse": GNU sparse file/);
  });

  test("truncation mid-body and mid-header is an error; EOF at a header boundary is the end", async () => {
    const archive = tarBytes([{ header: { name: "a", type: "file" }, body: new Uint8Array(700) }, { header: { name: "b", type: "file" }, body: text("b") }]);
    await expectInvalid(archive.subarray(0, 900), /^truncated tar archive$/);
    await expectInvalid(archive.subarray(0, 1536 + 100), /^truncated tar archive$/);
    const noEnd = await readArchive(archive.subarray(0, archive.length - 1024));
    expect(noEnd.entries.map((e) => e.header.name)).toEqual(["a", "b"]);
    const oneZeroBlock = await readArchive(archive.subarray(0, archive.length - 512));
    expect(oneZeroBlock.entries.length).toBe(2);
    await expectInvalid(withPaxHeader("x", formatPaxRecord("path", "p"), new Uint8Array(0)), /extended header is not followed by its entry/);
  });

  test("bodies left unread are skipped; a body read after next() is refused", async () => {
    const archive = tarBytes([{ header: { name: "a", type: "file" }, body: new Uint8Array(5000).fill(1) }, { header: { name: "b", type: "file" }, body: text("bee") }]);
    const reader = new TarReader(streamOf(archive, 333));
    const first = (await reader.next())!;
    const iterator = first.body[Symbol.asyncIterator]();
    await iterator.next();
    const second = (await reader.next())!;
    expect(second.header.name).toBe("b");
    expect(iterator.next()).rejects.toThrow(/body read after the next entry/);
    expect(await reader.next()).toBeNull();
  });

  test("drain reads GNU tar's record padding so the byte count covers the whole stream", async () => {
    const archive = concatBytes(tarBytes([{ header: { name: "a", type: "file" }, body: text("a") }]), new Uint8Array(8192));
    const seen: number[] = [];
    const reader = new TarReader(streamOf(archive, 4096), { onChunk: (chunk) => seen.push(chunk.length) });
    while (await reader.next());
    expect(await reader.drain()).toBe(archive.length);
    expect(seen.reduce((a, b) => a + b, 0)).toBe(archive.length);
  });
});

describe("writer round trips", () => {
  const longName = `${"dir/".repeat(70)}file-with-a-long-name`;
  const entries = [
    { header: { name: "dir", type: "dir" as const, mode: 0o1777, mtimeNs: 1_600_000_000_000_000_000n } },
    { header: { name: longName, type: "file" as const, mode: 0o4755, uid: 3_000_000, gid: 70_000, uname: "\u00fcser", gname: "g".repeat(40), mtimeNs: 1_600_000_000_123_456_789n }, body: new Uint8Array(1025).map((_, i) => i % 251) },
    { header: { name: "link", type: "symlink" as const, linkname: `/${"t".repeat(300)}` } },
    { header: { name: "hard", type: "hardlink" as const, linkname: longName } },
    { header: { name: "dev/null", type: "char" as const, devmajor: 1, devminor: 3, mode: 0o666 } },
    { header: { name: "dev/big", type: "block" as const, devmajor: 4095, devminor: 3_000_000 } },
    { header: { name: "fifo", type: "fifo" as const, mtimeNs: -5_000_000_000n } },
  ];

  test("writer → reader keeps every field", async () => {
    const { entries: read } = await readArchive(tarBytes(entries), 61);
    expect(read.map((e) => e.header.name)).toEqual(["dir/", longName, "link", "hard", "dev/null", "dev/big", "fifo"]);
    expect(read[0]!.header).toMatchObject({ type: "dir", mode: 0o1777, mtimeNs: 1_600_000_000_000_000_000n });
    expect(read[1]!.header).toMatchObject({ mode: 0o4755, uid: 3_000_000, gid: 70_000, uname: "\u00fcser", gname: "g".repeat(40), mtimeNs: 1_600_000_000_123_456_789n, size: 1025 });
    expect(read[1]!.body).toEqual(entries[1]!.body!);
    expect(read[2]!.header.linkname).toBe(`/${"t".repeat(300)}`);
    expect(read[3]!.header).toMatchObject({ type: "hardlink", linkname: longName });
    expect(read[4]!.header).toMatchObject({ type: "char", devmajor: 1, devminor: 3, mode: 0o666 });
    expect(read[5]!.header).toMatchObject({ type: "block", devmajor: 4095, devminor: 3_000_000 });
    expect(read[6]!.header.mtimeNs).toBe(-5_000_000_000n);
  });

  test("the streamed writer yields the same bytes as the in-memory one, and checks body sizes", async () => {
    async function* chunks(bytes: Uint8Array) {
      for (let i = 0; i < bytes.length; i += 100) yield bytes.subarray(i, i + 100);
    }
    const streamed = tarStream(entries.map((e) => (e.body ? { header: { ...e.header, size: e.body.length }, body: chunks(e.body) } : e)));
    expect(new Uint8Array(await new Response(streamed).arrayBuffer())).toEqual(tarBytes(entries));
    const short = tarStream([{ header: { name: "s", type: "file", size: 10 }, body: chunks(text("abc")) }]);
    expect(new Response(short).arrayBuffer()).rejects.toThrow(/body of 3 bytes, size says 10/);
  });

  test("GNU tar lists and extracts what the writer wrote", () => {
    const dir = tempDir("tar-rt");
    try {
      const archive = tarBytes([{ header: { name: "dir", type: "dir", uid: process.getuid!(), gid: process.getgid!() } }, { header: { name: longName, type: "file", mtimeNs: 1_600_000_000_500_000_000n, uid: process.getuid!(), gid: process.getgid!() }, body: text("payload") }]);
      writeFileSync(join(dir, "a.tar"), archive);
      const listing = new TextDecoder().decode(gnuTar(["-tf", "a.tar"], dir)).trim().split("\n");
      expect(listing).toEqual(["dir/", longName]);
      mkdirSync(join(dir, "out"));
      gnuTar(["-xf", "../a.tar"], join(dir, "out"));
      expect(readFileSync(join(dir, "out", longName), "utf8")).toBe("payload");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("encodeHeader uses plain ustar when ustar can say it all", () => {
    expect(encodeHeader({ name: "short", type: "file", size: 3 }).length).toBe(512);
    expect(encodeHeader({ name: "x".repeat(101), type: "file" }).length).toBeGreaterThan(512);
  });
});

describe("compression", () => {
  const archive = tarBytes([{ header: { name: "f", type: "file" }, body: new Uint8Array(100_000).fill(3) }]);

  test("detects by magic bytes and decompresses gzip, zstd and plain tar", async () => {
    expect(detectCompression(Bun.gzipSync(archive))).toBe("gzip");
    expect(detectCompression(Bun.zstdCompressSync(archive))).toBe("zstd");
    expect(detectCompression(archive)).toBe("none");
    expect(() => detectCompression(text("BZh91AY"))).toThrow(/bzip2/);
    for (const [bytes, kind] of [[Bun.gzipSync(archive), "gzip"], [Bun.zstdCompressSync(archive), "zstd"], [archive, "none"]] as const) {
      const { compression, stream } = await decompressStream(streamOf(new Uint8Array(bytes), 3));
      expect(compression).toBe(kind);
      const { entries } = await readArchive(stream);
      expect(entries[0]!.body.length).toBe(100_000);
    }
  });

  test("media types", () => {
    expect(layerCompression(MEDIA_TYPE.dockerLayerGzip)).toBe("gzip");
    expect(layerCompression(MEDIA_TYPE.ociLayerZstd)).toBe("zstd");
    expect(layerCompression(MEDIA_TYPE.ociLayer)).toBe("none");
    expect(isLayerMediaType("application/vnd.oci.image.config.v1+json")).toBe(false);
    expect(() => layerCompression("application/x-foo")).toThrow(InvalidArgumentError);
    expect(layerMediaType("zstd")).toBe(MEDIA_TYPE.ociLayerZstd);
    expect(layerMediaType("gzip", "docker")).toBe(MEDIA_TYPE.dockerLayerGzip);
  });
});

function concatBytes(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

/** A PAX header of kind 'x' or 'g' carrying `records`, in front of `rest`. */
function withPaxHeader(kind: "x" | "g", records: Uint8Array, rest: Uint8Array): Uint8Array {
  const header = encodeHeader({ name: "PaxHeaders/h", type: "file", size: records.length });
  const withType = patchHeader(header, 0, 156, kind);
  const padding = new Uint8Array((512 - (records.length % 512)) % 512);
  return concatBytes(withType, records, padding, rest);
}
