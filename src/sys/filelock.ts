// Cross-process file locks: flock(2) on a lock file, for the content store (one per ingest, and
// index.json) and the snapshot store (one per chain ID and per container layer). The kernel drops a
// flock when its holder dies (SIGKILL included), which is what makes a crashed pull or unpack
// reclaimable: a temp whose lock nobody holds is garbage. sys().flock never blocks (a blocking flock
// would stall Bun's one JavaScript thread), so waiting is a retry on a timer.
//
// Lock files may be deleted (a removed container's key lock, a pruned chain's lock) without the
// classic race where a waiter locks the unlinked inode while a newcomer locks a fresh file: after
// every acquisition the holder checks that the path still names the inode it locked, and starts
// over when it does not (the protocol of util-linux's flock(1) users and containerd's own
// filelocks). Deleting happens only while holding the lock exclusively.
import * as fs from "node:fs";
import { DeadlineExceededError } from "../errdefs.ts";
import { sys } from "./index.ts";

export type LockMode = "exclusive" | "shared";

export interface HeldLock {
  readonly path: string;
  readonly mode: LockMode;
  /** Releases the lock; `removeFile` unlinks the lock file first (only for an exclusive hold). */
  release(opts?: { removeFile?: boolean }): void;
}

const FIRST_DELAY_MS = 2;
const MAX_DELAY_MS = 100;

/** One attempt: the lock, or null when another open file description holds a conflicting one. */
export function tryLock(path: string, mode: LockMode = "exclusive"): HeldLock | null {
  for (;;) {
    const fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600); // Node opens close-on-exec
    let held = false;
    try {
      if (!sys().flock(fd, mode)) return null;
      held = true;
      if (sameInode(fd, path)) return holder(path, mode, fd);
    } finally {
      if (!held) fs.closeSync(fd);
    }
    // The file was unlinked (and maybe re-created) between our open and our flock: lock again.
    fs.closeSync(fd);
  }
}

/**
 * Waits until the lock is free, retrying with a growing delay. `signal` ends the wait with its
 * reason, `timeoutMs` with a DeadlineExceededError; `onWait` is called once when the first attempt
 * finds the lock taken (for logs and tests).
 */
export async function acquireLock(path: string, mode: LockMode = "exclusive", opts: { signal?: AbortSignal; timeoutMs?: number; onWait?: () => void } = {}): Promise<HeldLock> {
  const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
  let delay = FIRST_DELAY_MS;
  let waited = false;
  for (;;) {
    opts.signal?.throwIfAborted();
    const lock = tryLock(path, mode);
    if (lock) return lock;
    if (Date.now() >= deadline) throw new DeadlineExceededError(`timed out waiting for the lock ${path}`);
    if (!waited) {
      waited = true;
      opts.onWait?.();
    }
    await Bun.sleep(delay);
    delay = Math.min(delay * 2, MAX_DELAY_MS);
  }
}

function sameInode(fd: number, path: string): boolean {
  try {
    const byFd = fs.fstatSync(fd);
    const byPath = fs.statSync(path);
    return byFd.ino === byPath.ino && byFd.dev === byPath.dev;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}

function holder(path: string, mode: LockMode, fd: number): HeldLock {
  let open = true;
  return {
    path,
    mode,
    release(opts = {}) {
      if (!open) return;
      open = false;
      try {
        if (opts.removeFile && mode === "exclusive") fs.rmSync(path, { force: true });
      } finally {
        fs.closeSync(fd); // closing the last fd of the description drops the flock
      }
    },
  };
}
