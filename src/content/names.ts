// Image names in the content layout's index.json, the way containerd's `ctr export` and umoci name
// them there: each name is a manifests[] entry (the descriptor the name points to) annotated with
// `io.containerd.image.name` (the full name, docker.io/library/busybox:latest) and
// `org.opencontainers.image.ref.name` (the tag: what `skopeo inspect oci:<dir>:<tag>` looks up, per
// image-spec's image-layout.md). index.json is rewritten whole (temp file, fsync, rename) under a
// flock, so readers see the old or the new file and two processes never lose each other's update.
// Entries without our name annotation (put there by skopeo or umoci) are kept untouched.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { FailedPreconditionError, InvalidArgumentError } from "../errdefs.ts";
import { acquireLock } from "../sys/filelock.ts";
import { checkDescriptor, MediaType, type Descriptor } from "./oci.ts";

export const ANNOTATION_IMAGE_NAME = "io.containerd.image.name";
export const ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name";
export const ANNOTATION_CREATED = "dev.bunker.image.created";

export interface ImageRecord {
  /** The full normalised name, e.g. docker.io/library/busybox:latest (or name@sha256:… for a digest). */
  name: string;
  /** What the name points to: an index or a manifest, without our annotations. */
  target: Descriptor;
  /** RFC 3339, when bunker recorded it. */
  created?: string;
}

interface IndexJson {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

export class LayoutNames {
  constructor(private readonly dir: string, private readonly ensureLayout: () => void) {}

  private get indexPath(): string {
    return join(this.dir, "index.json");
  }

  listImages(): ImageRecord[] {
    return this.read().manifests.flatMap((d) => (d.annotations?.[ANNOTATION_IMAGE_NAME] ? [toRecord(d)] : []));
  }

  getImage(name: string): ImageRecord | null {
    const d = this.read().manifests.find((m) => m.annotations?.[ANNOTATION_IMAGE_NAME] === name);
    return d ? toRecord(d) : null;
  }

  /** Points `name` at `target` (replacing what it pointed to); `created` defaults to now. */
  async putImage(name: string, target: Descriptor, created = new Date().toISOString()): Promise<ImageRecord> {
    if (name === "") throw new InvalidArgumentError("image name must not be empty");
    checkDescriptor(target, `image ${name}`);
    const { annotations: _drop, ...bare } = target;
    const entry: Descriptor = {
      ...bare,
      annotations: { ...target.annotations, [ANNOTATION_IMAGE_NAME]: name, [ANNOTATION_REF_NAME]: refNameOf(name), [ANNOTATION_CREATED]: created },
    };
    await this.update((manifests) => [...manifests.filter((m) => m.annotations?.[ANNOTATION_IMAGE_NAME] !== name), entry]);
    return toRecord(entry);
  }

  /** Removes a name; false when there was none. The blobs stay (garbage collection is separate). */
  async deleteImage(name: string): Promise<boolean> {
    let found = false;
    await this.update((manifests) => manifests.filter((m) => {
      const hit = m.annotations?.[ANNOTATION_IMAGE_NAME] === name;
      found ||= hit;
      return !hit;
    }));
    return found;
  }

  /**
   * Runs `fn` while no update can replace index.json (its update lock held shared): what `fn` reads
   * of the names, and of the file itself, is one version (the run cache records a resolution with
   * the hash of the index.json it came from).
   */
  async whileUnchanged<T>(fn: () => T): Promise<T> {
    this.ensureLayout();
    const lock = await acquireLock(`${this.indexPath}.lock`, "shared");
    try {
      return fn();
    } finally {
      lock.release();
    }
  }

  private read(): IndexJson {
    let text: string;
    try {
      text = readFileSync(this.indexPath, "utf8");
    } catch (err) {
      if ((err as { code?: string }).code === "ENOENT") return { schemaVersion: 2, manifests: [] };
      throw err;
    }
    let parsed: IndexJson;
    try {
      parsed = JSON.parse(text) as IndexJson;
    } catch (err) {
      throw new FailedPreconditionError(`${this.indexPath}: not valid JSON (${(err as Error).message})`);
    }
    if (!parsed || !Array.isArray(parsed.manifests)) throw new FailedPreconditionError(`${this.indexPath}: has no manifests list`);
    return parsed;
  }

  private async update(change: (manifests: Descriptor[]) => Descriptor[]): Promise<void> {
    this.ensureLayout();
    const lock = await acquireLock(`${this.indexPath}.lock`);
    try {
      // the blobs' renames (store.ts commits them without a directory fsync) outlive a power loss
      // before any name points at them
      syncDir(join(this.dir, "blobs", "sha256"));
      const index = this.read();
      const next: IndexJson = { ...index, schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: change(index.manifests) };
      const tmp = `${this.indexPath}.tmp-${process.pid}`;
      const fd = openSync(tmp, "w", 0o644);
      try {
        writeSync(fd, JSON.stringify(next));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      try {
        renameSync(tmp, this.indexPath);
      } catch (err) {
        unlinkSync(tmp);
        throw err;
      }
      syncDir(this.dir);
    } finally {
      lock.release();
    }
  }
}

/** The tag of a full name (`…/busybox:latest` -> `latest`); a digest-only name keeps its digest. */
export function refNameOf(name: string): string {
  const at = name.indexOf("@");
  if (at !== -1) return name.slice(at + 1);
  const slash = name.lastIndexOf("/");
  const colon = name.lastIndexOf(":");
  return colon > slash ? name.slice(colon + 1) : "latest";
}

function toRecord(d: Descriptor): ImageRecord {
  const annotations = { ...d.annotations };
  const name = annotations[ANNOTATION_IMAGE_NAME]!;
  const created = annotations[ANNOTATION_CREATED];
  delete annotations[ANNOTATION_IMAGE_NAME];
  delete annotations[ANNOTATION_REF_NAME];
  delete annotations[ANNOTATION_CREATED];
  const { annotations: _drop, ...bare } = d;
  const target: Descriptor = Object.keys(annotations).length ? { ...bare, annotations } : bare;
  return created ? { name, target, created } : { name, target };
}

function syncDir(dir: string): void {
  let fd: number;
  try {
    fd = openSync(dir, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return; // no blob yet
    throw err;
  }
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
