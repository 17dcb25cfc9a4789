// A running container as a test sees it (Testcontainers' StartedTestContainer): where its ports
// are on the host, exec with an exit code, its logs from the start, stop/kill/wait/remove, and
// `await using` removal. Every call goes through the bunker.v1 API (embedded manager or daemon),
// so the two paths behave alike; the logs are the json-file the shim writes (logs.ts).
import { connect as tcpConnect } from "node:net";
import { isNotFound, NotFoundError } from "../errdefs.ts";
import type { Api } from "../api/client.ts";
import type { TaskInfo } from "../gen/bunker/v1/api_pb.ts";
import { Status } from "../gen/containerd/types/task/task_pb.ts";
import { parseSignal } from "../executor/request.ts";
import { type ExecOptions, type ExecResult, execIn } from "./exec.ts";
import { Timeout } from "./errors.ts";
import { type LogLine, LogCursor, type Stream } from "./logs.ts";
import { type PortPlan, releaseChosen } from "./ports.ts";
import { notify } from "./tracking.ts";
import type { ContainerRef, ContainerTracker } from "./types.ts";
import type { ReadyProbe } from "./wait.ts";

const FOLLOW_POLL_MS = 100;
const CONNECT_TIMEOUT_MS = 1_000;

export interface LogsOptions {
  /** Keep reading until the container stops (default: what is there now, then end). */
  follow?: boolean;
  /** Only this stream (default both). */
  stream?: Stream;
}

/** What run() learned when it made the container. */
export interface ContainerInit {
  api: Api;
  ref: ContainerRef;
  ports: readonly PortPlan[];
  ips: readonly string[];
  logPath: string;
  healthcheck: string[] | undefined;
  tracker: ContainerTracker | undefined;
  /** Called once the container is removed (the client forgets it). */
  onRemoved: (c: Container) => void;
}

/** Whether `fn` connects to host:port within the timeout. */
export function canConnect(host: string, port: number, timeoutMs = CONNECT_TIMEOUT_MS): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host, port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

export class Container {
  /** The container's id (its name: bunker has one identifier per container). */
  readonly id: string;
  /** Where published ports answer. */
  readonly host = "127.0.0.1";
  private removed: Promise<void> | undefined;

  constructor(private readonly c: ContainerInit) {
    this.id = c.ref.id;
  }

  get name(): string {
    return this.id;
  }

  get namespace(): string {
    return this.c.ref.namespace;
  }

  /** The container's address on its network (undefined without one: network "none" or "host"). */
  get ip(): string | undefined {
    return this.c.ips[0];
  }

  get labels(): Readonly<Record<string, string>> {
    return this.c.ref.labels;
  }

  /** The host port published for `containerPort` (NotFound when it was not published). */
  port(containerPort: number, protocol: "tcp" | "udp" = "tcp"): number {
    const p = this.c.ports.find((x) => x.containerPort === containerPort && x.protocol === protocol);
    if (!p) throw new NotFoundError(`container ${this.id} publishes no port ${containerPort}/${protocol} (ports: { ${containerPort}: 0 } publishes one)`);
    return p.hostPort;
  }

  /** Runs argv in the container; its exit code and output (a non-zero exit is a result, not an error). */
  exec(argv: readonly string[], o: ExecOptions = {}): Promise<ExecResult> {
    return execIn(this.c.api, this.c.ref, argv, o);
  }

  /** The container's output from its start, line by line (`follow`: until it stops). */
  async *logs(o: LogsOptions = {}): AsyncGenerator<string> {
    for await (const l of this.logLines(o)) yield l.text;
  }

  /** As logs(), with the stream each line came from. */
  async *logLines(o: LogsOptions = {}): AsyncGenerator<LogLine> {
    const cursor = new LogCursor(this.c.logPath);
    const wanted = (l: LogLine) => o.stream === undefined || l.stream === o.stream;
    try {
      for (;;) {
        // the status first: lines read after it said "stopped" are the last ones
        const stopped = o.follow ? (await this.exitCode()) !== undefined : true;
        const lines = stopped ? cursor.finish() : cursor.read();
        for (const l of lines) if (wanted(l)) yield l;
        if (stopped) return;
        await Bun.sleep(FOLLOW_POLL_MS);
      }
    } finally {
      cursor.close();
    }
  }

  /** All log lines so far as one string per line (both streams). */
  async logText(): Promise<string[]> {
    const out: string[] = [];
    for await (const l of this.logs()) out.push(l);
    return out;
  }

  /** Sends a signal (default SIGKILL, as docker kill) to the container's process. */
  async kill(signal: number | string = "SIGKILL"): Promise<void> {
    await this.c.api.kill({ namespace: this.namespace, id: this.id, signal: parseSignal(signal) });
  }

  /** Waits for the container to exit; its exit code. */
  async wait(): Promise<number> {
    return (await this.c.api.wait({ namespace: this.namespace, id: this.id })).exitStatus;
  }

  /** docker stop: the stop signal, then SIGKILL to all its processes after `timeout` seconds (default its own, else 10). */
  async stop(o: { timeout?: number } = {}): Promise<number> {
    const ref = { namespace: this.namespace, id: this.id };
    const t = await this.info();
    if (t.status === Status.STOPPED) return t.exitStatus;
    const waiting = this.c.api.wait(ref);
    const seconds = o.timeout ?? (t.stopTimeout || 10);
    if (seconds > 0) await this.c.api.kill({ ...ref, signal: parseSignal(t.stopSignal || "TERM") }).catch(ignoreNotRunning);
    let timer: Timer | undefined;
    const exited = await Promise.race([waiting.then((r) => r.exitStatus), new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), seconds * 1000)))]);
    clearTimeout(timer);
    if (exited !== undefined) return exited;
    await this.c.api.kill({ ...ref, signal: 9, all: true }).catch(ignoreNotRunning);
    const killed = await Promise.race([waiting.then((r) => r.exitStatus), Bun.sleep(10_000).then(() => undefined)]);
    if (killed === undefined) throw new Timeout(`container ${this.id} did not stop within 10 s of SIGKILL`, await this.tail());
    return killed;
  }

  /** Removes the container (killing it if it runs); idempotent, and NotFound is success. */
  remove(): Promise<void> {
    this.removed ??= (async () => {
      try {
        await this.c.api.delete({ namespace: this.namespace, id: this.id, force: true });
      } catch (err) {
        if (!isNotFound(err)) {
          this.removed = undefined; // a later call tries again
          throw err;
        }
      }
      releaseChosen(this.c.ports);
      notify(this.c.tracker, "untrack", this.c.ref);
      this.c.onRemoved(this);
    })();
    return this.removed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.remove();
  }

  /** The manager's view of the container (status, pid, ports, addresses). */
  async info(): Promise<TaskInfo> {
    const t = (await this.c.api.list({ namespace: this.namespace, id: this.id })).tasks[0];
    if (!t) throw new NotFoundError(`container ${this.id} not found`);
    return t;
  }

  /** Its exit code once stopped; undefined while it runs (or is gone: a removed container has none). */
  async exitCode(): Promise<number | undefined> {
    try {
      const t = await this.info();
      return t.status === Status.STOPPED ? t.exitStatus : undefined;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** The last `n` log lines (for errors). */
  async tail(n = 20): Promise<string[]> {
    return (await this.logText().catch(() => [])).slice(-n);
  }

  /**
   * The probe the waits use (wait.ts). Its log lines come from one cursor kept across rounds, so a
   * chatty container's log is read once, not again every 100 ms; close() releases the cursor.
   */
  probe(): ReadyProbe & { close(): void } {
    const cursor = new LogCursor(this.c.logPath);
    const seen: string[] = [];
    return {
      close: () => cursor.close(),
      id: this.id,
      connects: async (containerPort) => {
        const published = this.c.ports.find((p) => p.containerPort === containerPort && p.protocol === "tcp");
        if (published) return await canConnect(this.host, published.hostPort);
        return this.ip !== undefined && (await canConnect(this.ip, containerPort));
      },
      logLines: async () => {
        for (const l of cursor.read()) seen.push(l.text);
        return seen;
      },
      exec: async (argv) => (await this.exec(argv)).exitCode,
      healthcheck: () => this.c.healthcheck,
      exitCode: () => this.exitCode(),
    };
  }
}

function ignoreNotRunning(err: unknown): void {
  // the process ended between our look and the signal: stop's work is done
  if (isNotFound(err)) return;
  if (err instanceof Error && /not running|process already finished|no such process/i.test(err.message)) return;
  throw err;
}
