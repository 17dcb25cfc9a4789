// Which exit events the executor acts on. Events are read from a log that is replayed from its
// start after every (re)connection, since a restarted daemon numbers its events from 1 again and a
// cursor from the old one would skip the new ones. Replays are therefore normal, and an exit counts
// only for a container this executor tracks (created or restored, exit not yet handled), and only
// for the incarnation it tracks: a replayed exit of an earlier container with the same id must not
// end the current one.

export interface Tracked {
  /** The init pid once Start answered (or restore read it); undefined in between. */
  pid: number | undefined;
  /** Wall-clock ms before Create was sent; 0 for a restored container. */
  since: number;
}

export interface ExitEventInfo {
  containerId: string;
  /** The process id: the container id for the init process, the exec id otherwise. */
  id: string;
  pid: number;
  exitedAt: Date | undefined;
}

/** True when the event reports the exit of the tracked container's init process. */
export function isTrackedInitExit(t: Tracked, e: ExitEventInfo): boolean {
  // An exec's exit does not end the container.
  if (e.id !== "" && e.id !== e.containerId) return false;
  if (t.pid !== undefined) {
    // pid 0: the manager's report for a shim that died and whose delete could not say more.
    return e.pid === t.pid || e.pid === 0;
  }
  // Start has not answered yet (a fast process can exit first): the exit must be newer than our
  // Create, which an earlier incarnation's exit is not. The shim and we share the host's clock.
  return e.exitedAt === undefined || e.exitedAt.getTime() >= t.since;
}

/**
 * The cursor after a poll answered with `last`, the newest seq the daemon has. A `last` below our
 * cursor means the daemon restarted and numbers from 1 again: start over (replays are harmless).
 */
export function nextCursor(after: bigint, last: bigint): bigint {
  return last < after ? 0n : last;
}
