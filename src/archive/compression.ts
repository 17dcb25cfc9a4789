// Layer compression: detection by magic bytes and decompression as a stream, plus the layer media
// types. Like containerd's `pkg/archive/compression` (DecompressStream), the bytes decide, not the
// media type: registries and docker save label layers loosely, and an uncompressed tar is the
// fallback for anything that is neither gzip nor zstd. bzip2 and xz, which docker's old archive
// code also read, are refused with a clear error (no OCI layer media type names them).
// Bun's DecompressionStream does both gzip (multi-member too) and zstd natively, off the JS thread.
import { InvalidArgumentError } from "../errdefs.ts";

export type Compression = "none" | "gzip" | "zstd";

const GZIP_MAGIC = [0x1f, 0x8b, 0x08];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];
const BZIP2_MAGIC = [0x42, 0x5a, 0x68];
const XZ_MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const MAGIC_LENGTH = 6;

function startsWith(bytes: Uint8Array, magic: number[]): boolean {
  return bytes.length >= magic.length && magic.every((byte, i) => bytes[i] === byte);
}

/** The compression the first bytes of a blob announce ("none" for anything else, tar included). */
export function detectCompression(head: Uint8Array): Compression {
  if (startsWith(head, GZIP_MAGIC)) return "gzip";
  if (startsWith(head, ZSTD_MAGIC)) return "zstd";
  if (startsWith(head, BZIP2_MAGIC)) throw new InvalidArgumentError("unsupported layer compression: bzip2");
  if (startsWith(head, XZ_MAGIC)) throw new InvalidArgumentError("unsupported layer compression: xz");
  return "none";
}

/**
 * The uncompressed stream of a layer blob, whatever its compression; `compression` reports what was
 * found. The few bytes looked at are handed on, not lost.
 */
export async function decompressStream(stream: ReadableStream<Uint8Array>): Promise<{ compression: Compression; stream: ReadableStream<Uint8Array> }> {
  const reader = stream.getReader();
  const head: Uint8Array[] = [];
  let headLength = 0;
  let ended = false;
  while (headLength < MAGIC_LENGTH) {
    const { done, value } = await reader.read();
    if (done) {
      ended = true;
      break;
    }
    head.push(value);
    headLength += value.length;
  }
  const first = new Uint8Array(Math.min(headLength, MAGIC_LENGTH));
  let offset = 0;
  for (const part of head) {
    if (offset >= first.length) break;
    const take = part.subarray(0, first.length - offset);
    first.set(take, offset);
    offset += take.length;
  }
  let compression: Compression;
  try {
    compression = detectCompression(first);
  } catch (err) {
    await reader.cancel(err).catch(() => {});
    throw err;
  }
  const replayed = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const buffered = head.shift();
      if (buffered) return controller.enqueue(buffered);
      if (ended) return controller.close();
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    async cancel(reason) {
      await reader.cancel(reason);
    },
  });
  if (compression === "none") return { compression, stream: replayed };
    // Bun's lib types know neither "zstd" nor that the pair carries Uint8Array both ways.
  const decompressor = new DecompressionStream(compression as "gzip") as unknown as ReadableWritablePair<Uint8Array, Uint8Array>;
  return { compression, stream: replayed.pipeThrough(decompressor) };
}

export const MEDIA_TYPE = {
  ociLayer: "application/vnd.oci.image.layer.v1.tar",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  ociNondistributable: "application/vnd.oci.image.layer.nondistributable.v1.tar",
  ociNondistributableGzip: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  ociNondistributableZstd: "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  dockerForeignLayerGzip: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
} as const;

const LAYER_COMPRESSION = new Map<string, Compression>([
  [MEDIA_TYPE.ociLayer, "none"],
  [MEDIA_TYPE.ociLayerGzip, "gzip"],
  [MEDIA_TYPE.ociLayerZstd, "zstd"],
  [MEDIA_TYPE.ociNondistributable, "none"],
  [MEDIA_TYPE.ociNondistributableGzip, "gzip"],
  [MEDIA_TYPE.ociNondistributableZstd, "zstd"],
  [MEDIA_TYPE.dockerLayerGzip, "gzip"],
  [MEDIA_TYPE.dockerForeignLayerGzip, "gzip"],
  // docker's uncompressed layer type, which docker never pushes but some tools write
  ["application/vnd.docker.image.rootfs.diff.tar", "none"],
]);

export function isLayerMediaType(mediaType: string): boolean {
  return LAYER_COMPRESSION.has(mediaType);
}

/** The compression a layer media type names; unknown media types are refused. */
export function layerCompression(mediaType: string): Compression {
  const compression = LAYER_COMPRESSION.get(mediaType);
  if (compression === undefined) throw new InvalidArgumentError(`unsupported layer media type ${JSON.stringify(mediaType)}`);
  return compression;
}

/** The media type of a layer written with `compression`, in OCI's or docker's vocabulary. */
export function layerMediaType(compression: Compression, flavour: "oci" | "docker" = "oci"): string {
  if (flavour === "docker") {
    if (compression !== "gzip") throw new InvalidArgumentError(`docker's layer media types have no ${compression} variant`);
    return MEDIA_TYPE.dockerLayerGzip;
  }
  return compression === "none" ? MEDIA_TYPE.ociLayer : compression === "gzip" ? MEDIA_TYPE.ociLayerGzip : MEDIA_TYPE.ociLayerZstd;
}
