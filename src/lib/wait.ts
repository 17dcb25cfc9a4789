// Readiness strategies for `waitFor`, in Testcontainers' terms (Wait.forListeningPort,
// Wait.forLogMessage, Wait.forSuccessfulCommand, Wait.forHealthCheck, and composites): each is a
// check that either passes now or not yet, polled until all pass, the container exits
// (ContainerExitError) or the deadline comes (Timeout, with the container's last log lines).
// The checks reach the container only through a ReadyProbe, so composition, polling and the errors
// are pure and unit-tested with a fake probe; container.ts gives the real one.
import { InvalidArgumentError } from "../errdefs.ts";
import { ContainerExitError, Timeout } from "./errors.ts";

/** What a strategy may ask of the container being waited for. */
export interface ReadyProbe {
  readonly id: string;
  /** Whether a TCP connection to the container's port succeeds (through its published host port when it has one). */
  connects(containerPort: number): Promise<boolean>;
  /** Every log line so far (both streams, oldest first). */
  logLines(): Promise<string[]>;
  /** Runs argv in the container; its exit code. */
  exec(argv: string[]): Promise<number>;
  /** The image's HEALTHCHECK as a command to exec, or undefined when it has none. */
  healthcheck(): string[] | undefined;
  /** The exit code once the container stopped, undefined while it runs. */
  exitCode(): Promise<number | undefined>;
}

export interface WaitStrategy {
  /** For messages: "port 80", "log /ready/". */
  readonly description: string;
  /** Whether the condition holds now. A thrown error ends the wait with it. */
  ready(probe: ReadyProbe): Promise<boolean>;
}

export type WaitFor = WaitStrategy | readonly WaitStrategy[];

function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidArgumentError(`waitFor port ${JSON.stringify(port)} is not 1-65535`);
  return port;
}

/** The strategies, as Testcontainers' `Wait.*`. */
export const Wait = {
  /** A TCP connect from the host to the container's port (its published one when published) succeeds. */
  port(port: number): WaitStrategy {
    checkPort(port);
    return { description: `port ${port}`, ready: (p) => p.connects(port) };
  },
  /** A log line (stdout or stderr) matches, at least `times` times (default 1). */
  log(pattern: RegExp | string, times = 1): WaitStrategy {
    if (!Number.isInteger(times) || times < 1) throw new InvalidArgumentError(`waitFor log times ${JSON.stringify(times)} must be a whole number of at least 1`);
    const matches = typeof pattern === "string" ? (l: string) => l.includes(pattern) : (l: string) => new RegExp(pattern.source, pattern.flags.replace("g", "")).test(l);
    const shown = typeof pattern === "string" ? JSON.stringify(pattern) : String(pattern);
    return {
      description: `log ${shown}${times > 1 ? ` x${times}` : ""}`,
      ready: async (p) => (await p.logLines()).filter(matches).length >= times,
    };
  },
  /** A command run in the container exits 0. */
  exec(argv: readonly string[]): WaitStrategy {
    if (argv.length === 0) throw new InvalidArgumentError("waitFor exec needs a command");
    const args = [...argv];
    return { description: `exec ${JSON.stringify(args)}`, ready: async (p) => (await p.exec(args)) === 0 };
  },
  /** The image's HEALTHCHECK command exits 0 (run by us: bunker has no health monitor of its own). */
  healthcheck(): WaitStrategy {
    return {
      description: "healthcheck",
      ready: async (p) => {
        const argv = p.healthcheck();
        if (!argv) throw new InvalidArgumentError(`waitFor healthcheck: the image of container ${p.id} has no HEALTHCHECK`);
        return (await p.exec(argv)) === 0;
      },
    };
  },
  /** Every one passes (each is checked until it has passed once). */
  all(...strategies: WaitStrategy[]): WaitStrategy {
    const passed = new WeakMap<ReadyProbe, Set<number>>();
    return {
      description: strategies.map((s) => s.description).join(" and "),
      ready: async (p) => {
        const done = passed.get(p) ?? new Set<number>();
        passed.set(p, done);
        for (const [i, s] of strategies.entries()) if (!done.has(i) && (await s.ready(p))) done.add(i);
        return done.size === strategies.length;
      },
    };
  },
  /** Any one passes. */
  any(...strategies: WaitStrategy[]): WaitStrategy {
    if (strategies.length === 0) throw new InvalidArgumentError("Wait.any needs at least one strategy");
    return {
      description: strategies.map((s) => s.description).join(" or "),
      ready: async (p) => {
        for (const s of strategies) if (await s.ready(p)) return true;
        return false;
      },
    };
  },
};

/** A Dockerfile HEALTHCHECK's Test as a command: CMD runs as is, CMD-SHELL under /bin/sh -c; NONE is none. */
export function healthcheckCommand(test: readonly string[] | null | undefined): string[] | undefined {
  if (!test || test.length === 0) return undefined;
  const [kind, ...rest] = test;
  if (kind === "CMD" && rest.length > 0) return rest;
  if (kind === "CMD-SHELL" && rest.length > 0) return ["/bin/sh", "-c", rest.join(" ")];
  return undefined; // NONE, or a malformed test
}

export interface WaitOptions {
  /** Default 60 s (Testcontainers' startup timeout). */
  timeoutMs?: number;
  /** Between rounds; default 100 ms. */
  intervalMs?: number;
  /** How many log lines a Timeout or ContainerExitError carries; default 20. */
  tailLines?: number;
}

export const DEFAULT_WAIT_TIMEOUT_MS = 60_000;

/**
 * Polls until `waitFor` holds. The exit check comes before each round, so a container that died
 * is reported as such rather than as a timeout; a check's own exception ends the wait at once.
 */
export async function waitUntilReady(waitFor: WaitFor, probe: ReadyProbe, o: WaitOptions = {}): Promise<void> {
  const strategy = Array.isArray(waitFor) ? Wait.all(...(waitFor as WaitStrategy[])) : (waitFor as WaitStrategy);
  const timeoutMs = o.timeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS;
  const intervalMs = o.intervalMs ?? 100;
  const tail = async () => (await probe.logLines().catch(() => [])).slice(-(o.tailLines ?? 20));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const code = await probe.exitCode();
    if (code !== undefined) throw new ContainerExitError(probe.id, code, await tail());
    if (await strategy.ready(probe)) return;
    if (Date.now() >= deadline) {
      // one last look: a container that died during the round is an exit, not a timeout
      const late = await probe.exitCode();
      if (late !== undefined) throw new ContainerExitError(probe.id, late, await tail());
      throw new Timeout(`container ${probe.id} was not ready after ${timeoutMs} ms (waiting for ${strategy.description})`, await tail());
    }
    await Bun.sleep(Math.max(0, Math.min(intervalMs, deadline - Date.now())));
  }
}
