// When a grouped shim may exit. A shim serves many containers, and containerd sends `Shutdown`
// after each container's Delete; like the runc shim we ignore it while containers remain. Grouping
// adds a race the one-container shim never had: a `start` for a new container may pick this shim
// just before the last old container leaves. So `start` reserves its container id (through
// Connect) before printing the address, Shutdown is ignored while reservations are pending, and a
// shim that is already going away refuses reservations, so `start` spawns a fresh one instead.
// An idle timeout ends a shim that nobody uses any more (e.g. a reservation whose Create never came).
// A shim may also linger a few seconds after its last Shutdown: the next container of the group
// (a `ctr run` right after another) then reuses it instead of paying for a new Bun process.
import { UnavailableError } from "../errdefs.ts";

export interface LifecycleOptions {
  /** How long a reservation holds the shim open without its Create. */
  reservationMs?: number;
  /** Exit after this long with no containers and no reservations, even without Shutdown. */
  idleMs?: number;
  /** After a Shutdown with nothing left, keep serving this long for the group's next container. */
  lingerMs?: number;
  /** Called after every change of the served set (the serve loop schedules a GC from it). */
  onChanged?: () => void;
}

/** BUNKER_SHIM_LINGER_MS, else 5 s. */
export function lingerFromEnv(env: Record<string, string | undefined> = process.env): number {
  const v = Number.parseInt(env.BUNKER_SHIM_LINGER_MS ?? "", 10);
  return Number.isInteger(v) && v >= 0 ? v : 5000;
}

export class Lifecycle {
  private readonly reservations = new Map<string, Timer>();
  private stopping = false;
  private shutdownRequested = false;
  private idleTimer: Timer | undefined;
  private resolveDone!: () => void;
  /** Resolves when the shim should stop serving. */
  readonly done: Promise<void>;
  private readonly reservationMs: number;
  private readonly idleMs: number;
  private readonly lingerMs: number;

  constructor(
    private readonly containerCount: () => number,
    private readonly opts: LifecycleOptions = {},
  ) {
    this.reservationMs = opts.reservationMs ?? 30_000;
    this.idleMs = opts.idleMs ?? 300_000;
    this.lingerMs = opts.lingerMs ?? 0;
    this.done = new Promise((r) => (this.resolveDone = r));
  }

  get shuttingDown(): boolean {
    return this.stopping;
  }

  get reserved(): number {
    return this.reservations.size;
  }

  isReserved(id: string): boolean {
    return this.reservations.has(id);
  }

  /** Holds the shim for a container about to be created here; refused once shutdown began. */
  reserve(id: string): void {
    if (this.stopping) throw new UnavailableError("shim is shutting down");
    this.shutdownRequested = false;
    clearTimeout(this.reservations.get(id));
    const timer = setTimeout(() => {
      this.reservations.delete(id);
      this.changed();
    }, this.reservationMs);
    timer.unref();
    this.reservations.set(id, timer);
    this.changed();
  }

  /** The reserved container arrived (Create) or gave up. */
  release(id: string): void {
    const timer = this.reservations.get(id);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.reservations.delete(id);
    this.changed();
  }

  private empty(): boolean {
    return this.containerCount() === 0 && this.reservations.size === 0;
  }

  /**
   * containerd's Shutdown: acts only when nothing is served or reserved (then stops, or lingers).
   * Returns whether it acted.
   */
  requestShutdown(): boolean {
    if (this.stopping) return true;
    if (!this.empty()) return false;
    if (this.lingerMs <= 0) {
      this.stop();
      return true;
    }
    this.shutdownRequested = true;
    this.changed();
    return true;
  }

  /** Stops regardless of containers (signals, fatal errors). */
  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    clearTimeout(this.idleTimer);
    for (const t of this.reservations.values()) clearTimeout(t);
    this.reservations.clear();
    // resolve after the current turn, so a Shutdown reply is written before serving stops
    setTimeout(() => this.resolveDone(), 0);
  }

  /** Call whenever the container count may have changed. */
  changed(): void {
    if (this.stopping) return;
    this.opts.onChanged?.();
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (this.empty()) {
      this.idleTimer = setTimeout(
        () => {
          if (this.empty()) this.stop();
        },
        this.shutdownRequested ? this.lingerMs : this.idleMs,
      );
    }
  }
}
