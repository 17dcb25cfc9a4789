// Cleanup guaranteed: what a test process (a `bun test` file, a program) started through the
// library is removed when that process ends, however it ends. Testcontainers relies on Ryuk for
// this; bunker runs no container for it, only a reaper process (reaper.ts).
//
// One session per process, started by the first track(): a uuid, the labels the API puts on every
// container (session-labels.ts), and one detached reaper holding the read end of a pipe. The API
// calls track() BEFORE it creates a container (so a SIGKILL mid-create still leaves a target the
// reaper looks in) and untrack() after it removed one. Every way out ends with the reaper removing
// what is left, and the process waits for it where it can:
//   - 'exit' (a normal end, process.exit, an uncaught error or rejection): handlers cannot await,
//     so the handler writes "reap" with write(2) and waits with a blocking sleep until the reaper
//     has exited (bounded: past the bound the detached reaper finishes on its own);
//   - 'beforeExit' (the event loop ran dry) and SIGINT/SIGTERM/SIGHUP: "reap", then wait
//     asynchronously; a signal is then raised again with our handler gone, so the process dies of
//     it as it would have (exit status 130/143, what shells and CI expect) — unless the program has
//     handlers of its own, which then decide;
//   - SIGKILL, OOM kill, a crash of bun: no code of ours runs; the kernel closes the pipe and the
//     reaper, which watches it and /proc/<pid> with the start time, removes everything.
// `bun test` fires no 'exit' handlers nor 'beforeExit' (Bun 1.4.5): a suite's leftovers are removed by the
// reaper when the runner's exit closes the pipe, a few hundred ms after it (tested).
// With nothing left to remove the process writes "done" and does not wait.
import { closeSync, writeSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { processStartTime, procStatFields } from "../proc.ts";
import { sys } from "../sys/index.ts";
import { encodeMessage, type Message, type NetworkRef, type Target, targetKey } from "./reaper-protocol.ts";
import { type SessionIdentity, sessionLabels } from "./session-labels.ts";

export type { NetworkRef, Target } from "./reaper-protocol.ts";

/** A container the session started, with where it lives (the manager's directories or the daemon). */
export type ContainerRef = { namespace: string; id: string } & Target;

/** What the library API calls; see the file header for when. */
export interface CleanupTracker {
  /** Merged into every Create's labels (the user's labels cannot override them). */
  readonly labels: Readonly<Record<string, string>>;
  track(ref: ContainerRef): void;
  untrack(ref: ContainerRef): void;
  trackNetwork(net: NetworkRef): void;
  untrackNetwork(net: NetworkRef): void;
}

/** How long an exit waits for the reaper to finish; past it the reaper goes on alone. */
const EXIT_WAIT_MS = 60_000;
const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

interface RunningReaper {
  pid: number;
  start: string | undefined;
  /** The pipe's write end (only this process holds it). */
  fd: number;
  exited: Promise<number>;
}

export class CleanupSession implements CleanupTracker {
  readonly identity: SessionIdentity;
  readonly labels: Readonly<Record<string, string>>;
  private readonly containers = new Map<string, ContainerRef>();
  private readonly networks = new Map<string, NetworkRef>();
  private readonly targetsTold = new Set<string>();
  private reaper: RunningReaper | undefined;
  private hooked = false;
  private ending: Promise<void> | undefined;

  private readonly reaperCommand: () => string[];
  private readonly hookProcess: boolean;

  /** `reaperCommand` and `hookProcess: false` are for tests (a recording reaper, no process handlers). */
  constructor(o: { reaperCommand?: () => string[]; hookProcess?: boolean } = {}) {
    this.reaperCommand = o.reaperCommand ?? defaultReaperCommand;
    this.hookProcess = o.hookProcess ?? true;
    this.identity = { session: randomUUID(), pid: process.pid, pidStart: processStartTime(process.pid) ?? "" };
    this.labels = Object.freeze(sessionLabels(this.identity));
  }

  /** The reaper's pid while one runs (tests check that it is gone afterwards). */
  get reaperPid(): number | undefined {
    return this.reaper?.pid;
  }

  track(ref: ContainerRef): void {
    this.tell({ t: "target", target: targetOf(ref) });
    this.containers.set(refKey(ref), ref);
  }

  untrack(ref: ContainerRef): void {
    this.containers.delete(refKey(ref));
  }

  trackNetwork(net: NetworkRef): void {
    this.send({ t: "net", net });
    this.networks.set(JSON.stringify([net.root, net.state, net.name]), net);
  }

  untrackNetwork(net: NetworkRef): void {
    const key = JSON.stringify([net.root, net.state, net.name]);
    if (!this.networks.delete(key)) return;
    if (this.reaper) this.send({ t: "unnet", net });
  }

  /**
   * Ends the session now: the reaper removes what is still tracked (and anything else labelled
   * with this session) and this resolves when it has exited. A later track() starts a new reaper.
   */
  end(): Promise<void> {
    this.ending ??= this.finish().finally(() => (this.ending = undefined));
    return this.ending;
  }

  private async finish(): Promise<void> {
    const r = this.release();
    if (r) await r.exited;
  }

  /** end() for an 'exit' handler: the same, waiting with a blocking sleep. */
  endSync(timeoutMs = EXIT_WAIT_MS): void {
    const r = this.release();
    if (!r) return;
    const deadline = Date.now() + timeoutMs;
    while (alive(r) && Date.now() < deadline) Bun.sleepSync(10);
  }

  /** Tells the reaper how the session ends and lets go of it; the reaper to wait for, if any. */
  private release(): RunningReaper | undefined {
    const r = this.reaper;
    if (!r) return undefined;
    const work = this.containers.size > 0 || this.networks.size > 0;
    this.write(r, { t: work ? "reap" : "done" });
    closeQuietly(r.fd);
    this.reaper = undefined;
    this.targetsTold.clear();
    this.containers.clear();
    this.networks.clear();
    return work ? r : undefined;
  }

  private tell(m: Message & { t: "target" }): void {
    const key = targetKey(m.target);
    if (this.reaper && this.targetsTold.has(key)) return;
    this.send(m);
    this.targetsTold.add(key);
  }

  private send(m: Message): void {
    const r = this.ensureReaper();
    if (!this.write(r, m)) {
      // The reaper died (EPIPE): a new one learns everything again.
      this.reaper = undefined;
      closeQuietly(r.fd);
      const again = this.ensureReaper();
      if (!this.write(again, m)) throw new Error("the bunker reaper exits as soon as it starts: containers of this process would not be cleaned up");
    }
  }

  private write(r: RunningReaper, m: Message): boolean {
    try {
      writeSync(r.fd, encodeMessage(m));
      return true;
    } catch {
      return false;
    }
  }

  private ensureReaper(): RunningReaper {
    if (this.reaper) return this.reaper;
    this.hook();
    const [readEnd, writeEnd] = sys().pipe();
    let proc: Bun.Subprocess;
    try {
      proc = Bun.spawn([...this.reaperCommand(), String(process.pid), this.identity.pidStart, this.identity.session], {
        detached: true,
        cwd: "/",
        stdin: readEnd,
        stdout: "ignore",
        stderr: "ignore",
      });
    } catch (err) {
      closeQuietly(writeEnd);
      throw err;
    } finally {
      closeQuietly(readEnd);
    }
    proc.unref();
    const r: RunningReaper = { pid: proc.pid, start: processStartTime(proc.pid), fd: writeEnd, exited: proc.exited };
    this.reaper = r;
    // Everything already tracked, for a reaper started again after one died.
    const known = [...this.containers.values()].map(targetOf);
    for (const t of known) if (!this.targetsTold.has(targetKey(t))) this.tellNew(r, t);
    for (const net of this.networks.values()) this.write(r, { t: "net", net });
    return r;
  }

  private tellNew(r: RunningReaper, t: Target): void {
    this.write(r, { t: "target", target: t });
    this.targetsTold.add(targetKey(t));
  }

  private hook(): void {
    if (this.hooked || !this.hookProcess) return;
    this.hooked = true;
    process.on("exit", () => this.endSync());
    process.on("beforeExit", () => {
      if (this.reaper && this.containers.size + this.networks.size > 0) void this.end();
    });
    for (const sig of SIGNALS) {
      const onSignal = (): void => {
        void this.end().finally(() => {
          process.removeListener(sig, onSignal);
          // Others listen: the program handles the signal itself; we only cleaned up.
          if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
        });
      };
      process.on(sig, onSignal);
    }
  }
}

/** [program, args...] that starts reaper.ts: bun with the script, or the compiled bunker's hidden `reap`. */
export function defaultReaperCommand(): string[] {
  // In a `bun build --compile` binary sources live under /$bunfs/ and cannot be run as a script.
  if (import.meta.path.startsWith("/$bunfs/")) return [process.execPath, "reap"];
  return [process.execPath, join(import.meta.dir, "reaper.ts")];
}

function targetOf(ref: Target): Target {
  return { daemon: ref.daemon, root: ref.root, state: ref.state, address: ref.address };
}

function refKey(ref: ContainerRef): string {
  return JSON.stringify([targetKey(targetOf(ref)), ref.namespace, ref.id]);
}

function alive(r: RunningReaper): boolean {
  const f = procStatFields(r.pid);
  // gone, a zombie (nobody reaps it while we block), or someone else with its pid
  return f !== undefined && f[0] !== "Z" && (r.start === undefined || f[19] === r.start);
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    /* already closed */
  }
}

const KEY = Symbol.for("bunker.lib.cleanupSession");

/** This process's session (one, even when two copies of the library are loaded). */
export function cleanupSession(): CleanupSession {
  const g = globalThis as { [KEY]?: CleanupSession };
  g[KEY] ??= new CleanupSession();
  return g[KEY];
}
