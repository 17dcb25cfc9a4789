// Content digests as the content store accepts them: `sha256:<64 lowercase hex>` only (go-digest's
// canonical algorithm; containerd's content store also stores nothing else). A digest names a file
// under blobs/sha256/, so anything looser would be a path-traversal hole: validation is strict.
// Hashing is incremental (Bun.CryptoHasher) because blobs arrive as streams and may be resumed.
import { InvalidArgumentError } from "../errdefs.ts";

const SHA256_DIGEST = /^sha256:([a-f0-9]{64})$/;

/** Whether `d` is a canonical sha256 digest. */
export function isSha256Digest(d: unknown): d is string {
  return typeof d === "string" && SHA256_DIGEST.test(d);
}

/** Validates a digest and returns its hex part; InvalidArgumentError names the bad input. */
export function digestHex(d: string): string {
  const m = typeof d === "string" ? SHA256_DIGEST.exec(d) : null;
  if (m === null) throw new InvalidArgumentError(`invalid digest ${JSON.stringify(d)}: want sha256:<64 lowercase hex>`);
  return m[1]!;
}

/** Validates and returns a digest (for call sites that keep the whole string). */
export function parseDigest(d: string): string {
  digestHex(d);
  return d;
}

/** The sha256 digest of some bytes. */
export function digestOf(bytes: Uint8Array | string): string {
  return `sha256:${new Bun.CryptoHasher("sha256").update(bytes).digest("hex")}`;
}

/** An incremental sha256 that also counts bytes (a resumed ingest re-feeds what is on disk). */
export class DigestHasher {
  private hasher = new Bun.CryptoHasher("sha256");
  bytes = 0;

  /** Starts over (a source that ignored a Range request sends the blob from its start). */
  reset(): void {
    this.hasher = new Bun.CryptoHasher("sha256");
    this.bytes = 0;
  }

  update(chunk: Uint8Array): void {
    this.hasher.update(chunk);
    this.bytes += chunk.length;
  }

  /** The digest so far; the hasher stays usable (CryptoHasher.digest would finalise it). */
  digest(): string {
    return `sha256:${this.hasher.copy().digest("hex")}`;
  }
}
