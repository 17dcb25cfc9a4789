// bunker's snapshotter: `<root>/snapshots`, where an image's layers become committed snapshots
// keyed by chain ID (chain.ts) and each container gets a writable layer on top of its image's top
// chain ID. It follows containerd's two reference snapshotters:
//   - "overlayfs" (snapshots/overlay/overlay.go): a committed snapshot is the layer's own upper
//     dir, whiteouts as overlay char devices and opaque xattrs; a container's layer is an empty
//     upper+work pair, mounted as overlay over its ancestors' dirs (top first).
//   - "native" (snapshots/native/native.go): a committed snapshot is a full copy of its parent
//     with the layer applied (whiteouts deleted); a container's layer is a copy of its parent,
//     bind-mounted as the rootfs. Used where overlay cannot stack (the store on overlayfs, no
//     root, a failing test mount).
// Unlike containerd there is no separate Prepare/Commit for layers: unpack() extracts into a temp
// and publishes it in one step, under a cross-process lock per chain ID (lock.ts), so two pulls of
// the same image extract each layer once. The on-disk layout and why it is crash-safe: layout.ts.
//
// API (what the image store and the container code call):
//   openSnapshotter(root, want = "auto"): Snapshotter   — "auto": overlayfs unless it cannot work here
//   kind, fallbackReason?                                 — for `bunker info`
//   has(chainId)                                          — a committed snapshot exists
//   unpack(chainId, parent, apply, {signal}) → boolean    — true when this call extracted it
//   prepare(key, parent, {mountAt})                       — a container's writable layer (idempotent for the same parent),
//                                                           mounted at mountAt when given
//   mounts(key) → MountSpec[]                             — containerd-style mounts (absolute paths)
//   mount(key, target) / unmount(key)                     — mounts the rootfs at target (long chains via relative lowerdirs)
//   remove(key, {defer})                                  — unmounts, then deletes the container layer; idempotent
//                                                           (defer: moved out of sight now, deleted by sweepTrash)
//   sweepTrash()                                          — deletes what deferred removals left (off the caller's thread),
//                                                           and makes a spare container layer for the next prepare
//   removeCommitted(chainId)                              — prune; refuses while a child or a container uses it
//   list(), cleanup()                                     — inventory; reclaim what crashed processes left
import * as fs from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError, UnavailableError } from "../errdefs.ts";
import type { MountSpec } from "../linux/mount.ts";
import { spawnTracked } from "../sys/children.ts";
import { isErrno, MS, sys } from "../sys/index.ts";
import { validateDigest } from "./chain.ts";
import { overlayOnOverlayReason, overlayUnusableReason, probePid, removeProbe } from "./detect.ts";
import { acquireLock, tryLock, type HeldLock } from "../sys/filelock.ts";
import { chainLockName, decodeKey, keyLockName, lockNameOfTemp, StoreLayout, writeSmall, writeSmallSynced, type SnapshotMeta } from "./layout.ts";
import { OVERLAY_MAX_LOWER_DIRS, overlayMountPlan, overlayOptions } from "./overlay-options.ts";
import { mountFrom } from "../linux/mount.ts";

/** How many 10 ms waits a mount or unmount gives a key lock someone else holds. */
const KEY_LOCK_RETRIES = 200;

export type SnapshotterKind = "overlayfs" | "native";
/** "overlay": dir is an empty upper dir, write whiteouts as 0:0 char devices and opaque dirs as trusted.overlay.opaque=y; "remove": dir holds the parent's full tree, delete what the layer whites out. */
export type WhiteoutMode = "overlay" | "remove";
/** Writes one layer into dir. `lowers` (overlay mode) are the parent's committed dirs, top first, where the applier finds the metadata of parent directories a layer writes into without listing them. */
export type ApplyLayer = (dir: string, whiteouts: WhiteoutMode, lowers: readonly string[]) => Promise<void>;

export interface CommittedSnapshot { chainId: string; parent?: string }
export interface ActiveSnapshot { key: string; parent: string; mountedAt: string[] }

export interface Snapshotter {
  readonly kind: SnapshotterKind;
  /** Why "auto" did not pick overlayfs (absent when it did, or when the kind was asked for). */
  readonly fallbackReason?: string;
  /** `<root>/snapshots/<kind>`. */
  readonly dir: string;
  has(chainId: string): boolean;
  unpack(chainId: string, parent: string | undefined, apply: ApplyLayer, opts?: { signal?: AbortSignal }): Promise<boolean>;
  /**
   * `mountAt`: also mounts it there (as mount() would), under the same lock and from the metadata
   * prepare has just read: a foreground run's layer is made and mounted in one pass.
   */
  prepare(key: string, parent: string, opts?: { mountAt?: string; volatile?: boolean }): Promise<void>;
  mounts(key: string): MountSpec[];
  /**
   * `volatile`: for a layer nothing will ever mount again (a `run --rm`'s): overlayfs then skips the
   * sync of the whole upper filesystem at unmount (ovl_sync_fs), measured 13 ms idle and 562 ms with
   * 300 MB dirty elsewhere on the disk, against 2 ms. A kernel without it (before 5.10) mounts without.
   */
  mount(key: string, target: string, opts?: { volatile?: boolean }): void;
  unmount(key: string): void;
  /**
   * `defer`: the layer is unmounted and out of every index at return, but its tree is only moved to
   * tmp/ for a later sweepTrash() or cleanup() to delete (containerd's overlay snapshotter removes
   * dirs in its garbage collection the same way): a `run --rm` ends without paying for it.
   */
  remove(key: string, opts?: { defer?: boolean }): Promise<void>;
  /**
   * Deletes the trees deferred removals left (by this or any process), and makes the next container
   * layer's dirs ahead (overlayfs: a spare prepare() takes with one rename); returns how many trees
   * it deleted. For the time a caller waits anyway (a foreground run, while its container runs).
   */
  sweepTrash(): Promise<number>;
  removeCommitted(chainId: string): Promise<void>;
  list(): { committed: CommittedSnapshot[]; active: ActiveSnapshot[] };
  /** Reclaims temps, unindexed snapshots and probes that crashed processes left; returns how many. */
  cleanup(): Promise<number>;
}

/**
 * The probe's answer per store, for this process: like containerd, which probes once when its
 * snapshotter plugin loads, a process asks once. `run IMAGE` opens the store twice (the image, then
 * the container's layer), and each probe is a mount, an unmount and seven dirs made and removed:
 * 10-30 ms, and far more when other processes have dirty data, since unmounting an overlay (not
 * mounted volatile) syncs its upper dir's whole filesystem (ovl_sync_fs).
 */
const probed = new Map<string, string | undefined>();

/** Whether this kernel's overlayfs takes `volatile` (5.10+); learned at the first volatile mount. */
let volatileWorks: boolean | undefined;

export function openSnapshotter(root: string, want: "auto" | SnapshotterKind = "auto"): Snapshotter {
  if (!isAbsolute(root)) throw new InvalidArgumentError(`snapshotter root ${JSON.stringify(root)} is not absolute`);
  const base = join(root, "snapshots");
  fs.mkdirSync(base, { recursive: true, mode: 0o700 });
  if (want === "native") return new LayerStore("native", base);
  // A store that already has overlay snapshots passed the probe when they were made: only the cheap
  // check that it has not since moved onto overlayfs is repeated (every CLI process opens the store).
  if (!probed.has(base)) probed.set(base, fs.existsSync(join(base, "overlayfs")) ? overlayOnOverlayReason(base) : overlayUnusableReason(base));
  const reason = probed.get(base);
  if (want === "overlayfs") {
    if (reason) throw new FailedPreconditionError(`the overlayfs snapshotter cannot work here: ${reason}`);
    return new LayerStore("overlayfs", base);
  }
  if (want !== "auto") throw new InvalidArgumentError(`unknown snapshotter ${JSON.stringify(want)}: want auto, overlayfs or native`);
  return reason ? new LayerStore("native", base, reason) : new LayerStore("overlayfs", base);
}

/** overlayfs's index feature keeps inode numbers of copied-up hardlinks; containerd turns it off where the module enables it, since our lower dirs may be renamed (prune) under it. */
function indexOffOption(): string[] {
  try {
    return fs.readFileSync("/sys/module/overlay/parameters/index", "utf8").trim() === "Y" ? ["index=off"] : [];
  } catch {
    return [];
  }
}

class LayerStore implements Snapshotter {
  readonly dir: string;
  private readonly layout: StoreLayout;
  private readonly overlayExtra: string[];
  readonly fallbackReason?: string;

  constructor(readonly kind: SnapshotterKind, base: string, fallbackReason?: string) {
    if (fallbackReason !== undefined) this.fallbackReason = fallbackReason;
    this.dir = join(base, kind);
    this.layout = new StoreLayout(this.dir);
    this.layout.ensure();
    this.overlayExtra = kind === "overlayfs" ? indexOffOption() : [];
  }

  has(chainId: string): boolean {
    return this.layout.committed(chainId) !== undefined;
  }

  async unpack(chainId: string, parent: string | undefined, apply: ApplyLayer, opts: { signal?: AbortSignal } = {}): Promise<boolean> {
    validateDigest(chainId, "chain ID");
    if (parent !== undefined) validateDigest(parent, "parent chain ID");
    if (parent === chainId) throw new InvalidArgumentError(`snapshot ${chainId} cannot be its own parent`);
    if (this.has(chainId)) return false;
    const lockName = chainLockName(chainId);
    const lock = await acquireLock(this.layout.lockPath(lockName), "exclusive", opts);
    let parentLock: HeldLock | undefined;
    let temp: string | undefined;
    // the metadata's fsyncs run while the layer is applied; all are done before the publish
    const synced: Promise<void>[] = [];
    try {
      if (this.has(chainId)) return false; // another process committed it while we waited
      let parentMeta: SnapshotMeta | undefined;
      if (parent !== undefined) {
        parentLock = await acquireLock(this.layout.lockPath(chainLockName(parent)), "shared", opts);
        parentMeta = this.committedOrThrow(parent, `parent of ${chainId}`);
      }
      temp = this.layout.makeTemp(lockName);
      if (parentMeta !== undefined) {
        synced.push(writeSmallSynced(join(temp, "parent"), parentMeta.chainId as string));
        synced.push(writeSmallSynced(join(temp, "ancestors"), [parentMeta.id, ...parentMeta.ancestors].join(" ")));
      }
      const fsDir = join(temp, "fs");
      if (this.kind === "native" && parentMeta !== undefined) await copyTree(this.fsOf(parentMeta), fsDir);
      else fs.mkdirSync(fsDir, { mode: 0o755 });
      const lowers = this.kind === "overlayfs" && parentMeta !== undefined ? this.lowerDirs(parentMeta) : [];
      await apply(fsDir, this.kind === "overlayfs" ? "overlay" : "remove", lowers);
      opts.signal?.throwIfAborted();
      synced.push(writeSmallSynced(join(temp, "chain"), chainId));
      await Promise.all(synced);
      const id = this.layout.publish(temp);
      temp = undefined;
      this.layout.link("chain", chainId, id);
      return true;
    } finally {
      await Promise.allSettled(synced);
      if (temp !== undefined) fs.rmSync(temp, { recursive: true, force: true });
      parentLock?.release();
      lock.release();
    }
  }

  async prepare(key: string, parent: string, opts: { mountAt?: string; volatile?: boolean } = {}): Promise<void> {
    const made = await this.prepareLocked(key, parent, opts);
    // an existing layer (prepare is idempotent) is mounted the ordinary way
    if (!made && opts.mountAt !== undefined) this.mount(key, opts.mountAt, opts);
  }

  private async prepareLocked(key: string, parent: string, opts: { mountAt?: string; volatile?: boolean }): Promise<boolean> {
    const lockName = keyLockName(key);
    validateDigest(parent, "parent chain ID");
    const lock = await acquireLock(this.layout.lockPath(lockName), "exclusive");
    let parentLock: HeldLock | undefined;
    let temp: string | undefined;
    try {
      const existing = this.layout.active(key);
      if (existing) {
        if (existing.parent === parent) return false;
        throw new AlreadyExistsError(`snapshot ${JSON.stringify(key)} already exists (on ${existing.parent ?? "nothing"}, not ${parent})`);
      }
      parentLock = await acquireLock(this.layout.lockPath(chainLockName(parent)), "shared");
      const parentMeta = this.committedOrThrow(parent, `parent of ${JSON.stringify(key)}`);
      if (this.kind === "overlayfs") {
        const depth = this.lowerDirs(parentMeta).length;
        if (depth > OVERLAY_MAX_LOWER_DIRS) throw new FailedPreconditionError(`image ${parent} has ${depth} layers; overlayfs stacks at most ${OVERLAY_MAX_LOWER_DIRS} lower directories (the kernel's OVL_MAX_STACK)`);
      }
      // a spare made ahead (makeSpare) has every dir and file already: only renamed and written into
      const spare = this.kind === "overlayfs" ? this.layout.takeSpare(lockName) : undefined;
      temp = spare ?? this.layout.makeTemp(lockName);
      writeSmall(join(temp, "key"), key);
      writeSmall(join(temp, "parent"), parent);
      if (spare !== undefined) {
        // made whole by makeSpare
      } else if (this.kind === "overlayfs") {
        fs.mkdirSync(join(temp, "fs"), { mode: 0o755 });
        fs.mkdirSync(join(temp, "work"), { mode: 0o700 });
      } else {
        await copyTree(this.fsOf(parentMeta), join(temp, "fs"));
      }
      const id = this.layout.publish(temp);
      temp = undefined;
      this.layout.link("key", key, id);
      if (opts.mountAt !== undefined) {
        const target = resolve(opts.mountAt);
        const targetsFile = join(this.layout.snapshotDir(id), "targets");
        // recorded before the mount, as mount() does; the layer stays prepared if the mount fails
        writeSmall(targetsFile, target);
        try {
          this.mountAt({ id, key, parent, ancestors: [], targets: [target] }, key, target, opts.volatile === true, parentMeta);
        } catch (err) {
          writeSmall(targetsFile, "");
          throw err;
        }
      }
      return true;
    } finally {
      if (temp !== undefined) fs.rmSync(temp, { recursive: true, force: true });
      parentLock?.release();
      lock.release();
    }
  }

  mounts(key: string): MountSpec[] {
    const meta = this.activeOrThrow(key);
    const upper = this.fsOf(meta);
    if (this.kind === "native") return [{ type: "bind", source: upper, options: ["rbind", "rw"] }];
    const lowers = this.lowerDirs(this.committedOrThrow(meta.parent as string, `parent of ${JSON.stringify(key)}`));
    const dirs = { upper, work: join(this.layout.snapshotDir(meta.id), "work"), lowers, extra: this.overlayExtra };
    overlayMountPlan(dirs); // refuses what no mount could take (501 layers, a page even relative)
    // absolute, as containerd's snapshotters return them; whoever mounts compacts them past a page (linux/mount.ts)
    return [{ type: "overlay", source: "overlay", options: overlayOptions(dirs) }];
  }

  mount(key: string, target: string, opts: { volatile?: boolean } = {}): void {
    const abs = resolve(target);
    this.withKeyLockNow(key, (meta) => {
      const targets = meta.targets.includes(abs) ? meta.targets : [...meta.targets, abs];
      // recorded before the mount, so that a crash right after it still leaves remove() the target
      writeSmall(join(this.layout.snapshotDir(meta.id), "targets"), targets.join("\n"));
      try {
        this.mountAt(meta, key, abs, opts.volatile === true);
      } catch (err) {
        writeSmall(join(this.layout.snapshotDir(meta.id), "targets"), meta.targets.join("\n"));
        throw err;
      }
    });
  }

  unmount(key: string): void {
    this.withKeyLockNow(key, (meta) => {
      for (const t of meta.targets) sys().unmountAll(t);
      writeSmall(join(this.layout.snapshotDir(meta.id), "targets"), "");
    });
  }

  async remove(key: string, opts: { defer?: boolean } = {}): Promise<void> {
    const lockName = keyLockName(key);
    const lock = await acquireLock(this.layout.lockPath(lockName), "exclusive");
    let removed = false;
    try {
      const meta = this.layout.active(key);
      if (!meta) return;
      for (const t of meta.targets) sys().unmountAll(t);
      this.layout.unlink("key", key);
      this.layout.discard(meta.id, lockName, { defer: opts.defer === true });
      removed = true;
    } finally {
      lock.release({ removeFile: removed });
    }
  }

  async removeCommitted(chainId: string): Promise<void> {
    validateDigest(chainId, "chain ID");
    const lockName = chainLockName(chainId);
    const lock = tryLock(this.layout.lockPath(lockName), "exclusive");
    if (!lock) throw new FailedPreconditionError(`snapshot ${chainId} is in use: it or a layer or container on it is being unpacked or prepared`);
    let removed = false;
    try {
      const meta = this.layout.committed(chainId);
      if (!meta) return;
      const users = this.childrenOf(chainId);
      if (users.length > 0) {
        throw new FailedPreconditionError(`snapshot ${chainId} is the parent of ${users.length} snapshot(s): ${users.slice(0, 3).join(", ")}${users.length > 3 ? ", ..." : ""}`);
      }
      this.layout.unlink("chain", chainId);
      this.layout.discard(meta.id, lockName);
      removed = true;
    } finally {
      lock.release({ removeFile: removed });
    }
  }

  list(): { committed: CommittedSnapshot[]; active: ActiveSnapshot[] } {
    const committed: CommittedSnapshot[] = [];
    for (const chainId of this.layout.chainIndex()) {
      const meta = this.layout.committed(chainId);
      if (meta) committed.push({ chainId, ...(meta.parent !== undefined && { parent: meta.parent }) });
    }
    const active: ActiveSnapshot[] = [];
    for (const key of this.layout.keyIndex()) {
      const meta = this.layout.active(key);
      if (meta) active.push({ key, parent: meta.parent as string, mountedAt: meta.targets });
    }
    return { committed, active };
  }

  async sweepTrash(): Promise<number> {
    const claimed = this.layout.claimTrash();
    if (this.kind === "overlayfs") this.layout.makeSpare();
    // fs.promises: the deletes run on Bun's thread pool, so a caller waiting on a container keeps its event loop
    await Promise.all(claimed.map((path) => fs.promises.rm(path, { recursive: true, force: true })));
    return claimed.length;
  }

  async cleanup(): Promise<number> {
    let reclaimed = 0;
    for (const path of this.layout.claimTrash()) {
      fs.rmSync(path, { recursive: true, force: true });
      reclaimed++;
    }
    // made on purpose, not left by a crash: deleted (prune leaves nothing made ahead) but not counted
    for (const path of this.layout.claimSpares()) fs.rmSync(path, { recursive: true, force: true });
    for (const name of this.layout.temps()) {
      const lockName = lockNameOfTemp(name);
      if (!lockName) continue;
      const lock = tryLock(this.layout.lockPath(lockName), "exclusive");
      if (!lock) continue; // its writer is alive
      try {
        fs.rmSync(join(this.layout.tmp, name), { recursive: true, force: true });
        reclaimed++;
      } finally {
        lock.release({ removeFile: !this.lockGuardsSomething(lockName) });
      }
    }
    for (const id of this.layout.numbers()) {
      const meta = this.layout.read(id);
      if (!meta) continue;
      const lockName = meta.chainId !== undefined ? chainLockName(meta.chainId) : keyLockName(meta.key as string);
      const indexed = () => (meta.chainId !== undefined ? this.layout.committed(meta.chainId) : this.layout.active(meta.key as string))?.id === id;
      if (indexed()) continue;
      const lock = tryLock(this.layout.lockPath(lockName), "exclusive");
      if (!lock) continue; // between its publish and its link, or being removed
      try {
        if (indexed()) continue;
        for (const t of meta.targets) sys().unmountAll(t);
        this.layout.discard(id, lockName);
        reclaimed++;
      } finally {
        lock.release();
      }
    }
    for (const name of fs.readdirSync(join(this.dir, ".."))) {
      const pid = probePid(name);
      if (pid !== undefined && !isAlive(pid)) {
        removeProbe(join(this.dir, "..", name));
        reclaimed++;
      }
    }
    return reclaimed;
  }

  private mountAt(meta: SnapshotMeta, key: string, target: string, volatile = false, parentMeta?: SnapshotMeta): void {
    const upper = this.fsOf(meta);
    if (this.kind === "native") {
      sys().mount(upper, target, "none", MS.BIND | MS.REC, "");
      return;
    }
    const lowers = this.lowerDirs(parentMeta ?? this.committedOrThrow(meta.parent as string, `parent of ${JSON.stringify(key)}`));
    const work = join(this.layout.snapshotDir(meta.id), "work");
    if (volatile && volatileWorks !== false) {
      const plan = overlayMountPlan({ upper, work, lowers, extra: [...this.overlayExtra, "volatile"] });
      try {
        mountFrom(sys(), plan.chdir, "overlay", target, "overlay", 0, plan.data);
        volatileWorks = true;
        return;
      } catch (err) {
        if (volatileWorks === true || !isErrno(err, "EINVAL")) throw err;
        volatileWorks = false; // an older kernel: it does not know the option
      }
    }
    const plan = overlayMountPlan({ upper, work, lowers, extra: this.overlayExtra });
    mountFrom(sys(), plan.chdir, "overlay", target, "overlay", 0, plan.data);
  }

  /** The committed dirs an overlay over `top` stacks, top first (top's own fs included). */
  private lowerDirs(top: SnapshotMeta): string[] {
    return [top.id, ...top.ancestors].map((id) => join(this.layout.snapshotDir(id), "fs"));
  }

  /** Whether a committed or active snapshot still goes by this lock name (else its lock file can go). */
  private lockGuardsSomething(lockName: string): boolean {
    if (lockName.startsWith("chain.")) return this.layout.committed(lockName.slice("chain.".length)) !== undefined;
    return this.layout.active(decodeKey(lockName.slice("key.".length))) !== undefined;
  }

  private childrenOf(chainId: string): string[] {
    const users: string[] = [];
    for (const id of this.layout.numbers()) {
      const meta = this.layout.read(id);
      if (meta?.parent === chainId) users.push(meta.chainId ?? `container layer ${JSON.stringify(meta.key)}`);
    }
    return users;
  }

  private withKeyLockNow(key: string, body: (meta: SnapshotMeta) => void): void {
    // held only for a few file writes by whoever has it: wait a little (seen once in CI: a mount
    // right after its own prepare found the lock taken) before calling the key busy
    let lock = tryLock(this.layout.lockPath(keyLockName(key)), "exclusive");
    for (let i = 0; !lock && i < KEY_LOCK_RETRIES; i++) {
      Bun.sleepSync(10);
      lock = tryLock(this.layout.lockPath(keyLockName(key)), "exclusive");
    }
    if (!lock) throw new UnavailableError(`snapshot ${JSON.stringify(key)} is being prepared or removed; try again`);
    try {
      body(this.activeOrThrow(key));
    } finally {
      lock.release();
    }
  }

  private committedOrThrow(chainId: string, what: string): SnapshotMeta {
    const meta = this.layout.committed(chainId);
    if (!meta) throw new NotFoundError(`snapshot ${chainId} (${what}) is not committed`);
    return meta;
  }

  private activeOrThrow(key: string): SnapshotMeta {
    const meta = this.layout.active(key);
    if (!meta) throw new NotFoundError(`no snapshot ${JSON.stringify(key)}`);
    return meta;
  }

  private fsOf(meta: SnapshotMeta): string {
    return join(this.layout.snapshotDir(meta.id), "fs");
  }
}

/** `cp -a` keeps hardlinks, devices, owners, times and xattrs; reflinks make it cheap where the filesystem can share extents. */
async function copyTree(source: string, dest: string): Promise<void> {
  const proc = spawnTracked(["cp", "-a", "--reflink=auto", source, dest], { stdout: "ignore", stderr: "pipe" });
  const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  if (code !== 0) throw new Error(`cp -a ${source} ${dest} failed (exit ${code}): ${stderr.trim()}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
