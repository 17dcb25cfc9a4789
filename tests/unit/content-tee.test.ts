// The download's second reader (src/content/tee.ts) and the unpack that reads through it
// (src/images/unpack.ts): bytes in order, the shared budget that abandons a tee whose reader is
// too far behind, a download's failure reaching the reader, and an unpack that uses the tee,
// falls back to the committed blob when the tee is abandoned mid-layer, and reports the download's
// own error when the download fails. A real content store and native snapshotter in a temp dir.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tarBytes } from "../../src/archive/tar-writer.ts";
import { digestOf } from "../../src/content/digest.ts";
import { ContentStore } from "../../src/content/store.ts";
import { BlobTee, TeeAbandoned, TeeBudget } from "../../src/content/tee.ts";
import type { StoredImage } from "../../src/images/image.ts";
import { unpackImage } from "../../src/images/unpack.ts";
import { chainIds, openSnapshotter } from "../../src/snapshots/index.ts";

const bytes = (...xs: number[]) => new Uint8Array(xs);

async function readAll(stream: ReadableStream<Uint8Array>): Promise<number[]> {
  const out: number[] = [];
  for await (const chunk of stream) out.push(...chunk);
  return out;
}

describe("BlobTee", () => {
  test("chunks come out in order, pushed before or after the reader starts; the budget is given back", async () => {
    const budget = new TeeBudget(100);
    const tee = new BlobTee(budget);
    expect(tee.push(bytes(1, 2))).toBe(true);
    expect(budget.used).toBe(2);
    const all = readAll(tee.stream);
    await Bun.sleep(1);
    expect(tee.push(bytes(3))).toBe(true);
    tee.end();
    expect(await all).toEqual([1, 2, 3]);
    expect(budget.used).toBe(0);
    expect(tee.push(bytes(4))).toBe(false);
  });

  test("a chunk over the shared budget abandons that tee (its reader gets TeeAbandoned); the others go on", async () => {
    const budget = new TeeBudget(4);
    const a = new BlobTee(budget);
    const b = new BlobTee(budget);
    expect(a.push(bytes(1, 2, 3))).toBe(true);
    expect(b.push(bytes(4, 5))).toBe(false);
    expect(b.open).toBe(false);
    expect(readAll(b.stream)).rejects.toBeInstanceOf(TeeAbandoned);
    a.end();
    expect(await readAll(a.stream)).toEqual([1, 2, 3]);
    expect(budget.used).toBe(0);
  });

  test("a failed download fails the reader with its error and frees what was queued; end or fail happen once", async () => {
    const budget = new TeeBudget(10);
    const tee = new BlobTee(budget);
    tee.push(bytes(1, 2));
    tee.fail(new Error("digest mismatch"));
    tee.end();
    tee.abandon("late");
    expect(budget.used).toBe(0);
    expect(readAll(tee.stream)).rejects.toThrow("digest mismatch");
  });

  test("a reader that cancels abandons the tee", async () => {
    const tee = new BlobTee(new TeeBudget(10));
    await tee.stream.cancel();
    expect(tee.open).toBe(false);
    expect(tee.push(bytes(1))).toBe(false);
  });
});

describe("unpack through a tee", () => {
  let dir: string;
  let content: ContentStore;
  const layer = tarBytes([{ header: { name: "hello.txt", type: "file", mode: 0o644 }, body: new TextEncoder().encode("hello from the tee\n") }]);
  const diffId = digestOf(layer);
  const desc = { mediaType: "application/vnd.oci.image.layer.v1.tar", digest: diffId, size: layer.length };
  const image = (): StoredImage =>
    ({ name: "test/tee:latest", layers: [desc], diffIds: [diffId], chainIds: chainIds([diffId]) }) as unknown as StoredImage;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "bunker-tee-"));
    content = new ContentStore(dir);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** Counts the unpack's reads of the committed blob. */
  function storeReads(): { count: number } {
    const reads = { count: 0 };
    const stream = content.stream.bind(content);
    content.stream = (digest: string) => {
      reads.count++;
      return stream(digest);
    };
    return reads;
  }

  const commit = () => content.ingest({ digest: desc.digest, size: desc.size }, async () => ({ body: new Blob([layer]).stream(), offset: 0 }));
  const fileOf = (s: ReturnType<typeof openSnapshotter>) => readFileSync(join(s.dir, String(s.list().committed.length), "fs", "hello.txt"), "utf8");

  test("the layer is read from the tee, and published only once the blob is committed", async () => {
    const snapshots = openSnapshotter(dir, "native");
    const reads = storeReads();
    const tee = new BlobTee(new TeeBudget(1 << 20));
    for (let i = 0; i < layer.length; i += 700) tee.push(layer.subarray(i, i + 700));
    tee.end();
    let committed = false;
    const ready = (async () => {
      await Bun.sleep(20);
      await commit();
      committed = true;
    })();
    const n = await unpackImage(content, snapshots, image(), undefined, {
      ready: async () => {
        await ready;
        // the unpack asks only once it has read everything: nothing is published before
        expect(snapshots.has(image().chainIds[0]!)).toBe(false);
      },
      tee: () => tee,
    });
    expect(n).toBe(1);
    expect(committed).toBe(true);
    expect(reads.count).toBe(0);
    expect(fileOf(snapshots)).toBe("hello from the tee\n");
  });

  test("a tee abandoned in the middle of the layer: the unpack starts again from the committed blob", async () => {
    const snapshots = openSnapshotter(dir, "native");
    const reads = storeReads();
    const tee = new BlobTee(new TeeBudget(1 << 20));
    tee.push(layer.subarray(0, 512));
    setTimeout(() => tee.abandon("over budget"), 10);
    await commit();
    const n = await unpackImage(content, snapshots, image(), undefined, { ready: async () => undefined, tee: () => tee });
    expect(n).toBe(1);
    expect(reads.count).toBe(1);
    expect(fileOf(snapshots)).toBe("hello from the tee\n");
  });

  test("a download that fails: the unpack reports the download's error and publishes nothing", async () => {
    const snapshots = openSnapshotter(dir, "native");
    const tee = new BlobTee(new TeeBudget(1 << 20));
    const failure = new Error(`blob ${desc.digest}: digest mismatch (got sha256:00)`);
    tee.push(layer);
    tee.fail(failure);
    const ready = Promise.reject(failure);
    ready.catch(() => undefined);
    await expect(unpackImage(content, snapshots, image(), undefined, { ready: () => ready, tee: () => tee })).rejects.toThrow("digest mismatch");
    expect(snapshots.list().committed).toEqual([]);
  });
});
