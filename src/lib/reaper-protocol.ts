// What the test process tells its reaper, and the reaper's decisions, kept pure so they are tested
// with a fake process table and no processes.
//
// Testcontainers' Ryuk learns its filters over a TCP connection and reaps when that connection
// drops. bunker's reaper is a plain process, so the connection is a pipe: the reaper's stdin. The
// test process writes one JSON object per line (where to look: each manager's root/state/address;
// the networks it made) with write(2), which an 'exit' handler may still do. The pipe's end is the
// test process's death (the kernel closes the write end even on SIGKILL) unless it said "done"
// first; a poll of /proc/<pid> with the start time backs it up, for a write end some child kept.

/** Where a session's containers live: an embedded manager's directories, or a daemon's socket. */
export interface Target {
  /** true: `address` is a `bunker daemon` socket, removals go through it. */
  daemon: boolean;
  root: string;
  state: string;
  address: string;
}

/** A network the session made, released after its containers. */
export interface NetworkRef {
  root: string;
  state: string;
  name: string;
}

export type Message =
  | { t: "target"; target: Target }
  | { t: "net"; net: NetworkRef }
  | { t: "unnet"; net: NetworkRef }
  /** Remove everything now and exit: the test process waits for that (signals, exit). */
  | { t: "reap" }
  /** The session ended with nothing left to remove: exit without looking. */
  | { t: "done" };

export function encodeMessage(m: Message): string {
  return `${JSON.stringify(m)}\n`;
}

/** One line of the pipe; undefined for a line this version does not know (ignored, not fatal). */
export function parseMessage(line: string): Message | undefined {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof v !== "object" || v === null) return undefined;
  const m = v as Record<string, unknown>;
  const str = (o: unknown, k: string): o is Record<string, string> => typeof o === "object" && o !== null && typeof (o as Record<string, unknown>)[k] === "string";
  switch (m.t) {
    case "target": {
      const t = m.target;
      if (str(t, "root") && str(t, "state") && str(t, "address") && typeof (t as Record<string, unknown>).daemon === "boolean") return { t: "target", target: t as unknown as Target };
      return undefined;
    }
    case "net":
    case "unnet": {
      const n = m.net;
      if (str(n, "root") && str(n, "state") && str(n, "name")) return { t: m.t, net: { root: n.root!, state: n.state!, name: n.name! } };
      return undefined;
    }
    case "reap":
    case "done":
      return { t: m.t };
    default:
      return undefined;
  }
}

export const targetKey = (t: Target): string => JSON.stringify([t.daemon, t.root, t.state, t.address]);
const networkKey = (n: NetworkRef): string => JSON.stringify([n.root, n.state, n.name]);

/**
 * wait: keep watching; reap: remove what the session made, then exit; exit: leave at once;
 * drain: the parent is dead but the pipe may still hold what it wrote before dying (a reaper
 * started slowly under load finds a parent that lived less than its own start-up, its target still
 * unread: seen in CI as a container outliving its reaper). Read the pipe to its end, or for a
 * bounded time when some child keeps the write end, then call onDrained().
 */
export type Action = "wait" | "drain" | "reap" | "exit";

/**
 * The reaper's state: what to clean and whether the parent is still the parent. Every input gives
 * the next action; after the first "reap" or "exit" the rest are "wait" (one removal, one exit).
 */
export class ReaperState {
  private readonly targetsByKey = new Map<string, Target>();
  private readonly networksByKey = new Map<string, NetworkRef>();
  private decided = false;
  private draining = false;
  private buffered = "";

  constructor(
    readonly parentPid: number,
    /** The parent's start time as the parent read it; "" when unknown (then only the pid is checked). */
    readonly parentStart: string,
  ) {}

  get targets(): Target[] {
    return [...this.targetsByKey.values()];
  }

  get networks(): NetworkRef[] {
    return [...this.networksByKey.values()];
  }

  /** Bytes from the pipe, split into lines (a line may arrive in pieces). */
  onData(text: string): Action {
    this.buffered += text;
    let action: Action = "wait";
    for (;;) {
      const nl = this.buffered.indexOf("\n");
      if (nl < 0) break;
      const line = this.buffered.slice(0, nl);
      this.buffered = this.buffered.slice(nl + 1);
      const m = parseMessage(line);
      if (m) action = strongest(action, this.onMessage(m));
    }
    return action;
  }

  onMessage(m: Message): Action {
    switch (m.t) {
      case "target":
        this.targetsByKey.set(targetKey(m.target), m.target);
        return "wait";
      case "net":
        this.networksByKey.set(networkKey(m.net), m.net);
        return "wait";
      case "unnet":
        this.networksByKey.delete(networkKey(m.net));
        return "wait";
      case "reap":
        return this.decide("reap");
      case "done":
        return this.decide("exit");
    }
  }

  /** The pipe ended: the parent closed it or died; either way, without "done" there is work. */
  onEof(): Action {
    return this.decide("reap");
  }

  /**
   * A look at the process table: `startNow` is the start time of whatever process has the parent's
   * pid now (undefined: none). Another start time means the parent died and its pid was reused.
   */
  onParentCheck(startNow: string | undefined): Action {
    const gone = startNow === undefined || (this.parentStart !== "" && startNow !== this.parentStart);
    if (!gone || this.decided || this.draining) return "wait";
    this.draining = true;
    return "drain";
  }

  /** The pipe was read after the parent's death (to its end, or for the bound): decide now. */
  onDrained(): Action {
    return this.decide("reap");
  }

  private decide(a: "reap" | "exit"): Action {
    if (this.decided) return "wait";
    this.decided = true;
    // Nothing was ever registered: there is nothing to look for.
    if (a === "reap" && this.targetsByKey.size === 0 && this.networksByKey.size === 0) return "exit";
    return a;
  }
}

function strongest(a: Action, b: Action): Action {
  return a !== "wait" ? a : b;
}
