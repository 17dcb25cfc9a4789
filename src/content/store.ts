// bunker's content store: `<root>/content` is an OCI image layout (image-spec's image-layout.md:
// `oci-layout`, `index.json`, `blobs/sha256/<hex>`) so that skopeo and umoci read it as it is, plus
// `ingest/<hex>/` for downloads in progress (containerd's local store keeps the same split: a blob
// is visible only once committed, and an ingest is resumable). Writes follow containerd's
// content/local writer: data to a private file, then fsync, size and digest check, rename into
// blobs/. The directory is fsynced once per name written (names.ts), not per blob: a rename a power
// loss undoes only costs a download again, since nothing names the blob until that fsync (a
// 12-blob pull spent ~35 ms in per-blob directory fsyncs). A per-blob flock makes concurrent pulls in different processes
// download a blob once; the kernel drops it when a puller dies, and the next one resumes.
import { existsSync, linkSync, mkdirSync, openSync, closeSync, readdirSync, readSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, ResourceExhaustedError, errorMessage } from "../errdefs.ts";
import { DigestHasher, digestHex, digestOf } from "./digest.ts";
import { acquireLock, tryLock, type HeldLock } from "../sys/filelock.ts";
import { LayoutNames } from "./names.ts";
import type { BlobTee } from "./tee.ts";

export const OCI_LAYOUT_FILE = "oci-layout";
export const OCI_LAYOUT_VERSION = "1.0.0";
const LOCK_POLL_MS = 25;
const FILE_STREAM_CHUNK = 64 << 10;
const TEE_GC_BYTES = 16 << 20;

/** What an ingest must produce; `source` (e.g. the repository) only names it in errors. */
export interface ExpectedBlob {
  digest: string;
  size: number;
  source?: string;
}

/** A body the opener returns: `offset` is where it starts (0 when a server ignored a Range). */
export interface OpenedBody {
  body: ReadableStream<Uint8Array>;
  offset: number;
}

export type BodyOpener = (offset: number) => Promise<OpenedBody>;

export class ContentStore {
  /** `<root>/content`: the OCI layout's directory. */
  readonly dir: string;
  /** The image names in index.json. */
  readonly names: LayoutNames;
  private laidOut = false;

  constructor(root: string) {
    this.dir = join(root, "content");
    this.names = new LayoutNames(this.dir, () => this.ensureLayout());
  }

  /** Creates oci-layout, index.json and the blob and ingest dirs if missing (idempotent). */
  ensureLayout(): void {
    if (this.laidOut) return;
    mkdirSync(join(this.dir, "blobs", "sha256"), { recursive: true });
    mkdirSync(join(this.dir, "ingest"), { recursive: true });
    writeIfMissing(join(this.dir, OCI_LAYOUT_FILE), JSON.stringify({ imageLayoutVersion: OCI_LAYOUT_VERSION }));
    writeIfMissing(join(this.dir, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [] }));
    this.laidOut = true;
  }

  blobPath(digest: string): string {
    return join(this.dir, "blobs", "sha256", digestHex(digest));
  }

  has(digest: string): boolean {
    return this.size(digest) !== null;
  }

  /** The committed blob's size, or null when it is not in the store. */
  size(digest: string): number | null {
    try {
      return statSync(this.blobPath(digest)).size;
    } catch (err) {
      if (isCode(err, "ENOENT")) return null;
      throw err;
    }
  }

  /**
   * A whole blob, for manifests and configs: refused over `maxBytes` (a hostile registry or a bad
   * descriptor must not make us buffer gigabytes), and re-verified since it is small and parsed next.
   */
  async readBlob(digest: string, maxBytes: number): Promise<Uint8Array> {
    const size = this.size(digest);
    if (size === null) throw new NotFoundError(`blob ${digest}: not found in the content store`);
    if (size > maxBytes) throw new InvalidArgumentError(`blob ${digest}: ${size} bytes is over the ${maxBytes}-byte limit`);
    const bytes = new Uint8Array(await Bun.file(this.blobPath(digest)).arrayBuffer());
    const got = digestOf(bytes);
    if (got !== digest) throw new FailedPreconditionError(`blob ${digest}: content store copy is corrupt (its digest is ${got})`);
    return bytes;
  }

  stream(digest: string): ReadableStream<Uint8Array> {
    if (!this.has(digest)) throw new NotFoundError(`blob ${digest}: not found in the content store`);
    return fileStream(this.blobPath(digest));
  }

  /** Committed digests (files in blobs/sha256 that are not digests are ignored). */
  list(): string[] {
    let names: string[];
    try {
      names = readdirSync(join(this.dir, "blobs", "sha256"));
    } catch (err) {
      if (isCode(err, "ENOENT")) return [];
      throw err;
    }
    return names.filter((n) => /^[a-f0-9]{64}$/.test(n)).map((n) => `sha256:${n}`).sort();
  }

  /** Removes a committed blob; false when it was not there. */
  delete(digest: string): boolean {
    try {
      unlinkSync(this.blobPath(digest));
      return true;
    } catch (err) {
      if (isCode(err, "ENOENT")) return false;
      throw err;
    }
  }

  /** Stores bytes we made ourselves (an index or manifest we wrote); returns their digest. */
  async writeBlob(bytes: Uint8Array): Promise<string> {
    const digest = digestOf(bytes);
    await this.ingest({ digest, size: bytes.length }, async () => ({ body: new Blob([bytes]).stream(), offset: 0 }));
    return digest;
  }

  /**
   * Downloads a blob into the store unless it is there. Resumes a partial ingest left by a dead
   * process (re-hashing what is on disk, then `open(offset)`), waits for a live process that is
   * ingesting the same blob, and commits only content of the expected size and digest.
   */
  async ingest(expected: ExpectedBlob, open: BodyOpener, onProgress?: (bytes: number) => void, tee?: BlobTee): Promise<void> {
    try {
      await this.ingestOnce(expected, open, onProgress, tee);
    } catch (err) {
      tee?.fail(err);
      throw err;
    } finally {
      // a blob already here, another process's download, a resumed one: the reader uses the file
      tee?.abandon("the blob was not downloaded from its first byte here");
    }
  }

  private async ingestOnce(expected: ExpectedBlob, open: BodyOpener, onProgress?: (bytes: number) => void, tee?: BlobTee): Promise<void> {
    const hex = digestHex(expected.digest);
    if (!Number.isSafeInteger(expected.size) || expected.size < 0) {
      throw new InvalidArgumentError(`blob ${expected.digest}: invalid size ${expected.size}`);
    }
    const what = `blob ${expected.digest}${expected.source ? ` from ${expected.source}` : ""}`;
    this.ensureLayout();
    const dir = join(this.dir, "ingest", hex);
    if (this.committed(expected, what)) {
      // a process SIGKILLed between its commit's rename and removing its ingest dir left the dir
      this.removeDeadIngest(dir);
      return onProgress?.(expected.size);
    }
    const lock = await this.lockIngest(dir, expected, what);
    if (lock === null) return onProgress?.(expected.size); // another process committed it while we waited
    try {
      if (this.committed(expected, what)) {
        // Committed by the holder we waited for, after our mkdir re-created its dir: tidy it.
        rmSync(dir, { recursive: true, force: true });
        return onProgress?.(expected.size);
      }
      await this.download(dir, expected, what, open, onProgress, tee);
    } finally {
      lock.release();
    }
  }

  /** Removes an ingest dir no live process holds (a live holder removes its own); false if none was removed. */
  private removeDeadIngest(dir: string): boolean {
    let lock: HeldLock | null;
    try {
      lock = tryLock(join(dir, "lock"));
    } catch (err) {
      if (isCode(err, "ENOENT", "ENOTDIR")) return false;
      throw err;
    }
    if (lock === null) return false; // a live pull owns it
    try {
      rmSync(dir, { recursive: true, force: true });
      return true;
    } finally {
      lock.release();
    }
  }

  /** Ingests no live process holds: leftovers of dead pulls. Removes them; returns their digests. */
  cleanIngests(): string[] {
    const base = join(this.dir, "ingest");
    let names: string[];
    try {
      names = readdirSync(base);
    } catch (err) {
      if (isCode(err, "ENOENT")) return [];
      throw err;
    }
    const removed: string[] = [];
    for (const name of names) {
      if (this.removeDeadIngest(join(base, name))) removed.push(/^[a-f0-9]{64}$/.test(name) ? `sha256:${name}` : name);
    }
    return removed;
  }

  /**
   * Stores a stream whose digest is known only once it is read (the files of an archive being
   * loaded): written under a held ingest dir (so cleanIngests leaves a live import alone), hashed on
   * the way, synced, then renamed into blobs/ unless the blob is already there. `expectedSize`, when
   * the source declared one, must match.
   */
  async importStream(body: AsyncIterable<Uint8Array>, expectedSize?: number): Promise<{ digest: string; size: number }> {
    this.ensureLayout();
    const dir = join(this.dir, "ingest", `import-${process.pid}-${Math.random().toString(36).slice(2)}`);
    mkdirSync(dir, { recursive: true });
    const lock = tryLock(join(dir, "lock"));
    try {
      const dataPath = join(dir, "data");
      const hasher = new DigestHasher();
      const file = await open(dataPath, "w", 0o644);
      try {
        for await (const chunk of body) {
          for (let off = 0; off < chunk.length; ) {
            try {
              off += (await file.write(chunk, off, chunk.length - off)).bytesWritten;
            } catch (err) {
              if (!isCode(err, "ENOSPC", "EDQUOT")) throw err;
              throw new ResourceExhaustedError(`import: no space left on the device of ${this.dir} (${errorMessage(err)})`);
            }
          }
          hasher.update(chunk);
        }
        await file.sync();
      } finally {
        await file.close();
      }
      if (expectedSize !== undefined && hasher.bytes !== expectedSize) {
        throw new FailedPreconditionError(`import: got ${hasher.bytes} bytes where ${expectedSize} were declared`);
      }
      const digest = hasher.digest();
      if (!this.has(digest)) {
        renameSync(dataPath, this.blobPath(digest));
      }
      return { digest, size: hasher.bytes };
    } finally {
      rmSync(dir, { recursive: true, force: true });
      lock?.release();
    }
  }

  private committed(expected: ExpectedBlob, what: string): boolean {
    const size = this.size(expected.digest);
    if (size === null) return false;
    if (size !== expected.size) {
      throw new FailedPreconditionError(`${what}: size mismatch (the stored blob has ${size} bytes, the descriptor says ${expected.size})`);
    }
    return true;
  }

  /** The ingest's lock, or null when the blob got committed while we waited for it. */
  private async lockIngest(dir: string, expected: ExpectedBlob, what: string): Promise<HeldLock | null> {
    for (;;) {
      if (this.committed(expected, what)) return null;
      mkdirSync(dir, { recursive: true });
      let lock: HeldLock | null = null;
      try {
        lock = tryLock(join(dir, "lock"));
      } catch (err) {
        // The holder finished and removed the dir between our mkdir and open: look again.
        if (!isCode(err, "ENOENT")) throw err;
      }
      if (lock) return lock;
      await Bun.sleep(LOCK_POLL_MS);
    }
  }

  private async download(dir: string, expected: ExpectedBlob, what: string, openBody: BodyOpener, onProgress?: (bytes: number) => void, tee?: BlobTee): Promise<void> {
    const dataPath = join(dir, "data");
    const file = await open(dataPath, "a+", 0o644);
    const hasher = new DigestHasher();
    let closed = false;
    try {
      let have = (await file.stat()).size;
      if (have > expected.size) {
        await file.truncate(0);
        have = 0;
      }
      // A resumed ingest re-hashes what a dead process wrote: the hash state did not survive it.
      if (have > 0) for await (const chunk of Bun.file(dataPath).slice(0, have).stream()) hasher.update(chunk);
      if (have < expected.size) {
        const { body, offset } = await openBody(have);
        if (offset !== have) {
          if (offset !== 0) throw new InvalidArgumentError(`${what}: the source resumed at byte ${offset}, not ${have}`);
          await file.truncate(0); // the server ignored the Range: start over
          hasher.reset();
        }
        onProgress?.(hasher.bytes);
        // the tee's reader needs every byte from the first
        await this.copy(body, file, hasher, expected, what, dir, onProgress, hasher.bytes === 0 ? tee : undefined);
      }
      await file.sync();
      await file.close();
      closed = true;
      if (hasher.bytes !== expected.size) {
        // A short body (a dropped connection) keeps the partial data: the next pull resumes it.
        throw new FailedPreconditionError(`${what}: short read (got ${hasher.bytes} of ${expected.size} bytes)`);
      }
      const got = hasher.digest();
      if (got !== expected.digest) {
        rmSync(dir, { recursive: true, force: true });
        throw new FailedPreconditionError(`${what}: digest mismatch (got ${got})`);
      }
      renameSync(dataPath, this.blobPath(expected.digest));
      rmSync(dir, { recursive: true, force: true });
    } finally {
      if (!closed) await file.close().catch(() => {});
    }
  }

  private async copy(
    body: ReadableStream<Uint8Array>, file: Awaited<ReturnType<typeof open>>, hasher: DigestHasher,
    expected: ExpectedBlob, what: string, dir: string, onProgress?: (bytes: number) => void, tee?: BlobTee,
  ): Promise<void> {
    const reader = body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) {
          // a short body is the ingest's error, which fails the tee
          if (hasher.bytes === expected.size) tee?.end();
          return;
        }
        if (hasher.bytes + value.length > expected.size) {
          rmSync(dir, { recursive: true, force: true });
          throw new FailedPreconditionError(`${what}: size mismatch (more than the descriptor's ${expected.size} bytes)`);
        }
        for (let off = 0; off < value.length;) {
          try {
            off += (await file.write(value, off, value.length - off)).bytesWritten;
          } catch (err) {
            if (!isCode(err, "ENOSPC", "EDQUOT")) throw err;
            rmSync(dir, { recursive: true, force: true });
            throw new ResourceExhaustedError(`${what}: no space left on the device of ${this.dir} (${errorMessage(err)})`);
          }
        }
        hasher.update(value);
        tee?.push(value);
        onProgress?.(hasher.bytes);
        // while a tee feeds an unpack, two streaming pipelines make garbage at once: a 100 MiB-layer
        // pull peaked at 98-107 MiB RSS (goal: under 100) without a collection every 16 MiB, 73-86 with
        if (tee?.open && Math.floor(hasher.bytes / TEE_GC_BYTES) !== Math.floor((hasher.bytes - value.length) / TEE_GC_BYTES)) Bun.gc(true);
      }
    } finally {
      reader.cancel().catch(() => {});
      reader.releaseLock();
    }
  }
}

/**
 * A file as a stream of fresh 64 KiB chunks, read when the consumer asks (the file opens on the first
 * pull and closes at its end or on cancel). Not Bun.file().stream(): its 512 KiB chunks pile up as
 * garbage faster than the collector frees them, and a `bunker pull` of a 100 MiB layer peaked at
 * 92-102 MiB of RSS while unpacking from it; with these, 78-88 MiB (bench/images.ts). Reads are
 * synchronous, as the layer applier's writes are: each blocks the loop for one small read.
 */
function fileStream(path: string): ReadableStream<Uint8Array> {
  let fd: number | undefined;
  const close = () => {
    if (fd !== undefined && fd >= 0) closeSync(fd);
    fd = -1;
  };
  return new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (fd === -1) return controller.close();
        try {
          fd ??= openSync(path, "r");
          const chunk = new Uint8Array(FILE_STREAM_CHUNK);
          const n = readSync(fd, chunk, 0, chunk.length, null);
          if (n > 0) return controller.enqueue(n === chunk.length ? chunk : chunk.subarray(0, n));
          close();
          controller.close();
        } catch (err) {
          close();
          controller.error(err);
        }
      },
      cancel: close,
    },
    { highWaterMark: 0 },
  );
}

/** Creates a file with its whole content at once; a link (not a rename) never replaces a newer one. */
function writeIfMissing(path: string, text: string): void {
  if (existsSync(path)) return;
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  writeFileSync(tmp, text);
  try {
    linkSync(tmp, path);
  } catch (err) {
    if (!isCode(err, "EEXIST")) throw err;
  } finally {
    unlinkSync(tmp);
  }
}

export function isCode(err: unknown, ...codes: string[]): boolean {
  return typeof err === "object" && err !== null && codes.includes((err as { code?: string }).code ?? "");
}
