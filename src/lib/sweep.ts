// sweepLeftovers: what a reaper could not remove (the machine rebooted mid-run, the reaper itself
// was killed) is found by a later run through the labels every library container carries, the
// way Testcontainers finds containers of dead sessions by their session label. Only containers
// whose owning process is dead (pid + start time, session-labels.ts) are removed: suites running
// beside us keep theirs, and containers not made by the library are never looked at twice.
import pino, { type Logger } from "pino";
import { processStartTime } from "../proc.ts";
import { cleanupSession } from "./cleanup.ts";
import { type RemovalReport, removeChosen } from "./reap.ts";
import type { Target } from "./reaper-protocol.ts";
import { leftovers } from "./session-labels.ts";

export interface SweepOptions {
  logger?: Logger;
  /** Leave this session's containers alone (default: this process's own session). */
  ownSession?: string;
}

/** Removes (rm -f) the target's library containers whose session's process is dead. */
export async function sweepLeftovers(target: Target, o: SweepOptions = {}): Promise<RemovalReport> {
  const own = o.ownSession ?? cleanupSession().identity.session;
  return await removeChosen(target, (all) => leftovers(all, processStartTime, own), o.logger ?? pino({ level: "silent" }));
}
