// Containers' writable layers and momentary read-only views over a snapshotter, apart from the
// image store: a `run IMAGE` the run cache answers (run-cache.ts) needs the snapshotter alone, and
// loading store.ts (the content store, references, platforms) would cost it what the cache saves.
// The image store hands out the same objects (ImageStore.layers, ImageStore.readRootfsFile).
import { mkdtempSync, readFileSync, rmdirSync } from "node:fs";
import { join } from "node:path";
import type { Snapshotter } from "../snapshots/snapshotter.ts";
import type { ContainerLayers } from "../containers/record.ts";
import { resolveInRoot } from "../archive/root-path.ts";

/** The snapshot key of a container's writable layer. */
export function containerKey(namespace: string, id: string): string {
  return `containers/${namespace}/${id}`;
}

/** Containers' writable layers, for the task manager (held through the container record). */
export function snapshotLayers(snapshots: () => Snapshotter): ContainerLayers {
  return {
    prepare: async (namespace, id, parent) => {
      const key = containerKey(namespace, id);
      await snapshots().prepare(key, parent);
      return snapshots().mounts(key).map((m) => ({ type: m.type, source: m.source, options: [...m.options] }));
    },
    prepareMounted: async (namespace, id, parent, target, opts) => {
      await snapshots().prepare(containerKey(namespace, id), parent, { mountAt: target, volatile: opts?.volatile === true });
    },
    release: async (namespace, id, opts) => {
      await snapshots().remove(containerKey(namespace, id), { defer: opts?.deferDelete === true });
    },
    sweep: async () => {
      await snapshots().sweepTrash().catch(() => undefined);
    },
  };
}

/**
 * Reads a file of an image's root filesystem (its /etc/passwd for `-u NAME`), through a read-only
 * view over `chainId` mounted for the moment, as containerd's WithUser does: the merged view
 * honours whiteouts.
 */
export async function readRootfsFile(s: Snapshotter, chainId: string, path: string): Promise<string | undefined> {
  const key = `views/${process.pid}-${crypto.randomUUID()}`;
  const dir = mkdtempSync(join(s.dir, ".view-"));
  try {
    await s.prepare(key, chainId);
    s.mount(key, dir);
    try {
      // resolved inside the view: an image's /etc/passwd may be a symlink to anywhere
      return readFileSync(resolveInRoot(dir, path), "utf8");
    } catch {
      return undefined;
    } finally {
      s.unmount(key);
    }
  } finally {
    await s.remove(key);
    rmdirSync(dir);
  }
}
