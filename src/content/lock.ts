// Cross-process file locks for the content store: flock(2) on a lock file, as containerd's local
// content store guards an ingest ref (there with an in-process map plus a lock file). flock is used
// because the kernel drops it when the holder dies (SIGKILL included), so a crashed pull never
// leaves a lock to clean up. `sys().flock` never blocks (a blocking call would stall Bun's event
// loop), so waiting is a retry on a short timer.
import { closeSync, fstatSync, openSync, statSync } from "node:fs";
import { DeadlineExceededError } from "../errdefs.ts";
import { sys } from "../sys/index.ts";

const RETRY_MS = 25;

export interface HeldLock {
  readonly path: string;
  release(): void;
}

/** Opens and locks `path` once; null when another open file description holds it. */
export function tryLock(path: string): HeldLock | null {
  for (;;) {
    const fd = openSync(path, "a", 0o600);
    let locked = false;
    try {
      locked = sys().flock(fd, "exclusive");
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    if (!locked) {
      closeSync(fd);
      return null;
    }
    // The previous holder may have unlinked the file (a finished ingest removes its dir) between our
    // open and our lock: a lock on an unlinked inode guards nothing, so start again on the new file.
    if (sameFile(fd, path)) return held(fd, path);
    closeSync(fd);
  }
}

/** Waits (polling) until `path` is locked by us; `timeoutMs` bounds the wait (default: forever). */
export async function acquireLock(path: string, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<HeldLock> {
  const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
  for (;;) {
    opts.signal?.throwIfAborted();
    const lock = tryLock(path);
    if (lock) return lock;
    if (Date.now() >= deadline) throw new DeadlineExceededError(`timed out waiting for the lock ${path}`);
    await Bun.sleep(RETRY_MS);
  }
}

function sameFile(fd: number, path: string): boolean {
  try {
    const a = fstatSync(fd), b = statSync(path);
    return a.ino === b.ino && a.dev === b.dev;
  } catch {
    return false;
  }
}

function held(fd: number, path: string): HeldLock {
  let open = true;
  return {
    path,
    release() {
      if (!open) return;
      open = false;
      // Closing the last fd of the open file description drops the flock.
      closeSync(fd);
    },
  };
}
