// A stored image, read back from the content store: the name's target (an index or a manifest), the
// manifest for this platform, its config, and the chain IDs its layers unpack to. Like containerd's
// images.Image + images.Manifest + images.RootFS, with two refusals the pull also makes: a config
// whose diff_ids do not match the layers one for one, and manifests or configs over a size cap.
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errdefs.ts";
import type { ImageConfig } from "../oci/image-config.ts";
import { isIndexType, isManifestType, type Descriptor, type ImageIndex, type ImageManifest, type Platform } from "../content/oci.ts";
import type { ContentStore } from "../content/store.ts";
import type { ImageRecord } from "../content/names.ts";
import { choosePlatform, defaultPlatform } from "../registry/platform.ts";
import { chainIds } from "../snapshots/chain.ts";

/** Manifests and configs are small JSON; anything bigger is refused before it is parsed. */
export const MAX_JSON_BYTES = 4 << 20;

/** The OCI image config document (image-spec config.md), the fields bunker reads. */
export interface ImageConfigFile {
  architecture?: string;
  os?: string;
  variant?: string;
  created?: string;
  config?: ImageConfig;
  rootfs?: { type?: string; diff_ids?: string[] };
  history?: unknown[];
}

export interface StoredImage {
  name: string;
  target: Descriptor;
  manifest: Descriptor;
  manifestJson: ImageManifest;
  config: Descriptor;
  configJson: ImageConfigFile;
  layers: Descriptor[];
  diffIds: string[];
  /** chainIds[i] is the snapshot of layers 0..i; the last is what containers sit on. */
  chainIds: string[];
  created?: string;
}

export async function readJson<T>(content: ContentStore, d: Descriptor, what: string): Promise<T> {
  if (d.size > MAX_JSON_BYTES) throw new InvalidArgumentError(`${what} ${d.digest} is ${d.size} bytes, over the ${MAX_JSON_BYTES}-byte cap`);
  if (!content.has(d.digest)) throw new FailedPreconditionError(`${what} ${d.digest} is missing from the content store`);
  const bytes = await content.readBlob(d.digest, MAX_JSON_BYTES);
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as T;
  } catch {
    throw new InvalidArgumentError(`${what} ${d.digest} is not JSON`);
  }
}

/** The image a name points to, resolved for `platform` (default: this machine's). */
export async function readImage(content: ContentStore, rec: ImageRecord, platform: Platform = defaultPlatform()): Promise<StoredImage> {
  let manifest = rec.target;
  if (isIndexType(rec.target.mediaType)) {
    const index = await readJson<ImageIndex>(content, rec.target, `index of ${rec.name}`);
    if (!Array.isArray(index.manifests)) throw new InvalidArgumentError(`index of ${rec.name} has no manifests`);
    // an index may list platforms that were not pulled: only the stored ones count
    manifest = choosePlatform(index.manifests.filter((d) => content.has(d.digest)), platform, rec.name);
  } else if (!isManifestType(rec.target.mediaType)) {
    throw new InvalidArgumentError(`image ${rec.name}: unsupported media type ${rec.target.mediaType}`);
  }
  const manifestJson = await readJson<ImageManifest>(content, manifest, `manifest of ${rec.name}`);
  if (!manifestJson.config || !Array.isArray(manifestJson.layers)) throw new InvalidArgumentError(`manifest of ${rec.name} has no config or layers`);
  const configJson = await readJson<ImageConfigFile>(content, manifestJson.config, `config of ${rec.name}`);
  const diffIds = configJson.rootfs?.diff_ids ?? [];
  if (diffIds.length !== manifestJson.layers.length) {
    throw new InvalidArgumentError(`image ${rec.name}: the config lists ${diffIds.length} diff IDs for ${manifestJson.layers.length} layers`);
  }
  const img: StoredImage = {
    name: rec.name,
    target: rec.target,
    manifest,
    manifestJson,
    config: manifestJson.config,
    configJson,
    layers: manifestJson.layers,
    diffIds,
    chainIds: chainIds(diffIds),
  };
  if (rec.created !== undefined) img.created = rec.created;
  return img;
}

/** The chain ID containers of this image sit on. An image with no layers has none: it cannot run. */
export function topChainId(img: StoredImage): string {
  const top = img.chainIds.at(-1);
  if (!top) throw new NotFoundError(`image ${img.name} has no layers`);
  return top;
}

/** docker's IMAGE ID: the config digest's first 12 hex digits. */
export function shortId(img: { config: Descriptor }): string {
  return img.config.digest.slice("sha256:".length, "sha256:".length + 12);
}
