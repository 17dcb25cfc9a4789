// `bunker image prune [-a]`: containerd's garbage collection in one pass, mark then sweep. Marked:
// every blob a named image needs, every snapshot of those images' chains, and the chain under each
// existing container (from its record, so a container whose image was untagged with `rmi -f` keeps
// its layers). Swept: unmarked blobs, unmarked committed snapshots (children before parents), and
// what crashed pulls left behind (ingests and extraction temps no live process holds).
// With `-a`, names that no container was made from are removed first, as docker's prune -a does.
import type { ContainerRecord } from "../containers/record.ts";
import { blobsOf } from "./archive.ts";
import { readImage } from "./image.ts";
import { clearRunCache } from "./run-cache.ts";
import type { ImageStore } from "./store.ts";

export interface PruneReport {
  untagged: string[];
  blobs: number;
  bytes: number;
  snapshots: number;
  reclaimed: number;
}

export async function pruneImages(store: ImageStore, containers: readonly ContainerRecord[], all: boolean): Promise<PruneReport> {
  // alone: a pull or load under way holds content it has not named yet (store.ts, the gc lock)
  return await store.withGcLock("exclusive", () => pruneLocked(store, containers, all));
}

async function pruneLocked(store: ImageStore, containers: readonly ContainerRecord[], all: boolean): Promise<PruneReport> {
  const report: PruneReport = { untagged: [], blobs: 0, bytes: 0, snapshots: 0, reclaimed: 0 };
  const usedNames = new Set(containers.flatMap((c) => (c.source ? [c.source.image] : [])));
  if (all) {
    for (const rec of store.content.names.listImages()) {
      if (usedNames.has(rec.name)) continue;
      await store.content.names.deleteImage(rec.name);
      report.untagged.push(rec.name);
    }
  }
  const keepBlobs = new Set<string>();
  const keepSnapshots = new Set<string>();
  for (const rec of store.content.names.listImages()) {
    for (const d of await blobsOf(store, rec.target, rec.name).catch(() => [rec.target])) keepBlobs.add(d.digest);
    try {
      const img = await readImage(store.content, rec);
      for (const c of img.chainIds) keepSnapshots.add(c);
    } catch {
      // a broken image keeps its blobs (above) but has no chain to keep
    }
  }
  const snapshots = store.snapshots;
  const { committed } = snapshots.list();
  const parentOf = new Map(committed.map((s) => [s.chainId, s.parent]));
  for (const c of containers) {
    // the container's parent and its ancestors
    for (let id: string | undefined = c.source?.parent; id && !keepSnapshots.has(id); id = parentOf.get(id)) keepSnapshots.add(id);
  }
  // children first: a parent is removable only once nothing sits on it
  let pending = committed.filter((s) => !keepSnapshots.has(s.chainId)).map((s) => s.chainId);
  while (pending.length > 0) {
    const before = pending.length;
    const next: string[] = [];
    for (const id of pending) {
      if (pending.some((other) => parentOf.get(other) === id)) {
        next.push(id);
        continue;
      }
      await snapshots.removeCommitted(id);
      report.snapshots++;
    }
    pending = next;
    if (pending.length === before) break; // held by something we cannot see (an active view): leave it
  }
  for (const digest of store.content.list()) {
    if (keepBlobs.has(digest)) continue;
    const size = store.content.size(digest) ?? 0;
    if (store.content.delete(digest)) {
      report.blobs++;
      report.bytes += size;
    }
  }
  report.reclaimed = store.content.cleanIngests().length + (await snapshots.cleanup());
  // entries for names and snapshots gone would only miss; a sweep leaves nothing derived behind
  clearRunCache(store.root);
  return report;
}
