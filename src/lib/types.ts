// The few shapes the library's modules share with each other and with whoever watches what it
// starts (the cleanup module, src/lib/cleanup.ts): what names a container on the host, and the
// two-method tracker told when one appears and when it is gone. Testcontainers registers every
// container with Ryuk by labels; bunker's reaper gets the same facts through this seam, so the
// API files know nothing about how cleanup is guaranteed.

/** Everything needed to find (and remove) a container the library started, from any process. */
export interface ContainerRef {
  id: string;
  namespace: string;
  /** bunker's --root and --state the container lives under (embedded), or the daemon's (below). */
  root: string;
  state: string;
  /** The daemon socket when the container was made through one; undefined when embedded. */
  daemon?: string;
  /** The socket shims of an embedded manager publish to (their -address): the manager's identity. */
  address: string;
  /** The container's labels (LIB_LABELS among them). */
  labels: Readonly<Record<string, string>>;
}

/** A named network bunker.network() made: removed with its root's network store. */
export interface NetworkRef {
  name: string;
  root: string;
  state: string;
}

/**
 * Told about every container the library starts and removes (and, optionally, networks); each may
 * be called more than once for one ref. Calls are synchronous: a tracker that writes files must
 * be done before the library goes on, or a SIGKILL right after could lose the record.
 */
export interface ContainerTracker {
  track(ref: ContainerRef): void;
  untrack(ref: ContainerRef): void;
  trackNetwork?(ref: NetworkRef): void;
  untrackNetwork?(ref: NetworkRef): void;
}

/** The labels marking what the library made, so that a later run can sweep leftovers. */
export const LIB_LABELS = {
  /** "1" on everything the library made. */
  lib: "bunker.lib",
  /** A random id per process (per loaded library), shared by everything that process made. */
  session: "bunker.lib.session",
  /** The pid of the process that made it. */
  pid: "bunker.lib.pid",
  /** That process's start time (clock ticks since boot): with the pid, one process (a reused pid is not its owner). */
  pidStart: "bunker.lib.pid.start",
} as const;
