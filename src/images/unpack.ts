// Unpacking an image's layers into committed snapshots, as containerd's unpacker does: layer i becomes
// the snapshot chainIds[i] on top of chainIds[i-1], extracted once however many processes unpack the
// image at the same time (the snapshotter's per-chain-ID lock), and the uncompressed bytes must hash
// to the config's diff_ids[i] or nothing is committed. Layers are applied bottom-up and one at a time:
// each needs its parent committed, and the applier streams (a 100 MB layer never sits in memory).
// A pull passes a source: layer i is unpacked as soon as its own blob is stored, while the later
// ones still download (containerd's unpacker also starts on a layer once fetched), or while it
// downloads itself, through a tee (content/tee.ts), when the layers below are done in time.
import { FailedPreconditionError } from "../errdefs.ts";
import { applyLayer } from "../archive/apply.ts";
import { decompressStream } from "../archive/compression.ts";
import type { ContentStore } from "../content/store.ts";
import { type BlobTee, TeeAbandoned } from "../content/tee.ts";
import type { Snapshotter } from "../snapshots/snapshotter.ts";
import type { StoredImage } from "./image.ts";

export interface UnpackProgress {
  /** A layer was extracted now ("unpacked") or was already a snapshot ("exists"). */
  (event: { index: number; chainId: string; status: "unpacked" | "exists" }): void;
}

/** How a pull still downloading feeds the unpack (absent: every blob is already in the store). */
export interface UnpackSource {
  /** Settles when layer i's blob is committed (verified) in the content store. */
  ready(index: number): Promise<void>;
  /** Layer i's bytes as they download, when a tee still holds them from the first byte. */
  tee?(index: number): BlobTee | undefined;
}

/** Makes sure every layer of the image is a committed snapshot; returns how many this call extracted. */
export async function unpackImage(content: ContentStore, snapshots: Snapshotter, img: StoredImage, onProgress?: UnpackProgress, source?: UnpackSource): Promise<number> {
  let extracted = 0;
  let cleaned = false;
  for (const [i, layer] of img.layers.entries()) {
    const chainId = img.chainIds[i]!;
    const parent = i === 0 ? undefined : img.chainIds[i - 1];
    if (snapshots.has(chainId)) {
      onProgress?.({ index: i, chainId, status: "exists" });
      continue;
    }
    if (!cleaned) {
      // what killed unpacks left (temps no live process holds) goes before we add our own
      cleaned = true;
      await snapshots.cleanup();
    }
    const unpackFrom = (bytes: () => Promise<ReadableStream<Uint8Array>>) =>
      // lowers (overlay mode) only lend their metadata to the directories a layer writes into without
      // entries of their own; a tar hardlink names an earlier entry of the same archive, never a lower file
      snapshots.unpack(chainId, parent, async (dir, whiteouts, lowers) => {
        const { stream } = await decompressStream(await bytes());
        const { diffId } = await applyLayer(dir, stream, { whiteouts, parents: lowers });
        if (diffId !== img.diffIds[i]) {
          throw new FailedPreconditionError(`image ${img.name}: layer ${layer.digest} unpacks to ${diffId}, but the config says ${img.diffIds[i]}`);
        }
        // what came through a tee is published only once the store has verified the blob
        await source?.ready(i);
      });
    const fromStore = async () => {
      await source?.ready(i);
      if (!content.has(layer.digest)) throw new FailedPreconditionError(`image ${img.name}: layer ${layer.digest} is missing from the content store (pull it again)`);
      return content.stream(layer.digest);
    };
    let did: boolean;
    const tee = source?.tee?.(i);
    if (tee?.readable) {
      try {
        did = await unpackFrom(async () => tee.stream);
      } catch (err) {
        // the download's own failure is the one to report; an abandoned tee falls back to the file
        await source!.ready(i);
        if (!(err instanceof Error && err.cause instanceof TeeAbandoned) && !(err instanceof TeeAbandoned)) throw err;
        did = await unpackFrom(fromStore);
      }
    } else {
      did = await unpackFrom(fromStore);
    }
    if (did) extracted++;
    onProgress?.({ index: i, chainId, status: did ? "unpacked" : "exists" });
  }
  return extracted;
}
