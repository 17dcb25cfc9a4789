// Pulling an image into the content store, as containerd's client.Pull fetch phase (remotes.Fetch
// over images.Handlers) does it: resolve the reference, keep the index (if any) and the manifest
// chosen for the platform, then the config, then the layers in parallel with a bound (containerd's
// default is 3 concurrent downloads). Everything is verified: manifests here, blobs by the store's
// commit. Names are not written: the image store names the image once it has unpacked it, so a
// name never points at an image whose layers are missing.
import { InvalidArgumentError, NotFoundError } from "../errdefs.ts";
import { checkDescriptor, isIndexType, type Descriptor, type ImageIndex, type ImageManifest, type Platform } from "../content/oci.ts";
import type { ContentStore } from "../content/store.ts";
import type { BlobTee } from "../content/tee.ts";
import { MAX_MANIFEST_BYTES, type RegistryClient } from "./client.ts";
import { choosePlatform, defaultPlatform, formatPlatform, normalizePlatform, platformMatches } from "./platform.ts";
import { parseDockerRef, type Reference } from "./reference.ts";

export type BlobRole = "index" | "manifest" | "config" | "layer";

/** One progress step: a blob's bytes so far, and the sum over the config and layers. */
export interface PullProgressEvent {
  digest: string;
  role: BlobRole;
  /** Bytes of this blob in the store (a resumed download starts above 0). */
  current: number;
  size: number;
  /** "exists": already in the store; "done": committed now. */
  status: "downloading" | "done" | "exists";
  totalCurrent: number;
  totalSize: number;
}

export interface FetchImageOptions {
  /** Which entry of an index to take; default: this machine's (linux/<arch>). */
  platform?: Platform;
  /** Concurrent layer downloads (default 3, as containerd). */
  concurrency?: number;
  onProgress?: (event: PullProgressEvent) => void;
}

/** What a pull stored; the image store names `name` -> `target` after unpacking. */
export interface FetchedImage {
  /** The full normalised reference, e.g. docker.io/library/busybox:latest. */
  name: string;
  /** What the name points to: the index when there is one, else the manifest. */
  target: Descriptor;
  manifest: Descriptor;
  manifestJson: ImageManifest;
  config: Descriptor;
  configJson: ImageConfig;
  layers: Descriptor[];
}

/** The parts of an image config the pull itself reads; the image store reads the rest. */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  variant?: string;
  rootfs?: { type: string; diff_ids: string[] };
  [key: string]: unknown;
}

export async function fetchImage(store: ContentStore, client: RegistryClient, reference: string | Reference, opts: FetchImageOptions = {}): Promise<FetchedImage> {
  const head = await fetchImageHead(store, client, reference, opts);
  await settleAll(fetchLayers(store, client, head, opts));
  return head;
}

/**
 * The first part of fetchImage: the index, the manifest and the config, stored; no layer yet. With
 * fetchLayers an unpacker can start on the first layer while the others still download.
 */
export async function fetchImageHead(store: ContentStore, client: RegistryClient, reference: string | Reference, opts: FetchImageOptions = {}): Promise<FetchedImage> {
  const ref = typeof reference === "string" ? parseDockerRef(reference) : reference;
  const want = opts.platform ? normalizePlatform(opts.platform) : defaultPlatform();
  const source = ref.name;
  const root = await client.resolve(ref);
  await storeBytes(store, root.descriptor, root.bytes, source);

  let manifest = root.descriptor;
  let manifestBytes = root.bytes;
  if (isIndexType(root.descriptor.mediaType)) {
    const index = parseJson<ImageIndex>(root.bytes, `index ${ref}`);
    if (!Array.isArray(index.manifests)) throw new InvalidArgumentError(`index ${ref}: has no manifests list`);
    index.manifests.forEach((d, i) => checkDescriptor(d, `index ${ref} entry ${i}`));
    manifest = stripped(choosePlatform(index.manifests, want, `${ref}`));
    manifestBytes = await client.fetchManifest(ref, manifest);
    await storeBytes(store, manifest, manifestBytes, source);
  }
  const manifestJson = parseJson<ImageManifest>(manifestBytes, `manifest ${manifest.digest} of ${ref}`);
  if (!manifestJson.config || !Array.isArray(manifestJson.layers)) {
    throw new InvalidArgumentError(`manifest ${manifest.digest} of ${ref}: not an image manifest (no config or layers)`);
  }
  const config = checkDescriptor(manifestJson.config, `config of ${ref}`);
  const layers = manifestJson.layers.map((d, i) => checkDescriptor(d, `layer ${i} of ${ref}`));
  if (config.size > MAX_MANIFEST_BYTES) throw new InvalidArgumentError(`config ${config.digest} of ${ref}: ${config.size} bytes is over the ${MAX_MANIFEST_BYTES}-byte limit`);

  const progress = new ProgressTotals([config, ...layers], opts.onProgress);
  await download(store, client, ref, config, "config", progress);
  const configJson = parseJson<ImageConfig>(await store.readBlob(config.digest, MAX_MANIFEST_BYTES), `config ${config.digest} of ${ref}`);
  // A single-manifest image asked for by platform must be that platform (containerd checks the config).
  if (opts.platform && manifest === root.descriptor && configJson.os && configJson.architecture &&
      !platformMatches(want, { os: configJson.os, architecture: configJson.architecture, ...(configJson.variant ? { variant: configJson.variant } : {}) })) {
    throw new NotFoundError(`${ref}: no image for platform ${formatPlatform(want)} (the image is ${formatPlatform(normalizePlatform({ os: configJson.os, architecture: configJson.architecture, ...(configJson.variant ? { variant: configJson.variant } : {}) }))})`);
  }
  return { name: ref.toString(), target: root.descriptor, manifest, manifestJson, config, configJson, layers };
}

/**
 * Starts the layers' downloads, in layer order and at most `concurrency` at once (containerd's
 * default is 3); one promise per layer, settled when that blob is in the store. After the first
 * failure no new download starts and the layers not started reject with that failure.
 */
export function fetchLayers(store: ContentStore, client: RegistryClient, head: FetchedImage, opts: Pick<FetchImageOptions, "concurrency" | "onProgress"> & { tees?: readonly BlobTee[] } = {}): Promise<void>[] {
  const ref = parseDockerRef(head.name);
  const progress = new ProgressTotals([head.config, ...head.layers], opts.onProgress);
  progress.counted(head.config); // stored by fetchImageHead
  const settled = head.layers.map(() => Promise.withResolvers<void>());
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < head.layers.length; i = next++) {
      if (failure) {
        opts.tees?.[i]?.fail(failure.err);
        settled[i]!.reject(failure.err);
        continue;
      }
      try {
        await download(store, client, ref, head.layers[i]!, "layer", progress, opts.tees?.[i]);
        settled[i]!.resolve();
      } catch (err) {
        failure ??= { err };
        settled[i]!.reject(err);
      }
    }
  };
  const limit = Math.max(1, Math.min(opts.concurrency ?? 3, head.layers.length));
  for (let w = 0; w < limit; w++) void worker();
  // a caller that stops waiting at the first failure must not leave the others' rejections unhandled
  for (const s of settled) s.promise.catch(() => undefined);
  return settled.map((s) => s.promise);
}

/** Waits for every promise to settle; then throws the first failure, in order. */
export async function settleAll(all: Promise<void>[]): Promise<void> {
  const results = await Promise.allSettled(all);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
}

/** A descriptor without its platform and annotations (what we store and return is the blob's identity). */
function stripped(d: Descriptor): Descriptor {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

async function storeBytes(store: ContentStore, desc: Descriptor, bytes: Uint8Array, source: string): Promise<void> {
  await store.ingest({ digest: desc.digest, size: desc.size, source }, async () => ({ body: new Blob([bytes]).stream(), offset: 0 }));
}

async function download(store: ContentStore, client: RegistryClient, ref: Reference, desc: Descriptor, role: BlobRole, progress: ProgressTotals, tee?: BlobTee): Promise<void> {
  if (store.size(desc.digest) === desc.size) {
    tee?.abandon("the blob is already in the store");
    return progress.report(desc, role, desc.size, "exists");
  }
  await store.ingest(
    { digest: desc.digest, size: desc.size, source: ref.name },
    (offset) => client.fetchBlob(ref, desc, offset),
    (bytes) => progress.report(desc, role, bytes, "downloading"),
    tee,
  );
  progress.report(desc, role, desc.size, "done");
}

class ProgressTotals {
  private readonly current = new Map<string, number>();
  private readonly totalSize: number;

  constructor(blobs: Descriptor[], private readonly listener?: (e: PullProgressEvent) => void) {
    const unique = new Map(blobs.map((b) => [b.digest, b.size]));
    this.totalSize = [...unique.values()].reduce((a, b) => a + b, 0);
  }

  /** A blob already in the totals, without an event. */
  counted(desc: Descriptor): void {
    this.current.set(desc.digest, desc.size);
  }

  report(desc: Descriptor, role: BlobRole, current: number, status: PullProgressEvent["status"]): void {
    if (!this.listener) return;
    this.current.set(desc.digest, current);
    let totalCurrent = 0;
    for (const v of this.current.values()) totalCurrent += v;
    this.listener({ digest: desc.digest, role, current, size: desc.size, status, totalCurrent, totalSize: this.totalSize });
  }
}

function parseJson<T>(bytes: Uint8Array, what: string): T {
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes)) as T;
    if (v === null || typeof v !== "object") throw new Error("not an object");
    return v;
  } catch (err) {
    throw new InvalidArgumentError(`${what}: not valid JSON (${(err as Error).message})`);
  }
}
