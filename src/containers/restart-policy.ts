// docker's restart policies (`--restart no|always|unless-stopped|on-failure[:N]`) as data: the
// parse, the decision after an exit, and the back-off between restarts. The rules are moby's
// restartmanager: a delay that starts at 100 ms and doubles on each restart, capped at one minute,
// and back to 100 ms once a run lasted 10 s; a user's stop or kill holds every policy until the
// container is started again, except that `always` comes back at the next daemon start; `on-failure`
// restarts only a non-zero exit, at most N times. A container a reboot killed has exit 255 (unknown).
import { InvalidArgumentError } from "../errdefs.ts";

export type RestartPolicyName = "no" | "always" | "unless-stopped" | "on-failure";

export interface RestartPolicy {
  name: RestartPolicyName;
  /** on-failure's N; 0: no limit. */
  maxRetries: number;
}

export const NO_RESTART: RestartPolicy = { name: "no", maxRetries: 0 };

export const BACKOFF_START_MS = 100;
export const BACKOFF_MAX_MS = 60_000;
/** A run at least this long resets the back-off. */
export const BACKOFF_RESET_AFTER_MS = 10_000;

/** `always`, `on-failure:3`, `unless-stopped`, `no` or empty (no). */
export function parseRestartPolicy(value: string): RestartPolicy {
  if (value === "" || value === "no") return NO_RESTART;
  const [name, count, extra] = value.split(":");
  if (extra !== undefined) throw new InvalidArgumentError(`invalid restart policy ${JSON.stringify(value)}`);
  if (name === "always" || name === "unless-stopped") {
    if (count !== undefined) throw new InvalidArgumentError(`restart policy ${name} takes no maximum retry count`);
    return { name, maxRetries: 0 };
  }
  if (name === "on-failure") {
    if (count === undefined) return { name, maxRetries: 0 };
    if (!/^\d{1,6}$/.test(count)) throw new InvalidArgumentError(`restart policy on-failure: the retry count must be a whole number, not ${JSON.stringify(count)}`);
    return { name, maxRetries: Number(count) };
  }
  throw new InvalidArgumentError(`invalid restart policy ${JSON.stringify(value)}: use no, always, unless-stopped or on-failure[:N]`);
}

export function formatRestartPolicy(p: RestartPolicy): string {
  return p.name === "on-failure" && p.maxRetries > 0 ? `on-failure:${p.maxRetries}` : p.name;
}

export interface ExitFacts {
  exitStatus: number;
  manuallyStopped: boolean;
  /** Restarts so far (docker's RestartCount). */
  restartCount: number;
  /** At the daemon's start (after a reboot or a daemon restart) rather than right after an exit. */
  atDaemonStart: boolean;
}

/** Whether a container that stopped comes back. */
export function shouldRestart(p: RestartPolicy, f: ExitFacts): boolean {
  switch (p.name) {
    case "no":
      return false;
    case "always":
      return f.atDaemonStart || !f.manuallyStopped;
    case "unless-stopped":
      return !f.manuallyStopped;
    case "on-failure":
      return !f.manuallyStopped && f.exitStatus !== 0 && (p.maxRetries === 0 || f.restartCount < p.maxRetries);
  }
}

/** The wait before the next restart, from the previous wait (0: none yet) and how long the run lasted. */
export function nextBackoff(previousMs: number, ranMs: number): number {
  if (previousMs === 0 || ranMs >= BACKOFF_RESET_AFTER_MS) return BACKOFF_START_MS;
  return Math.min(previousMs * 2, BACKOFF_MAX_MS);
}
