// The content store (src/content/store.ts) on a real temp dir: layout files, blob CRUD, digest
// validation, ingest commit / mismatch / short read / resume / ignored Range, stale-ingest cleanup,
// and two processes ingesting one blob (real flock; no root needed).
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ContentStore, type OpenedBody } from "../../src/content/store.ts";
import { digestOf, digestHex, DigestHasher } from "../../src/content/digest.ts";
import { tryLock } from "../../src/sys/filelock.ts";
import { patternBytes, slowBody } from "../support/content-ingest-child.ts";

const CHILD = join(import.meta.dir, "../support/content-ingest-child.ts");
let root: string;
let store: ContentStore;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "bunker-content-"));
  store = new ContentStore(root);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const bodyOf = (bytes: Uint8Array, offset = 0): OpenedBody => ({ body: slowBody(bytes, offset, 0), offset });
const ingestDirs = () => (existsSync(join(root, "content/ingest")) ? readdirSync(join(root, "content/ingest")) : []);

describe("digests", () => {
  test("only sha256:<64 lowercase hex> is accepted, so a digest can never name another path", () => {
    const good = digestOf("x");
    expect(digestHex(good)).toBe(good.slice(7));
    for (const bad of ["", "sha256:", `sha256:${"A".repeat(64)}`, `sha512:${"a".repeat(128)}`, "sha256:../../etc/passwd", `sha256:${"a".repeat(63)}`]) {
      expect(() => store.blobPath(bad)).toThrow(/invalid digest/);
    }
  });

  test("the incremental hasher equals the one-shot digest, and reset starts over", () => {
    const h = new DigestHasher();
    h.update(new TextEncoder().encode("ab"));
    expect(h.digest()).toBe(digestOf("ab"));
    h.update(new TextEncoder().encode("c"));
    expect(h.digest()).toBe(digestOf("abc"));
    expect(h.bytes).toBe(3);
    h.reset();
    h.update(new TextEncoder().encode("z"));
    expect(h.digest()).toBe(digestOf("z"));
  });
});

describe("layout and blobs", () => {
  test("an OCI image layout: oci-layout, index.json, blobs/sha256", async () => {
    const d = await store.writeBlob(new TextEncoder().encode("hello"));
    expect(JSON.parse(readFileSync(join(root, "content/oci-layout"), "utf8"))).toEqual({ imageLayoutVersion: "1.0.0" });
    expect(JSON.parse(readFileSync(join(root, "content/index.json"), "utf8"))).toEqual({ schemaVersion: 2, manifests: [] });
    expect(readFileSync(join(root, "content/blobs/sha256", d.slice(7)), "utf8")).toBe("hello");
  });

  test("write, has, size, read, stream, list, delete", async () => {
    const bytes = new TextEncoder().encode("some manifest");
    const d = await store.writeBlob(bytes);
    expect(d).toBe(digestOf(bytes));
    expect(store.has(d)).toBe(true);
    expect(store.size(d)).toBe(bytes.length);
    expect(new TextDecoder().decode(await store.readBlob(d, 1024))).toBe("some manifest");
    expect(await new Response(store.stream(d)).text()).toBe("some manifest");
    expect(store.list()).toEqual([d]);
    expect(store.delete(d)).toBe(true);
    expect(store.delete(d)).toBe(false);
    expect(store.has(d)).toBe(false);
    expect(store.size(d)).toBeNull();
    await expect(store.readBlob(d, 1024)).rejects.toThrow(/not found/);
    expect(() => store.stream(d)).toThrow(/not found/);
  });

  test("readBlob refuses a blob over its cap and a corrupt copy", async () => {
    const d = await store.writeBlob(new Uint8Array(2000));
    await expect(store.readBlob(d, 1000)).rejects.toThrow(`blob ${d}: 2000 bytes is over the 1000-byte limit`);
    writeFileSync(store.blobPath(d), new Uint8Array(2000).fill(1));
    await expect(store.readBlob(d, 4000)).rejects.toThrow(/content store copy is corrupt/);
  });
});

describe("ingest", () => {
  const bytes = patternBytes(300_000);
  const digest = digestOf(bytes);

  test("commits a verified blob, reports progress, and leaves no ingest behind", async () => {
    const seen: number[] = [];
    await store.ingest({ digest, size: bytes.length }, async (o) => bodyOf(bytes, o), (n) => seen.push(n));
    expect(Buffer.from(readFileSync(store.blobPath(digest))).equals(Buffer.from(bytes))).toBe(true);
    expect(seen.at(-1)).toBe(bytes.length);
    expect(seen.length).toBeGreaterThan(2);
    expect(ingestDirs()).toEqual([]);
  });

  test("a committed blob is not fetched again", async () => {
    await store.writeBlob(bytes);
    let opened = 0;
    await store.ingest({ digest, size: bytes.length }, async (o) => (opened++, bodyOf(bytes, o)));
    expect(opened).toBe(0);
  });

  test("a committed blob's ingest dir left by a process killed between commit and clean-up is removed by the next ingest", async () => {
    await store.writeBlob(bytes);
    mkdirSync(join(root, "content", "ingest", digest.slice(7)), { recursive: true });
    let opened = 0;
    await store.ingest({ digest, size: bytes.length }, async (o) => (opened++, bodyOf(bytes, o)));
    expect(opened).toBe(0);
    expect(ingestDirs()).toEqual([]);
  });

  test("a digest mismatch throws one clear line and commits nothing", async () => {
    const other = patternBytes(300_001).subarray(1);
    const err = await store.ingest({ digest, size: bytes.length, source: "docker.io/library/x" }, async (o) => bodyOf(other, o)).catch((e: Error) => e);
    expect((err as Error).message).toBe(`blob ${digest} from docker.io/library/x: digest mismatch (got ${digestOf(other)})`);
    expect(store.has(digest)).toBe(false);
    expect(ingestDirs()).toEqual([]);
  });

  test("more bytes than the descriptor's size is a mismatch; a committed blob of another size too", async () => {
    const longer = new Uint8Array(bytes.length + 10);
    longer.set(bytes);
    await expect(store.ingest({ digest, size: bytes.length }, async (o) => bodyOf(longer, o))).rejects.toThrow(/size mismatch \(more than the descriptor's 300000 bytes\)/);
    expect(ingestDirs()).toEqual([]);
    await store.writeBlob(bytes);
    await expect(store.ingest({ digest, size: 5 }, async (o) => bodyOf(bytes, o))).rejects.toThrow(/size mismatch \(the stored blob has 300000 bytes, the descriptor says 5\)/);
  });

  test("a short body keeps the partial data, and the next ingest resumes from its end", async () => {
    const half = bytes.subarray(0, 123_456);
    await expect(store.ingest({ digest, size: bytes.length }, async (o) => bodyOf(half, o))).rejects.toThrow(/short read \(got 123456 of 300000 bytes\)/);
    expect(store.has(digest)).toBe(false);
    const offsets: number[] = [];
    await store.ingest({ digest, size: bytes.length }, async (o) => (offsets.push(o), bodyOf(bytes, o)));
    expect(offsets).toEqual([123_456]);
    expect(digestOf(readFileSync(store.blobPath(digest)))).toBe(digest);
  });

  test("a source that ignores the Range (starts at 0) makes the ingest start over", async () => {
    await store.ingest({ digest, size: bytes.length }, async (o) => bodyOf(bytes.subarray(0, 1000), o)).catch(() => {});
    const offsets: number[] = [];
    await store.ingest({ digest, size: bytes.length }, async (o) => (offsets.push(o), bodyOf(bytes, 0)));
    expect(offsets).toEqual([1000]);
    expect(digestOf(readFileSync(store.blobPath(digest)))).toBe(digest);
  });

  test("a partial corrupted on disk fails the digest at commit and is removed", async () => {
    await store.ingest({ digest, size: bytes.length }, async (o) => bodyOf(bytes.subarray(0, 5000), o)).catch(() => {});
    writeFileSync(join(root, "content/ingest", digest.slice(7), "data"), new Uint8Array(5000));
    await expect(store.ingest({ digest, size: bytes.length }, async (o) => bodyOf(bytes, o))).rejects.toThrow(/digest mismatch/);
    expect(ingestDirs()).toEqual([]);
    await store.ingest({ digest, size: bytes.length }, async (o) => bodyOf(bytes, o));
    expect(store.has(digest)).toBe(true);
  });

  test("invalid descriptors are refused before anything is written", async () => {
    await expect(store.ingest({ digest: "sha256:nope", size: 1 }, async (o) => bodyOf(bytes, o))).rejects.toThrow(/invalid digest/);
    await expect(store.ingest({ digest, size: -1 }, async (o) => bodyOf(bytes, o))).rejects.toThrow(/invalid size/);
    expect(ingestDirs()).toEqual([]);
  });

  test("cleanIngests removes leftovers nobody holds and keeps one that is held", async () => {
    await store.ingest({ digest, size: bytes.length }, async (o) => bodyOf(bytes.subarray(0, 10), o)).catch(() => {});
    const other = patternBytes(10);
    const otherDir = join(root, "content/ingest", digestOf(other).slice(7));
    mkdirSync(otherDir, { recursive: true });
    const held = tryLock(join(otherDir, "lock"))!;
    try {
      expect(store.cleanIngests()).toEqual([digest]);
      expect(ingestDirs()).toEqual([digestOf(other).slice(7)]);
    } finally {
      held.release();
    }
    expect(store.cleanIngests()).toEqual([digestOf(other)]);
  });
});

describe("two processes", () => {
  const size = 2_000_000;
  const bytes = patternBytes(size);
  const digest = digestOf(bytes);

  function child(...args: (string | number)[]) {
    const proc = Bun.spawn([process.execPath, CHILD, root, String(size), ...args.map(String)], { stdout: "pipe", stderr: "inherit" });
    const lines: Record<string, unknown>[] = [];
    const reading = (async () => {
      let buf = "";
      for await (const chunk of proc.stdout) {
        buf += new TextDecoder().decode(chunk);
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          lines.push(JSON.parse(buf.slice(0, nl)));
          buf = buf.slice(nl + 1);
        }
      }
    })();
    return { proc, lines, done: async () => (await proc.exited, await reading, lines) };
  }

  test("concurrent ingests of one blob download it once; both see it committed", async () => {
    // 31 chunks of 64 KiB, 20 ms apart: ~0.6 s, long enough for the second to find the lock taken.
    const a = child(20), b = child(20);
    const [la, lb] = await Promise.all([a.done(), b.done()]);
    expect(a.proc.exitCode).toBe(0);
    expect(b.proc.exitCode).toBe(0);
    const opened = [...la, ...lb].filter((l) => "opened" in l);
    expect(opened).toEqual([{ opened: 0 }]);
    expect(la.concat(lb).filter((l) => l.done)).toHaveLength(2);
    expect(digestOf(readFileSync(store.blobPath(digest)))).toBe(digest);
    expect(ingestDirs()).toEqual([]);
  }, 30_000);

  test("a process killed mid-ingest leaves a partial the next ingest resumes (its lock died with it)", async () => {
    const a = child(5, 1_000_000);
    const deadline = Date.now() + 20_000;
    while (!a.lines.some((l) => "stopped" in l)) {
      if (Date.now() > deadline) throw new Error("child never reached the stop point");
      await Bun.sleep(20);
    }
    process.kill(a.proc.pid, "SIGKILL");
    await a.done();
    const partial = readFileSync(join(root, "content/ingest", digest.slice(7), "data")).length;
    expect(partial).toBeGreaterThanOrEqual(1_000_000);
    expect(partial).toBeLessThan(size);
    const offsets: number[] = [];
    await store.ingest({ digest, size }, async (o) => (offsets.push(o), bodyOf(bytes, o)));
    expect(offsets).toEqual([partial]);
    expect(digestOf(readFileSync(store.blobPath(digest)))).toBe(digest);
  }, 30_000);
});
