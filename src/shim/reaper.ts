// The one place a serving shim learns that a process ended. As subreaper the shim inherits every
// container process runc leaves behind; SIGCHLD triggers a sweep that reaps them by pid, leaving
// Bun's own Bun.spawn children to Bun (sweepOrphans excludes them), and each exit goes to whoever
// watches that pid. A signalled process reports 128+signal. Exits nobody watches yet are kept for a
// while: a process can end before the code that started it has registered its pid.
import { sweepOrphans } from "../sys/children.ts";
import type { ReapedChild } from "../sys/types.ts";

export interface Exit {
  pid: number;
  /** Exit code, or 128+signal for a signalled process. */
  status: number;
  signal?: number;
  at: Date;
}

export type ExitListener = (exit: Exit) => void;

const UNCLAIMED_MAX = 1024;
const UNCLAIMED_TTL_MS = 60_000;

export class Monitor {
  private readonly watchers = new Map<number, ExitListener>();
  private readonly unclaimed = new Map<number, Exit>();
  private readonly anyListeners = new Set<ExitListener>();
  private sweeping = false;
  private again = false;

  constructor(private readonly sweep: () => ReapedChild[] = sweepOrphans) {}

  /** Calls `listener` once when pid exits (at once if it already has and was not claimed). */
  watch(pid: number, listener: ExitListener): void {
    const early = this.unclaimed.get(pid);
    if (early) {
      this.unclaimed.delete(pid);
      listener(early);
      return;
    }
    this.watchers.set(pid, listener);
  }

  unwatch(pid: number): void {
    this.watchers.delete(pid);
  }

  /** Sees every exit, claimed or not (logging, tests). */
  onAnyExit(listener: ExitListener): () => void {
    this.anyListeners.add(listener);
    return () => this.anyListeners.delete(listener);
  }

  /** Reaps what has exited and dispatches it. Safe to call at any time, as often as wanted. */
  reap(): void {
    if (this.sweeping) {
      this.again = true; // a listener triggered a sweep: run it after this one, not inside it
      return;
    }
    this.sweeping = true;
    try {
      do {
        this.again = false;
        for (const child of this.sweep()) this.dispatch(child);
      } while (this.again);
    } finally {
      this.sweeping = false;
    }
  }

  private dispatch(child: ReapedChild): void {
    const exit: Exit = { pid: child.pid, status: child.status, at: new Date() };
    if (child.signal !== undefined) exit.signal = child.signal;
    for (const l of this.anyListeners) l(exit);
    const listener = this.watchers.get(child.pid);
    if (listener) {
      this.watchers.delete(child.pid);
      listener(exit);
      return;
    }
    this.keepUnclaimed(exit);
  }

  private keepUnclaimed(exit: Exit): void {
    const cutoff = exit.at.getTime() - UNCLAIMED_TTL_MS;
    for (const [pid, e] of this.unclaimed) {
      if (e.at.getTime() >= cutoff && this.unclaimed.size < UNCLAIMED_MAX) break;
      this.unclaimed.delete(pid); // insertion order: the oldest go first
    }
    this.unclaimed.set(exit.pid, exit);
  }

  /** Subscribes to SIGCHLD (plus a slow safety sweep for coalesced signals); returns the undo. */
  start(intervalMs = 5000): () => void {
    const onChild = (): void => this.reap();
    process.on("SIGCHLD", onChild);
    const timer = setInterval(onChild, intervalMs);
    timer.unref();
    this.reap();
    return () => {
      process.off("SIGCHLD", onChild);
      clearInterval(timer);
    };
  }
}
