// `run IMAGE`'s two halves around the run cache (run-cache.ts): cachedImageRun answers from the
// cache alone (the snapshotter opened, no image store loaded: no content store, no reference
// parsing, no gc lock, no manifest or config read), and recordImageRun writes what the full path
// resolved so that the next run of the same reference takes the short one. Both give what the full
// path gives: the spec from the image's config, the name and chain ID for the container record,
// the stop signal, and the container's layers.
//
// No gc lock on the short path: the full path holds it only while it resolves, and prepares the
// container's layer after releasing it, so a prune may come between either way; in both, prepare
// finds the parent snapshot under its chain lock or fails, and once the layer is made the parent
// cannot be removed under it (removeCommitted refuses a parent with children).
import type { ContainerLayers } from "../containers/record.ts";
import type { ImageRunOptions } from "../oci/image-config.ts";
import type { OciSpec, SpecOptions } from "../oci/spec.ts";
import { openSnapshotter, type SnapshotterKind } from "../snapshots/snapshotter.ts";
import { readRootfsFile, snapshotLayers } from "./container-layers.ts";
import type { StoredImage } from "./image.ts";
import { indexHash, readRunCache, type RunLookup, writeRunCache } from "./run-cache.ts";
import { configSpec, configStopSignal, type RunSpecOptions } from "./run-spec.ts";
import type { ImageStore } from "./store.ts";

export type { RunLookup };

/** What a run of an image needs (cli/image-run.ts returns the same from either path). */
export interface ImageRunPlan {
  spec: OciSpec;
  image: string;
  parent: string;
  stopSignal?: string;
  layers: ContainerLayers;
}

/** The plan from the run cache, or undefined when it holds nothing true for this lookup. */
export async function cachedImageRun(
  root: string,
  lookup: RunLookup,
  base: Omit<SpecOptions, "args" | "env" | "cwd">,
  o: ImageRunOptions,
  runOptions?: RunSpecOptions,
): Promise<ImageRunPlan | undefined> {
  const hit = readRunCache(root, lookup);
  if (!hit) return undefined;
  const snapshots = openSnapshotter(root, lookup.want as "auto" | SnapshotterKind);
  // the store would now choose another snapshotter (it moved onto overlayfs): the full path decides
  if (snapshots.kind !== hit.snapshotter) return undefined;
  const spec = await configSpec(hit.config, (path) => readRootfsFile(snapshots, hit.chainId, path), base, o, runOptions);
  const stopSignal = configStopSignal(hit.config);
  return { spec, image: hit.name, parent: hit.chainId, ...(stopSignal ? { stopSignal } : {}), layers: snapshotLayers(() => snapshots) };
}

/**
 * Records the full path's resolution of `lookup` to `img`. Read under index.json's update lock: the
 * hash and the name's target then come from the same index.json, and a name changed since the
 * full path resolved it (a tag or rmi in between) records nothing. Best effort: never throws.
 */
export async function recordImageRun(store: ImageStore, lookup: RunLookup, img: StoredImage, chainId: string): Promise<void> {
  try {
    const seen = await store.content.names.whileUnchanged(() => ({ index: indexHash(store.root), rec: store.find(lookup.ref) }));
    if (seen.index === undefined || seen.rec?.name !== img.name || seen.rec.target.digest !== img.target.digest) return;
    writeRunCache(store.root, lookup, seen.index, {
      name: img.name,
      target: img.target.digest,
      manifest: img.manifest.digest,
      configDigest: img.config.digest,
      config: img.configJson.config ?? {},
      chainId,
      snapshotter: store.snapshots.kind,
    });
  } catch {
    // the next run takes the full path again
  }
}
