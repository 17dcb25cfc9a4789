// The content store where a unit test cannot go: a disk that fills up mid-ingest (a 1 MiB tmpfs,
// root only). The error must say so in one line and leave neither a blob nor a partial behind.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ContentStore } from "../../src/content/store.ts";
import { digestOf } from "../../src/content/digest.ts";
import { patternBytes, slowBody } from "../support/content-ingest-child.ts";
import { describeWith } from "../support/require.ts";

describeWith(["root", "bin:mount", "bin:umount"], "content store on a full disk", () => {
  const dir = mkdtempSync(join(tmpdir(), "bunker-content-full-"));
  const mnt = join(dir, "mnt");
  beforeAll(() => {
    mkdirSync(mnt);
    const r = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt], { stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`mount tmpfs: ${r.stderr.toString()}`);
  });
  afterAll(() => {
    Bun.spawnSync(["umount", mnt]);
    rmSync(dir, { recursive: true, force: true });
  });

  test("ENOSPC mid-blob: a one-line ResourceExhausted error, the partial removed", async () => {
    const store = new ContentStore(mnt);
    const bytes = patternBytes(3 << 20);
    const digest = digestOf(bytes);
    const err = await store.ingest({ digest, size: bytes.length, source: "test/full" }, async (o) => ({ body: slowBody(bytes, o, 0), offset: o })).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).name).toBe("ResourceExhaustedError");
    expect((err as Error).message).toStartWith(`blob ${digest} from test/full: no space left on the device of ${mnt}/content`);
    expect((err as Error).message).not.toContain("\n");
    expect(store.has(digest)).toBe(false);
    expect(readdirSync(join(mnt, "content/ingest"))).toEqual([]);
    // The space is back: a small blob still fits.
    expect(store.has(await store.writeBlob(patternBytes(1000)))).toBe(true);
  });
});
