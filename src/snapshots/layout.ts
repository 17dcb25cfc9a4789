// The on-disk layout of one snapshotter's store, `<root>/snapshots/<kind>/`, and its metadata:
//
//   <n>/fs                  the snapshot's tree (a committed layer, or a container's upper / copy)
//   <n>/work                overlayfs's work dir (active snapshots of the overlay kind only)
//   <n>/chain | <n>/key     what the snapshot is: a committed chain ID, or an active key
//   <n>/parent              the committed chain ID it sits on (absent for a bottom layer)
//   <n>/ancestors           committed only: the numbers of all its ancestors, nearest first, so that
//                           an overlay's lowerdir list is one read, not a walk of up to 500 links
//   <n>/targets             active only: where mount() mounted it, one path a line (remove unmounts them)
//   by-chain/<chain ID>     symlink "../<n>": the index that makes a committed snapshot exist
//   by-key/<encoded key>    symlink "../<n>": the same for active snapshots
//   tmp/<lock>.<random>     extractions and copies in progress, and removals in flight
//   tmp/trash.<random>      a removed container layer whose deletion was deferred (discard's `defer`)
//   tmp/sweep.<pid>.<random> the same, claimed by the process <pid> deleting it
//   tmp/spare.<random>      an overlay container layer made ahead (empty fs/ and work/, empty key,
//                           parent and targets files), taken by the next prepare with one rename
//   tmp/building.<pid>.<random> a spare being made by the process <pid>
//   locks/<lock>            flock files: "chain.<chain ID>" and "key.<encoded key>"
//
// Why numbers: containerd's overlay snapshotter names snapshot dirs by a short numeric id
// (snapshots/overlay/overlay.go with its bolt metadata) so that a 128-layer lowerdir fits in one
// page of mount options; we keep the numbers and replace bolt with the by-chain/by-key symlinks,
// which are created atomically (symlink(2)) and need no database to survive a SIGKILL.
//
// Why temps then rename: a snapshot becomes visible only through its index link, which is made
// after its dir is complete and renamed to its number, so a crash leaves an unindexed temp or
// number and never a half-written committed snapshot. A temp's name carries the lock its writer
// holds; cleanup() deletes one only when that lock is free (the writer died). Removals move the
// number into tmp/ first (one rename), so no reader ever sees a half-deleted snapshot and a number
// is never rmdir'ed while another process publishes into it.
import * as fs from "node:fs";
import { join } from "node:path";
import { InvalidArgumentError } from "../errdefs.ts";
import { validateDigest } from "./chain.ts";
import { pidAlive } from "../proc.ts";

export interface SnapshotMeta {
  /** The number (dir name) under the store. */
  id: string;
  chainId?: string;
  key?: string;
  parent?: string;
  /** Committed snapshots: the numbers of the ancestors, nearest first (a number never changes, and no ancestor goes while a child exists). */
  ancestors: string[];
  targets: string[];
}

const NUMERIC = /^[1-9][0-9]*$/;
/** tmp/ names of deferred discards: left for anyone to delete, then claimed by the one deleting. */
const TRASH_PREFIX = "trash.";
const SWEEP_PREFIX = "sweep.";
const SWEEP_NAME = /^sweep\.([0-9]+)\.([0-9a-f]+)$/;
const SPARE_PREFIX = "spare.";
const BUILDING_NAME = /^building\.([0-9]+)\.([0-9a-f]+)$/;
/** The files an active overlay snapshot has, made empty in a spare so that prepare and mount create no inode. */
const SPARE_FILES = ["key", "parent", "targets"];

function randomName(): string {
  return crypto.randomUUID().replaceAll("-", "");
}

const MAX_KEY_FILE_NAME = 200;

/** Snapshot keys are free-form (containerd's are); this keeps them one safe file name. */
export function encodeKey(key: string): string {
  if (typeof key !== "string" || key.length === 0 || key.includes("\0")) {
    throw new InvalidArgumentError(`invalid snapshot key ${JSON.stringify(key)}: want a non-empty string without NUL`);
  }
  const encoded = encodeURIComponent(key).replaceAll(".", "%2E").replaceAll("*", "%2A");
  if (encoded.length > MAX_KEY_FILE_NAME) throw new InvalidArgumentError(`snapshot key ${JSON.stringify(key.slice(0, 40))}... is too long (${encoded.length} bytes encoded, at most ${MAX_KEY_FILE_NAME})`);
  return encoded;
}

export function decodeKey(encoded: string): string {
  return decodeURIComponent(encoded);
}

export function chainLockName(chainId: string): string {
  return `chain.${chainId}`;
}

export function keyLockName(key: string): string {
  return `key.${encodeKey(key)}`;
}

/** The lock a temp's writer holds, from the temp's name (`<lock>.<random>`); random has no dot. */
export function lockNameOfTemp(tempName: string): string | undefined {
  const dot = tempName.lastIndexOf(".");
  const lock = dot > 0 ? tempName.slice(0, dot) : "";
  return lock.startsWith("chain.") || lock.startsWith("key.") ? lock : undefined;
}

export class StoreLayout {
  readonly byChain: string;
  readonly byKey: string;
  readonly tmp: string;
  readonly locks: string;

  constructor(readonly dir: string) {
    this.byChain = join(dir, "by-chain");
    this.byKey = join(dir, "by-key");
    this.tmp = join(dir, "tmp");
    this.locks = join(dir, "locks");
  }

  ensure(): void {
    for (const d of [this.dir, this.byChain, this.byKey, this.tmp, this.locks]) fs.mkdirSync(d, { recursive: true, mode: 0o700 });
  }

  lockPath(lockName: string): string {
    return join(this.locks, lockName);
  }

  snapshotDir(id: string): string {
    return join(this.dir, id);
  }

  /** The committed snapshot of chainId, or undefined (its index link is missing or stale). */
  committed(chainId: string): SnapshotMeta | undefined {
    validateDigest(chainId, "chain ID");
    const meta = this.resolve(join(this.byChain, chainId));
    return meta?.chainId === chainId ? meta : undefined;
  }

  active(key: string): SnapshotMeta | undefined {
    const meta = this.resolve(join(this.byKey, encodeKey(key)));
    return meta?.key === key ? meta : undefined;
  }

  /** Every number under the store, indexed or not. */
  numbers(): string[] {
    return fs.readdirSync(this.dir).filter((name) => NUMERIC.test(name));
  }

  /** A number's metadata; undefined when it vanished (removed meanwhile). */
  read(id: string): SnapshotMeta | undefined {
    const dir = this.snapshotDir(id);
    const chainId = readSmall(join(dir, "chain"));
    const key = readSmall(join(dir, "key"));
    if (chainId === undefined && key === undefined) return undefined;
    const parent = readSmall(join(dir, "parent"));
    const targets = (readSmall(join(dir, "targets")) ?? "").split("\n").filter(Boolean);
    const ancestors = (readSmall(join(dir, "ancestors")) ?? "").split(" ").filter(Boolean);
    return { id, ...(chainId !== undefined && { chainId }), ...(key !== undefined && { key }), ...(parent !== undefined && { parent }), ancestors, targets };
  }

  /**
   * An overlay container layer made ahead of need, while a container runs (and the CPU would idle):
   * empty fs/ and work/ and empty metadata files, so that a later prepare() only renames it and
   * writes into existing files. Creating inodes is what costs there: on this ext4 (no journal) each
   * create skips every inode of its group freed in the last 30 s, 1-2 ms per create under churn.
   * Made under a `building.<pid>.*` name and renamed when complete: a spare is always whole. No
   * more than one waits at a time (a second run at once may add one more).
   */
  makeSpare(): boolean {
    if (this.temps().some((n) => n.startsWith(SPARE_PREFIX))) return false;
    const rest = randomName();
    const building = join(this.tmp, `building.${process.pid}.${rest}`);
    fs.mkdirSync(building, { mode: 0o700 });
    try {
      fs.mkdirSync(join(building, "fs"), { mode: 0o755 });
      fs.mkdirSync(join(building, "work"), { mode: 0o700 });
      for (const f of SPARE_FILES) fs.closeSync(fs.openSync(join(building, f), "w", 0o600));
      fs.renameSync(building, join(this.tmp, `${SPARE_PREFIX}${rest}`));
      return true;
    } catch (err) {
      fs.rmSync(building, { recursive: true, force: true });
      throw err;
    }
  }

  /** A spare renamed to the temp name of the lock the caller holds (as makeTemp's), or undefined when none is left. */
  takeSpare(lockName: string): string | undefined {
    for (const name of this.temps()) {
      if (!name.startsWith(SPARE_PREFIX)) continue;
      const dir = join(this.tmp, `${lockName}.${randomName()}`);
      try {
        fs.renameSync(join(this.tmp, name), dir);
        return dir;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err; // another prepare took it
      }
    }
    return undefined;
  }

  /** A fresh temp dir named for the lock its caller holds. */
  makeTemp(lockName: string): string {
    const dir = join(this.tmp, `${lockName}.${randomName()}`);
    fs.mkdirSync(dir, { mode: 0o700 });
    return dir;
  }

  /** Gives a complete temp dir the next free number by rename (atomic; a taken number is skipped). */
  publish(tempDir: string): string {
    let next = Math.max(0, ...this.numbers().map(Number)) + 1;
    for (;;) {
      const id = String(next);
      try {
        fs.renameSync(tempDir, this.snapshotDir(id));
        return id;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== "EEXIST" && code !== "ENOTEMPTY") throw err;
        next++; // another process published this number first
      }
    }
  }

  /** Makes a published number visible under its index name (symlink(2) is atomic). */
  link(index: "chain" | "key", name: string, id: string): void {
    const path = join(index === "chain" ? this.byChain : this.byKey, index === "chain" ? name : encodeKey(name));
    fs.rmSync(path, { force: true }); // a stale link from a removal cut short; the caller holds the name's lock
    fs.symlinkSync(join("..", id), path);
  }

  unlink(index: "chain" | "key", name: string): void {
    fs.rmSync(join(index === "chain" ? this.byChain : this.byKey, index === "chain" ? name : encodeKey(name)), { force: true });
  }

  /**
   * Moves a number out of sight into tmp/ (named for the lock the caller holds), then deletes it.
   * `defer`: only the move; the tree is left as `tmp/trash.<random>` for a later sweepTrash() (or
   * cleanup()) to delete, as containerd's overlay snapshotter leaves removed dirs to its garbage
   * collector. Deleting is what costs: on this ext4 (no journal, `discard`) every freed block is a
   * synchronous discard, 0.3-1 ms each, and a used container layer frees a dozen or more.
   */
  discard(id: string, lockName: string, opts: { defer?: boolean } = {}): void {
    const trash = join(this.tmp, opts.defer ? `${TRASH_PREFIX}${randomName()}` : `${lockName}.${randomName()}`);
    try {
      fs.renameSync(this.snapshotDir(id), trash);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    if (!opts.defer) fs.rmSync(trash, { recursive: true, force: true });
  }

  /**
   * Claims what deferred discards left: each `trash.<random>` is renamed to `sweep.<pid>.<random>`
   * (one rename: of several sweepers, one wins each entry), and a `sweep.<pid>.*` whose process is
   * gone (killed mid-delete) is claimed again, as is a `building.<pid>.*` spare whose maker died. Returns the claimed paths, for the caller to delete.
   * Nothing in tmp/ is reachable from an index, so deleting a claimed tree races no reader.
   */
  claimTrash(): string[] {
    return this.claim((name) => {
      if (name.startsWith(TRASH_PREFIX)) return name.slice(TRASH_PREFIX.length);
      // a sweeper's claim, or a spare half made: garbage once their process is gone
      const m = SWEEP_NAME.exec(name) ?? BUILDING_NAME.exec(name);
      return m && Number(m[1]) !== process.pid && !pidAlive(Number(m[1])) ? m[2] : undefined;
    });
  }

  /** Claims every spare for deletion (cleanup: prune leaves nothing made ahead). */
  claimSpares(): string[] {
    return this.claim((name) => (name.startsWith(SPARE_PREFIX) ? name.slice(SPARE_PREFIX.length) : undefined));
  }

  /**
   * Renames each tmp/ entry `pick` names (by the random part it returns) to `sweep.<our pid>.*`:
   * one rename, so of several claimants one wins each entry. Returns the claimed paths.
   */
  private claim(pick: (name: string) => string | undefined): string[] {
    const claimed: string[] = [];
    for (const name of this.temps()) {
      const rest = pick(name);
      if (rest === undefined) continue;
      const to = join(this.tmp, `${SWEEP_PREFIX}${process.pid}.${rest}`);
      try {
        fs.renameSync(join(this.tmp, name), to);
        claimed.push(to);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err; // another claimant took it
      }
    }
    return claimed;
  }

  temps(): string[] {
    return fs.readdirSync(this.tmp);
  }

  chainIndex(): string[] {
    return fs.readdirSync(this.byChain);
  }

  keyIndex(): string[] {
    return fs.readdirSync(this.byKey).map(decodeKey);
  }

  private resolve(link: string): SnapshotMeta | undefined {
    let target: string;
    try {
      target = fs.readlinkSync(link);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
    const id = target.startsWith("../") ? target.slice(3) : "";
    return NUMERIC.test(id) ? this.read(id) : undefined;
  }
}

/**
 * Writes a small metadata file without an fsync: for what a power loss makes moot anyway (a
 * container's layer and its mount targets: after a reboot nothing is mounted and the container's
 * record removes the layer), where each fsync cost a `run IMAGE` 2-10 ms; a process crash loses
 * nothing either way. What must survive a power loss (a committed layer's metadata) goes through
 * writeSmallSynced.
 */
export function writeSmall(path: string, text: string): void {
  const fd = fs.openSync(path, "w", 0o600);
  try {
    fs.writeSync(fd, text);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Writes a small metadata file durably enough for ordering, with the fsync on Bun's thread pool:
 * the caller goes on (an unpack applies its layer meanwhile) and awaits it before the rename that
 * publishes. Three fsyncs a layer on the unpack's own thread cost a 10-layer pull ~25 ms.
 */
export function writeSmallSynced(path: string, text: string): Promise<void> {
  const fd = fs.openSync(path, "w", 0o600);
  try {
    fs.writeSync(fd, text);
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
  return new Promise((resolve, reject) =>
    fs.fsync(fd, (err) => {
      fs.close(fd, () => (err ? reject(err) : resolve()));
    }),
  );
}

function readSmall(path: string): string | undefined {
  try {
    return fs.readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw err;
  }
}
