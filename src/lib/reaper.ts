// The reaper: a process that outlives the test process and removes what its session made when that
// process dies, however it dies (SIGKILL included) — Testcontainers' Ryuk without a container.
//
//   <bun or bunker> src/lib/reaper.ts <parent pid> <parent start time> <session uuid>
//
// Started detached by cleanup.ts (its own session and process group, so the terminal's ^C and the
// test runner's group kill do not reach it; stdout/stderr on /dev/null; cwd /). Its stdin is a pipe
// whose other end only the parent holds (reaper-protocol.ts). It reaps on the pipe's end, on "reap",
// or when /proc shows the parent gone; it leaves without looking on "done". Either way it exits, so
// no reaper survives its session. BUNKER_REAPER_LOG=<file> makes it log there (it has no stderr).
import { appendFileSync } from "node:fs";
import pino, { type Logger } from "pino";
import { errorMessage } from "../errdefs.ts";
import { processStartTime } from "../proc.ts";
import { removeChosen, removeNetwork } from "./reap.ts";
import { type Action, ReaperState } from "./reaper-protocol.ts";
import { sessionContainers } from "./session-labels.ts";

/** How often /proc is read, for a parent whose pipe end some child process kept open. */
const PARENT_POLL_MS = 500;
/**
 * After /proc shows the parent dead, how long the pipe is read before reaping when no end comes
 * (a child of the parent holds the write end). What the parent wrote is already in the pipe, so
 * this bounds only that case; the usual one ends at the pipe's end, at once.
 */
const DRAIN_MS = 2_000;

export async function reaperMain(argv: string[]): Promise<number> {
  const [pidArg, startArg, session] = argv;
  const parentPid = Number(pidArg);
  if (!Number.isInteger(parentPid) || parentPid <= 0 || startArg === undefined || !session) {
    process.stderr.write("usage: reaper <parent pid> <parent start time> <session>\n");
    return 2;
  }
  const logFile = process.env.BUNKER_REAPER_LOG;
  const log: Logger = logFile ? pino({ level: "info", base: { reaper: process.pid, session } }, pino.destination({ dest: logFile, sync: true, append: true })) : pino({ level: "silent" });
  const state = new ReaperState(parentPid, startArg);
  const { promise: decided, resolve: decide } = Promise.withResolvers<"reap" | "exit">();
  let drainTimer: Timer | undefined;
  const act = (a: Action): void => {
    if (a === "drain") drainTimer = setTimeout(() => act(state.onDrained()), DRAIN_MS);
    else if (a !== "wait") decide(a);
  };

  const poll = setInterval(() => act(state.onParentCheck(processStartTime(parentPid))), PARENT_POLL_MS);
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of Bun.stdin.stream()) act(state.onData(decoder.decode(chunk, { stream: true })));
    act(state.onEof());
  })().catch((err: unknown) => {
    log.warn({ err: errorMessage(err) }, "reading the pipe failed: taking the parent for dead");
    act(state.onEof());
  });
  // The parent may already be gone (killed between spawning us and our first look).
  act(state.onParentCheck(processStartTime(parentPid)));

  const what = await decided;
  clearInterval(poll);
  clearTimeout(drainTimer);
  if (what === "exit") {
    log.info("session ended: nothing to remove");
    return 0;
  }
  log.info({ targets: state.targets.length, networks: state.networks.length }, "reaping");
  return await reap(state, session, log);
}

/** Removes the session's containers in every target, then its networks; 1 when something stayed. */
async function reap(state: ReaperState, session: string, log: Logger): Promise<number> {
  let failed = false;
  for (const target of state.targets) {
    try {
      const r = await removeChosen(target, (all) => sessionContainers(all, session), log);
      log.info({ target: target.address, removed: r.removed, failed: r.failed }, "removed the session's containers");
      if (r.failed.length > 0) failed = true;
    } catch (err) {
      failed = true;
      log.error({ target: target.address, err: errorMessage(err) }, "could not reach the target");
    }
  }
  for (const net of state.networks) {
    try {
      await removeNetwork(net);
      log.info({ network: net.name }, "removed the session's network");
    } catch (err) {
      failed = true;
      log.error({ network: net.name, err: errorMessage(err) }, "could not remove the session's network");
    }
  }
  return failed ? 1 : 0;
}

if (import.meta.main) {
  const code = await reaperMain(process.argv.slice(2)).catch((err: unknown) => {
    const f = process.env.BUNKER_REAPER_LOG;
    if (f) appendFileSync(f, `reaper failed: ${errorMessage(err)}\n`);
    return 1;
  });
  // The task managers and pino may keep handles open: the work is done, leave now.
  process.exit(code);
}
