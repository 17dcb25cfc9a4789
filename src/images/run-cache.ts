// The run cache: what `run IMAGE` needs of an image already present, in one small file per
// reference, so that a run reads that file instead of loading the image code, taking the gc lock,
// parsing the reference, and reading index.json, the manifest and the config (7-8 ms of a 100 ms
// `run --rm`, where `run --rootfs` spends under 1). containerd keeps no such file: its metadata is
// one bolt database a daemon holds open; a daemonless CLI pays for every lookup at each start, and
// this file is how it pays once per image instead.
//
// `<root>/content/run-cache/<hash of the lookup>.json` holds the lookup (reference, platform,
// snapshotter choice), the image it resolved to (name, target, manifest and config digests), the
// config's `config` object (Entrypoint, Cmd, Env, WorkingDir, User, StopSignal...), and the top
// chain ID with the snapshot number its index link named. It is trusted only while both of what it
// was derived from are unchanged:
//   - index.json, byte for byte (its sha256 is recorded): every tag, rmi, pull, load and prune -a
//     rewrites index.json (names.ts), so any change of any name invalidates every entry. A hash,
//     not inode and mtime: index.json is replaced by rename and a freed inode number comes back;
//     equal bytes mean an equal resolution, because blobs are content-addressed and a named
//     image's blobs are never pruned.
//   - the snapshot: `by-chain/<top>` still links to the same number (prune or a crash clean-up may
//     have removed it, and a re-unpack gives it a new number). The layer's own metadata is read
//     again under its lock by prepare, as on the full path.
// A file that is missing, torn, of another version, for another lookup, or stale is ignored; the
// caller takes the full path and writes a fresh one (temp file + rename: a reader sees the old or
// the new file). Not fsynced: after a power loss a lost or empty file is one more miss.
import { closeSync, mkdirSync, openSync, readFileSync, readlinkSync, renameSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { ImageConfig } from "../oci/image-config.ts";
import { validateDigest } from "../snapshots/chain.ts";

/** Bumped when the file's meaning changes: an older file is then a miss, never misread. */
const VERSION = 1;
const CACHE_DIR = "run-cache";
/** A run cache file is a few hundred bytes; anything much bigger is not ours to parse. */
const MAX_CACHE_BYTES = 256 << 10;
const SNAPSHOT_NUMBER = /^[1-9][0-9]*$/;

/** What a run looked up: the same three make the same answer while the store is unchanged. */
export interface RunLookup {
  ref: string;
  platform: string;
  /** The --snapshotter asked for ("auto" by default), not the one chosen. */
  want: string;
}

/** What a run needs of the image. */
export interface CachedImage {
  /** The stored name (docker.io/library/busybox:latest). */
  name: string;
  target: string;
  manifest: string;
  configDigest: string;
  /** The image config's `config` object (an empty object when the image has none). */
  config: ImageConfig;
  /** The chain ID containers of this image sit on. */
  chainId: string;
  /** The snapshotter the store chose, and the number its `by-chain/<chainId>` link names. */
  snapshotter: "overlayfs" | "native";
  snapshot: string;
}

interface CacheFile extends CachedImage, RunLookup {
  v: number;
  index: string;
}

function contentDir(root: string): string {
  return join(root, "content");
}

function cachePath(root: string, lookup: RunLookup): string {
  const key = new Bun.CryptoHasher("sha256").update(JSON.stringify([lookup.ref, lookup.platform, lookup.want])).digest("hex");
  return join(contentDir(root), CACHE_DIR, `${key.slice(0, 32)}.json`);
}

/** sha256 of index.json as it is now; undefined when there is none (no image stored at all). */
export function indexHash(root: string): string | undefined {
  let bytes: Buffer;
  try {
    bytes = readFileSync(join(contentDir(root), "index.json"));
  } catch {
    return undefined;
  }
  return new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
}

/** The number `<root>/snapshots/<kind>/by-chain/<chainId>` links to, or undefined. */
export function snapshotNumber(root: string, kind: string, chainId: string): string | undefined {
  let target: string;
  try {
    target = readlinkSync(join(root, "snapshots", kind, "by-chain", chainId));
  } catch {
    return undefined;
  }
  const id = target.startsWith("../") ? target.slice(3) : "";
  return SNAPSHOT_NUMBER.test(id) ? id : undefined;
}

const isString = (v: unknown): v is string => typeof v === "string";

function wellFormed(f: Partial<CacheFile>): f is CacheFile {
  if (f.v !== VERSION) return false;
  if (![f.ref, f.platform, f.want, f.index, f.name, f.target, f.manifest, f.configDigest, f.chainId, f.snapshot].every(isString)) return false;
  if (f.snapshotter !== "overlayfs" && f.snapshotter !== "native") return false;
  if (typeof f.config !== "object" || f.config === null || Array.isArray(f.config)) return false;
  try {
    // the chain ID becomes a path below: only the digest grammar passes
    validateDigest(f.chainId as string, "cached chain ID");
  } catch {
    return false;
  }
  return SNAPSHOT_NUMBER.test(f.snapshot as string);
}

/** The image the lookup resolved to, when the cache holds it and it is still true; else undefined. */
export function readRunCache(root: string, lookup: RunLookup): CachedImage | undefined {
  let parsed: Partial<CacheFile>;
  try {
    const text = readFileSync(cachePath(root, lookup), "utf8");
    if (text.length > MAX_CACHE_BYTES) return undefined;
    parsed = JSON.parse(text) as Partial<CacheFile>;
  } catch {
    return undefined; // missing, unreadable or torn: a miss
  }
  if (typeof parsed !== "object" || parsed === null || !wellFormed(parsed)) return undefined;
  // another lookup whose hash collided, or a file copied from elsewhere
  if (parsed.ref !== lookup.ref || parsed.platform !== lookup.platform || parsed.want !== lookup.want) return undefined;
  if (indexHash(root) !== parsed.index) return undefined;
  if (snapshotNumber(root, parsed.snapshotter, parsed.chainId) !== parsed.snapshot) return undefined;
  const { name, target, manifest, configDigest, config, chainId, snapshotter, snapshot } = parsed;
  return { name, target, manifest, configDigest, config, chainId, snapshotter, snapshot };
}

/**
 * Records what the full path found. `index` must be the hash of the index.json the image was
 * resolved from (the caller reads both under index.json's lock); the snapshot number is read here.
 * Best effort: a store we cannot write to just keeps taking the full path.
 */
export function writeRunCache(root: string, lookup: RunLookup, index: string, image: Omit<CachedImage, "snapshot">): void {
  const snapshot = snapshotNumber(root, image.snapshotter, image.chainId);
  if (snapshot === undefined) return;
  const file: CacheFile = { v: VERSION, ...lookup, index, ...image, snapshot };
  const path = cachePath(root, lookup);
  const tmp = `${path}.tmp-${process.pid}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    mkdirSync(join(contentDir(root), CACHE_DIR), { recursive: true, mode: 0o700 });
    const fd = openSync(tmp, "w", 0o600);
    try {
      writeSync(fd, JSON.stringify(file));
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch {
    rmSync(tmp, { force: true });
  }
}

/** Deletes every cached entry (prune: nothing derived outlives a sweep; the next run writes anew). */
export function clearRunCache(root: string): void {
  rmSync(join(contentDir(root), CACHE_DIR), { recursive: true, force: true });
}
