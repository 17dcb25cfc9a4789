// Unpacking an image's layers into committed snapshots, as containerd's unpacker does: layer i becomes
// the snapshot chainIds[i] on top of chainIds[i-1], extracted once however many processes unpack the
// image at the same time (the snapshotter's per-chain-ID lock), and the uncompressed bytes must hash
// to the config's diff_ids[i] or nothing is committed. Layers are applied bottom-up and one at a time:
// each needs its parent committed, and the applier streams (a 100 MB layer never sits in memory).
// A pull passes `ready`: layer i is unpacked as soon as its own blob is stored, while the later
// ones still download (containerd's unpacker also starts on a layer once fetched).
import { FailedPreconditionError } from "../errdefs.ts";
import { applyLayer } from "../archive/apply.ts";
import { decompressStream } from "../archive/compression.ts";
import type { ContentStore } from "../content/store.ts";
import type { Snapshotter } from "../snapshots/snapshotter.ts";
import type { StoredImage } from "./image.ts";

export interface UnpackProgress {
  /** A layer was extracted now ("unpacked") or was already a snapshot ("exists"). */
  (event: { index: number; chainId: string; status: "unpacked" | "exists" }): void;
}

/**
 * Makes sure every layer of the image is a committed snapshot; returns how many this call extracted.
 * `ready(i)`: settles when layer i's blob is in the content store (a pull still downloading).
 */
export async function unpackImage(content: ContentStore, snapshots: Snapshotter, img: StoredImage, onProgress?: UnpackProgress, ready?: (index: number) => Promise<void>): Promise<number> {
  let extracted = 0;
  let cleaned = false;
  for (const [i, layer] of img.layers.entries()) {
    const chainId = img.chainIds[i]!;
    const parent = i === 0 ? undefined : img.chainIds[i - 1];
    if (snapshots.has(chainId)) {
      onProgress?.({ index: i, chainId, status: "exists" });
      continue;
    }
    await ready?.(i);
    if (!content.has(layer.digest)) throw new FailedPreconditionError(`image ${img.name}: layer ${layer.digest} is missing from the content store (pull it again)`);
    if (!cleaned) {
      // what killed unpacks left (temps no live process holds) goes before we add our own
      cleaned = true;
      await snapshots.cleanup();
    }
    // lowers (overlay mode) only lend their metadata to the directories a layer writes into without
    // entries of their own; a tar hardlink names an earlier entry of the same archive, never a lower file
    const did = await snapshots.unpack(chainId, parent, async (dir, whiteouts, lowers) => {
      const { stream } = await decompressStream(content.stream(layer.digest));
      const { diffId } = await applyLayer(dir, stream, { whiteouts, parents: lowers });
      if (diffId !== img.diffIds[i]) {
        throw new FailedPreconditionError(`image ${img.name}: layer ${layer.digest} unpacks to ${diffId}, but the config says ${img.diffIds[i]}`);
      }
    });
    if (did) extracted++;
    onProgress?.({ index: i, chainId, status: did ? "unpacked" : "exists" });
  }
  return extracted;
}
