// The labels that mark what a library session created, and the pure choices made from them: which
// containers belong to a session, and which sessions are leftovers (their process is dead).
//
// Testcontainers marks every container with org.testcontainers.sessionId and lets Ryuk remove by
// that label; bunker does the same with `bunker.lib.session`, and adds the owner's pid and its
// start time (field 22 of /proc/PID/stat) so that a later run can tell a live session from a dead
// one without a reaper: a pid alone may have been reused by then, pid + start time cannot.

/** Every container the library starts carries this label ("1"). */
export const LIB_LABEL = "bunker.lib";
/** The session (one per test process): a random uuid. */
export const SESSION_LABEL = "bunker.lib.session";
/** The pid of the process that owns the session. */
export const PID_LABEL = "bunker.lib.pid";
/** That process's start time in clock ticks since boot: with the pid, one process. */
export const PID_START_LABEL = "bunker.lib.pid.start";

export interface SessionIdentity {
  session: string;
  pid: number;
  /** /proc/PID/stat field 22 as read then; "" when it could not be read. */
  pidStart: string;
}

/** The labels the API puts on every container of this session (merged over the user's own). */
export function sessionLabels(s: SessionIdentity): Record<string, string> {
  return { [LIB_LABEL]: "1", [SESSION_LABEL]: s.session, [PID_LABEL]: String(s.pid), [PID_START_LABEL]: s.pidStart };
}

export interface LabelledContainer {
  namespace: string;
  id: string;
  labels: Record<string, string> | { [key: string]: string };
}

/** The containers this session made, whatever namespace they are in. */
export function sessionContainers<T extends LabelledContainer>(all: readonly T[], session: string): T[] {
  return all.filter((c) => c.labels[LIB_LABEL] === "1" && c.labels[SESSION_LABEL] === session);
}

/** The owner a container's labels name, or undefined for a container the library did not make. */
export function ownerOf(c: LabelledContainer): SessionIdentity | undefined {
  if (c.labels[LIB_LABEL] !== "1") return undefined;
  const session = c.labels[SESSION_LABEL] ?? "";
  const pid = Number(c.labels[PID_LABEL]);
  if (session === "" || !Number.isInteger(pid) || pid <= 0) return undefined;
  return { session, pid, pidStart: c.labels[PID_START_LABEL] ?? "" };
}

/** What a sweep learns of a process: its start time, or undefined when there is none with that pid. */
export type StartTimeOf = (pid: number) => string | undefined;

/**
 * Whether the session's owner is gone: no process with its pid, or one that started at another
 * time (the pid was reused). Without a recorded start time only the pid can be checked.
 */
export function ownerGone(owner: SessionIdentity, startTimeOf: StartTimeOf): boolean {
  const now = startTimeOf(owner.pid);
  if (now === undefined) return true;
  return owner.pidStart !== "" && now !== owner.pidStart;
}

/**
 * The library's containers whose session is dead, never those of a live session (another suite
 * running beside us) nor of the caller's own session. Containers without the library's labels are
 * never chosen, so a sweep cannot touch what a user ran by hand.
 */
export function leftovers<T extends LabelledContainer>(all: readonly T[], startTimeOf: StartTimeOf, ownSession?: string): T[] {
  const verdicts = new Map<string, boolean>();
  return all.filter((c) => {
    const owner = ownerOf(c);
    if (!owner || owner.session === ownSession) return false;
    const key = `${owner.session}/${owner.pid}/${owner.pidStart}`;
    let gone = verdicts.get(key);
    if (gone === undefined) verdicts.set(key, (gone = ownerGone(owner, startTimeOf)));
    return gone;
  });
}
