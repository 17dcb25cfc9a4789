// Helpers the archive tests share: byte arrays as streams in awkward chunk sizes (so every header and
// body boundary is crossed mid-chunk), an archive read back whole, hand edits of a header block with
// its checksum resealed, and GNU tar run in a temp dir.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TarReader, type TarHeader } from "../../src/archive/tar.ts";
import { sealChecksum } from "../../src/archive/tar-format.ts";

/** `bytes` as a stream of `chunkSize`-byte chunks (the last one shorter). */
export function streamOf(bytes: Uint8Array, chunkSize = 1000): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(offset, offset + chunkSize));
      offset += chunkSize;
    },
  });
}

export interface ReadEntry {
  header: TarHeader;
  body: Uint8Array;
}

/** Every entry with its body, and the bytes the reader pulled once drained. */
export async function readArchive(bytes: Uint8Array | ReadableStream<Uint8Array>, chunkSize?: number): Promise<{ entries: ReadEntry[]; bytesRead: number }> {
  const reader = new TarReader(bytes instanceof Uint8Array ? streamOf(bytes, chunkSize) : bytes);
  const entries: ReadEntry[] = [];
  for (let entry = await reader.next(); entry; entry = await reader.next()) {
    const parts: Uint8Array[] = [];
    for await (const part of entry.body) parts.push(part.slice());
    entries.push({ header: entry.header, body: new Uint8Array(Buffer.concat(parts)) });
  }
  return { entries, bytesRead: await reader.drain() };
}

/** Overwrites a header field (offset within the 512-byte block at `blockOffset`) and reseals it. */
export function patchHeader(archive: Uint8Array, blockOffset: number, fieldOffset: number, bytes: Uint8Array | string): Uint8Array {
  const out = archive.slice();
  const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  out.set(data, blockOffset + fieldOffset);
  sealChecksum(out.subarray(blockOffset, blockOffset + 512));
  return out;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `bunker-${prefix}-`));
}

/** Runs GNU tar; throws with its stderr when it fails. */
export function gnuTar(args: string[], cwd: string): Uint8Array {
  const run = Bun.spawnSync(["tar", ...args], { cwd, stdout: "pipe", stderr: "pipe" });
  if (run.exitCode !== 0) throw new Error(`tar ${args.join(" ")}: ${run.stderr.toString()}`);
  return run.stdout;
}

export const text = (value: string): Uint8Array => new TextEncoder().encode(value);
