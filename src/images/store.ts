// bunker's image store: the names in `<root>/content`'s index.json, the blobs beside them, and the
// snapshots the layers unpack to under `<root>/snapshots`. What `bunker pull`, `run IMAGE`, `images`,
// `tag`, `rmi` and `image prune` do, for the CLI, the daemon and the executor alike; every bunker
// process opens the same directories, and the stores' own cross-process locks keep them consistent
// (nerdctl pulls client-side against containerd's stores the same way).
//
// A name is written only after the image is fully fetched and unpacked, so `bunker images` never
// lists an image a killed pull left half-made; what such a pull leaves (ingests, temps) is reclaimed
// by the next pull of the same blobs, or by `image prune`.
//
// Until then a pull's or a load's blobs and snapshots are named by nothing, which is exactly what
// prune sweeps. containerd protects them with leases; we use one store-wide flock, `<root>/content/
// gc.lock`: pulls, loads and run's image resolution hold it shared, prune holds it exclusive, so a
// prune waits for the pulls under way (and they for it) instead of deleting their content midway.
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errdefs.ts";
import { ContentStore } from "../content/store.ts";
import type { Descriptor, Platform } from "../content/oci.ts";
import type { ImageRecord } from "../content/names.ts";
import type { PullProgressEvent } from "../registry/pull.ts";
import { parseAnyReference, parseDockerRef } from "../registry/reference.ts";
import { parsePlatform } from "../registry/platform.ts";
import { openSnapshotter, type Snapshotter, type SnapshotterKind } from "../snapshots/snapshotter.ts";
import type { ContainerLayers } from "../containers/record.ts";
import { acquireLock, type LockMode } from "../sys/filelock.ts";
import { readImage, type StoredImage, topChainId } from "./image.ts";
import { readRootfsFile, snapshotLayers } from "./container-layers.ts";
import type { UnpackProgress, UnpackSource } from "./unpack.ts";
import { BlobTee, TeeBudget } from "../content/tee.ts";

/**
 * The registry client and the layer applier load only when a pull or an unpack needs them: `run`
 * of an image already unpacked (the common case) does not pay for evaluating them.
 */
async function unpack(store: ImageStore, img: StoredImage, onUnpack?: UnpackProgress, source?: UnpackSource): Promise<void> {
  const top = img.chainIds.at(-1);
  if (top !== undefined && store.snapshots.has(top)) return;
  const { unpackImage } = await import("./unpack.ts");
  await unpackImage(store.content, store.snapshots, img, onUnpack, source);
}

/**
 * What every layer's tee of one pull may hold for an unpack not there yet: the 100 MiB-layer pull
 * peaked at ~85 MiB RSS before tees, against a 100 MiB goal.
 */
const TEE_BUDGET_BYTES = 8 << 20;

export interface ImageStoreOptions {
  /** Registries spoken to over plain HTTP besides loopback ones. */
  insecureRegistries?: readonly string[];
  /** The snapshotter: "auto" (overlayfs unless it cannot work here), or one named. */
  snapshotter?: "auto" | SnapshotterKind;
}

export interface PullOptions {
  platform?: string;
  onProgress?: (e: PullProgressEvent) => void;
  onUnpack?: UnpackProgress;
}

export type PullPolicy = "missing" | "always" | "never";

/** The store-wide lock that keeps prune from sweeping what a pull or load has not named yet. */
export const GC_LOCK_FILE = "gc.lock";

export class ImageStore {
  readonly content: ContentStore;
  private snapshotter?: Snapshotter;

  constructor(readonly root: string, private readonly o: ImageStoreOptions = {}) {
    this.content = new ContentStore(root);
  }

  /** Opened on first use: choosing overlayfs costs a probe mount the image listing does not need. */
  get snapshots(): Snapshotter {
    this.snapshotter ??= openSnapshotter(this.root, this.o.snapshotter ?? "auto");
    return this.snapshotter;
  }

  /** The stored name a reference means: a full name, a familiar one (`busybox`), or an image ID prefix. */
  find(ref: string): ImageRecord | undefined {
    return this.byName(ref) ?? this.byId(ref)[0];
  }

  private byName(ref: string): ImageRecord | undefined {
    let parsed;
    try {
      parsed = parseAnyReference(ref);
    } catch {
      return undefined;
    }
    return parsed.named ? (this.content.names.getImage(parseDockerRef(ref).toString()) ?? undefined) : undefined;
  }

  /** Every name of the image an ID means (docker's: the config digest; or a target digest), whole or a unique prefix. */
  private byId(ref: string): ImageRecord[] {
    const hex = ref.replace(/^sha256:/, "");
    if (!/^[0-9a-f]{4,64}$/.test(hex)) return [];
    const hits = this.content.names.listImages().filter((r) => r.target.digest.slice(7).startsWith(hex) || configDigestOf(this.content, r)?.slice(7).startsWith(hex));
    const images = new Set(hits.map((r) => configDigestOf(this.content, r) ?? r.target.digest));
    if (images.size > 1) throw new InvalidArgumentError(`image ID ${ref} is ambiguous: it begins ${images.size} images' IDs`);
    return hits;
  }

  /** The stored image a reference means, or NotFoundError naming it. */
  async get(ref: string, platform?: string): Promise<StoredImage> {
    const rec = this.find(ref);
    if (!rec) throw new NotFoundError(`image ${ref}: not found (pull it, or load it from an archive)`);
    return await readImage(this.content, rec, platform ? parsePlatform(platform) : undefined);
  }

  /**
   * Runs `fn` holding the store's garbage-collection lock: "shared" for what adds content and names
   * it last (pull, load, run's ensure), "exclusive" for what deletes unnamed content (prune).
   */
  async withGcLock<T>(mode: LockMode, fn: () => Promise<T>): Promise<T> {
    mkdirSync(this.content.dir, { recursive: true });
    const lock = await acquireLock(join(this.content.dir, GC_LOCK_FILE), mode);
    try {
      return await fn();
    } finally {
      lock.release();
    }
  }

  /** Fetches an image from its registry, unpacks it, then names it. */
  async pull(ref: string, o: PullOptions = {}): Promise<StoredImage> {
    return await this.withGcLock("shared", () => this.pullLocked(ref, o));
  }

  private async pullLocked(ref: string, o: PullOptions): Promise<StoredImage> {
    const [{ RegistryClient }, { fetchImageHead, fetchLayers, settleAll }] = await Promise.all([import("../registry/client.ts"), import("../registry/pull.ts")]);
    const client = new RegistryClient({ insecure: [...(this.o.insecureRegistries ?? [])] });
    const platform: Platform | undefined = o.platform ? parsePlatform(o.platform) : undefined;
    const fetchOpts = { ...(platform ? { platform } : {}), ...(o.onProgress ? { onProgress: o.onProgress } : {}) };
    const fetched = await fetchImageHead(this.content, client, ref, fetchOpts);
    const rec: ImageRecord = { name: fetched.name, target: fetched.target };
    const img = await readImage(this.content, rec, platform);
    // each layer unpacks once its own blob is stored, while the later ones download (measured on a
    // 10-layer image from a local registry: the unpack had waited for every download, ~100 ms)
    const budget = new TeeBudget(TEE_BUDGET_BYTES);
    const tees = fetched.layers.map(() => new BlobTee(budget));
    const layers = fetchLayers(this.content, client, fetched, { ...fetchOpts, tees });
    try {
      await unpack(this, img, o.onUnpack, { ready: (i) => layers[i]!, tee: (i) => tees[i] });
    } finally {
      for (const tee of tees) tee.abandon("the unpack is over");
      // every download ends (stored, or failed) before we return or report the first failure
      await Promise.allSettled(layers);
    }
    await settleAll(layers);
    await this.content.names.putImage(fetched.name, fetched.target);
    return img;
  }

  /** `run IMAGE`: the image per the pull policy, unpacked (a load may have stored it without snapshots). */
  async ensure(ref: string, policy: PullPolicy, o: PullOptions = {}): Promise<StoredImage> {
    // refused before the lock, which would make <root>/content: a refused run leaves nothing
    if (policy === "never" && !this.find(ref)) throw new NotFoundError(`image ${ref}: not found, and --pull never forbids pulling it`);
    return await this.withGcLock("shared", async () => {
      if (policy === "always") return await this.pullLocked(ref, o);
      const rec = this.find(ref);
      if (!rec) {
        if (policy === "never") throw new NotFoundError(`image ${ref}: not found, and --pull never forbids pulling it`);
        return await this.pullLocked(ref, o);
      }
      const img = await readImage(this.content, rec, o.platform ? parsePlatform(o.platform) : undefined);
      await unpack(this, img, o.onUnpack);
      return img;
    });
  }

  /** Names an image anew (docker tag): the target is shared, nothing is copied. */
  async tag(source: string, target: string): Promise<string> {
    const rec = this.find(source);
    if (!rec) throw new NotFoundError(`image ${source}: not found`);
    const name = parseDockerRef(target).toString();
    await this.content.names.putImage(name, rec.target);
    return name;
  }

  /**
   * Removes names (docker rmi); returns those removed. A name an existing container was made from is
   * refused, unless `force`, which only untags: the container keeps its snapshot, and prune keeps what
   * it uses. An image ID means every name of that image: refused when there are several, unless
   * `force` (docker's "referenced in multiple repositories"), so that `rmi ID` never reports success
   * while the image stays listed under another name.
   */
  async untag(ref: string, force: boolean, inUse: (name: string) => string[]): Promise<string[]> {
    const named = this.byName(ref);
    const recs = named ? [named] : this.byId(ref);
    if (recs.length === 0) throw new NotFoundError(`image ${ref}: not found`);
    if (recs.length > 1 && !force) {
      throw new FailedPreconditionError(`image ${ref} is named ${recs.map((r) => r.name).join(", ")}: remove a name, or rmi -f to remove them all`);
    }
    for (const rec of recs) {
      const users = inUse(rec.name);
      if (users.length > 0 && !force) {
        throw new FailedPreconditionError(`image ${rec.name} is used by container ${users.join(", ")}: remove the container first (or rmi -f to untag)`);
      }
    }
    for (const rec of recs) await this.content.names.deleteImage(rec.name);
    return recs.map((r) => r.name);
  }

  /** Every stored image, resolved; names whose blobs are broken are listed with what is known. */
  async list(): Promise<{ rec: ImageRecord; img?: StoredImage; size: number }[]> {
    return await Promise.all(
      this.content.names.listImages().map(async (rec) => {
        try {
          const img = await readImage(this.content, rec);
          const size = img.layers.reduce((n, l) => n + l.size, img.config.size + img.manifest.size);
          return { rec, img, size };
        } catch {
          return { rec, size: rec.target.size };
        }
      }),
    );
  }

  /**
   * Reads a file of an image's root filesystem (its /etc/passwd for `-u NAME`), through a read-only
   * view mounted for the moment, as containerd's WithUser does: the merged view honours whiteouts.
   */
  async readRootfsFile(img: StoredImage, path: string): Promise<string | undefined> {
    return await readRootfsFile(this.snapshots, topChainId(img), path);
  }

  /** Containers' writable layers, for the task manager (held through the container record). */
  layers(): ContainerLayers {
    return snapshotLayers(() => this.snapshots);
  }
}

function configDigestOf(content: ContentStore, rec: ImageRecord): string | undefined {
  // only single-manifest names have their config one read away; index names match by target digest
  if (!rec.target.mediaType.includes("manifest")) return undefined;
  try {
    const m = JSON.parse(readFileSync(content.blobPath(rec.target.digest), "utf8")) as { config?: Descriptor };
    return m.config?.digest;
  } catch {
    return undefined;
  }
}
