// One Task kind for everything the manager knows about: a task served by a shim, a foreground run
// (`runc run` under a live bunker CLI, see foreground.ts), an orphan (its shim or its CLI is
// gone, waiting for rm or a daemon start to clean it up), and an exited container with no task
// (a reboot ended it; start makes it again). The API and the CLI see only this
// interface; what differs between the kinds lives in its implementation here, not in `if` branches
// of the callers.
import { type Any, type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { FailedPreconditionError, UnavailableError } from "../errdefs.ts";
import { Status } from "../gen/containerd/types/task/task_pb.ts";
import { pidAlive } from "../proc.ts";
import type { ExitInfo } from "./events.ts";
import { foregroundRefusal, killForeground, type LiveForeground } from "./foreground.ts";
import type { TaskMeta } from "./meta.ts";
import type { ShimTask } from "./shim.ts";

/** How long rm -f waits for a foreground container's CLI to remove it after SIGKILL. */
const FOREGROUND_GONE_MS = 10_000;
const SIGKILL = 9;

export interface TaskStatus {
  pid: number;
  status: Status;
  exitStatus: number;
  /** Set once the task has stopped. */
  exitedAt?: Date;
}

export interface ProcessIO {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

export interface Task {
  readonly namespace: string;
  readonly id: string;
  /** The bundle dir (`<state>/<ns>/<id>`). */
  readonly bundlePath: string;
  /** bunker's record (runtime, labels, log path); undefined when it could not be read. */
  readonly meta: TaskMeta | undefined;
  /** For listing: UNKNOWN (never a throw) when the task cannot answer. */
  status(timeoutMs?: number): Promise<TaskStatus>;
  start(execId: string): Promise<number>;
  wait(execId: string, signal?: AbortSignal): Promise<{ exitStatus: number; exitedAt: Date | undefined }>;
  kill(signal: number, all: boolean, execId: string): Promise<void>;
  /** Runs a process; `spec` builds its OCI process (as an Any), called only by a kind that can run one. */
  exec(execId: string, spec: () => Any, io: ProcessIO): Promise<void>;
  /** Deletes an exec process. */
  deleteProcess(execId: string): Promise<ExitInfo>;
  /** Closes a process's stdin (CloseIO): the end of what an attached client sends. */
  closeStdin(execId: string): Promise<void>;
  /** Sets a terminal process's window size (ResizePty): width columns, height rows. */
  resizePty(execId: string, width: number, height: number): Promise<void>;
  /** Removes the container and all it holds: a running one only with force (it is killed first). */
  remove(force: boolean): Promise<{ pid: number; exitStatus: number }>;
  /** Freezes (runc pause) or thaws every process of the container. */
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** The shim's Stats: a cgroups v1 or v2 Metrics message in an Any. */
  stats(): Promise<Any | undefined>;
  /** The pids of every process in the container (the shim's Pids). */
  pids(): Promise<number[]>;
}

/** A status whose process still runs (rm refuses it without force). */
export function isRunning(s: Status): boolean {
  return s === Status.RUNNING || s === Status.PAUSED || s === Status.PAUSING;
}

function dateOf(t: Timestamp | undefined): Date | undefined {
  return t ? timestampDate(t) : undefined;
}

/** A task a shim serves: every call goes to the shim over ttrpc. */
export class ShimBackedTask implements Task {
  constructor(
    readonly shim: ShimTask,
    /** The manager's delete: the task in its shim, the shim, the bundle (manager.deleteTask). */
    private readonly deleteTask: () => Promise<ExitInfo>,
    /** The manager's restart: a stopped container made again and started (manager.restart). */
    private readonly runAgain?: () => Promise<number>,
  ) {}

  get namespace(): string {
    return this.shim.namespace;
  }
  get id(): string {
    return this.shim.id;
  }
  get bundlePath(): string {
    return this.shim.bundle.path;
  }
  get meta(): TaskMeta {
    return this.shim.meta;
  }

  async status(timeoutMs?: number): Promise<TaskStatus> {
    try {
      const st = await this.shim.state("", timeoutMs);
      const out: TaskStatus = { pid: st.pid, status: st.status, exitStatus: st.exitStatus };
      const at = st.status === Status.STOPPED ? dateOf(st.exitedAt) : undefined;
      if (at) out.exitedAt = at;
      return out;
    } catch {
      // a shim that does not answer is listed as UNKNOWN rather than hidden
      return { pid: 0, status: Status.UNKNOWN, exitStatus: 0 };
    }
  }

  /** A stopped init runs again (docker start): the shim cannot restart a process, so the manager remakes the task. */
  async start(execId: string): Promise<number> {
    try {
      return await this.shim.start(execId);
    } catch (err) {
      if (execId !== "" || !this.runAgain) throw err;
      const st = await this.shim.state().catch(() => undefined);
      if (st?.status !== Status.STOPPED) throw err;
      return this.runAgain();
    }
  }

  async wait(execId: string, signal?: AbortSignal): Promise<{ exitStatus: number; exitedAt: Date | undefined }> {
    const r = await this.shim.wait(execId, signal);
    return { exitStatus: r.exitStatus, exitedAt: dateOf(r.exitedAt) };
  }

  kill(signal: number, all: boolean, execId: string): Promise<void> {
    return this.shim.kill(signal, all, execId);
  }

  closeStdin(execId: string): Promise<void> {
    return this.shim.closeStdin(execId);
  }

  resizePty(execId: string, width: number, height: number): Promise<void> {
    return this.shim.resizePty(execId, width, height);
  }

  exec(execId: string, spec: () => Any, io: ProcessIO): Promise<void> {
    return this.shim.exec(execId, spec(), io);
  }

  async deleteProcess(execId: string): Promise<ExitInfo> {
    const r = await this.shim.deleteProcess(execId);
    return { pid: r.pid, exitStatus: r.exitStatus, exitedAt: dateOf(r.exitedAt) ?? new Date() };
  }

  async remove(force: boolean): Promise<{ pid: number; exitStatus: number }> {
    const st = await this.shim.state();
    if (isRunning(st.status)) {
      if (!force) throw new FailedPreconditionError(`task ${this.id} is running: stop it first, or use rm -f`);
      await this.shim.killAndWait();
    }
    const exit = await this.deleteTask();
    return { pid: exit.pid, exitStatus: exit.exitStatus };
  }

  async pause(): Promise<void> {
    await this.shim.api.pause({ id: this.id });
  }
  async resume(): Promise<void> {
    await this.shim.api.resume({ id: this.id });
  }
  async stats(): Promise<Any | undefined> {
    return (await this.shim.api.stats({ id: this.id })).stats;
  }
  async pids(): Promise<number[]> {
    return (await this.shim.api.pids({ id: this.id })).processes.map((p) => p.pid);
  }
}

/** A container `bunker run --rm` runs under a live CLI: ps, kill and rm -f reach it, nothing else. */
export class ForegroundTask implements Task {
  constructor(
    private readonly fg: LiveForeground,
    readonly meta: TaskMeta | undefined,
    /** Whether the bundle is still there (its CLI removes it once runc reports the end). */
    private readonly present: () => boolean,
  ) {}

  get namespace(): string {
    return this.fg.namespace;
  }
  get id(): string {
    return this.fg.id;
  }
  get bundlePath(): string {
    return this.fg.bundlePath;
  }

  async status(): Promise<TaskStatus> {
    return { pid: this.fg.pid, status: this.fg.pid > 0 && pidAlive(this.fg.pid) ? Status.RUNNING : Status.CREATED, exitStatus: 0 };
  }

  private refuse(): never {
    throw new FailedPreconditionError(foregroundRefusal(this.fg));
  }

  async start(): Promise<number> {
    return this.refuse();
  }
  async wait(): Promise<{ exitStatus: number; exitedAt: Date | undefined }> {
    return this.refuse();
  }
  async exec(): Promise<void> {
    return this.refuse();
  }
  async closeStdin(): Promise<void> {
    return this.refuse();
  }
  /** runc run holds no terminal (a foreground run never has -t): there is no pty to resize. */
  async resizePty(): Promise<void> {
    return this.refuse();
  }
  async deleteProcess(): Promise<ExitInfo> {
    return this.refuse();
  }
  async pause(): Promise<void> {
    return this.refuse();
  }
  async resume(): Promise<void> {
    return this.refuse();
  }
  async stats(): Promise<Any | undefined> {
    return this.refuse();
  }
  async pids(): Promise<number[]> {
    return this.refuse();
  }

  async kill(signal: number, all: boolean, execId: string): Promise<void> {
    if (execId !== "") this.refuse();
    await killForeground(this.fg.record, this.id, signal, all);
  }

  /** Only forced; done by its own CLI once runc reports the kill. */
  async remove(force: boolean): Promise<{ pid: number; exitStatus: number }> {
    if (!force) throw new FailedPreconditionError(`task ${this.id} is running: stop it first, or use rm -f`);
    await killForeground(this.fg.record, this.id, SIGKILL, true);
    const deadline = Date.now() + FOREGROUND_GONE_MS;
    while (this.present()) {
      if (Date.now() > deadline) throw new UnavailableError(`task ${this.id} was killed but bunker pid ${this.fg.record.owner} has not removed it yet`);
      await Bun.sleep(20);
    }
    return { pid: this.fg.pid, exitStatus: 137 };
  }
}

/** A container whose shim cannot be reached, or whose foreground CLI is gone: listed UNKNOWN until removed. */
export class OrphanTask implements Task {
  constructor(
    readonly namespace: string,
    readonly id: string,
    readonly bundlePath: string,
    readonly meta: TaskMeta | undefined,
    /** Why it cannot be reached. */
    readonly error: string,
    /** The manager's clean-up of a dead shim's or a dead CLI's container. */
    private readonly cleanup: () => Promise<ExitInfo>,
  ) {}

  async status(): Promise<TaskStatus> {
    return { pid: 0, status: Status.UNKNOWN, exitStatus: 0 };
  }

  private unavailable(): never {
    throw new UnavailableError(`task ${this.namespace}/${this.id}: its shim cannot be reached (${this.error}); bunker rm removes it`);
  }

  async start(): Promise<number> {
    return this.unavailable();
  }
  async wait(): Promise<{ exitStatus: number; exitedAt: Date | undefined }> {
    return this.unavailable();
  }
  async kill(): Promise<void> {
    return this.unavailable();
  }
  async exec(): Promise<void> {
    return this.unavailable();
  }
  async closeStdin(): Promise<void> {
    return this.unavailable();
  }
  async resizePty(): Promise<void> {
    return this.unavailable();
  }
  async deleteProcess(): Promise<ExitInfo> {
    return this.unavailable();
  }
  async pause(): Promise<void> {
    return this.unavailable();
  }
  async resume(): Promise<void> {
    return this.unavailable();
  }
  async stats(): Promise<Any | undefined> {
    return this.unavailable();
  }
  async pids(): Promise<number[]> {
    return this.unavailable();
  }

  /** Nothing answers for it: removal is the clean-up, forced or not. */
  async remove(): Promise<{ pid: number; exitStatus: number }> {
    const exit = await this.cleanup();
    return { pid: exit.pid, exitStatus: exit.exitStatus };
  }
}

/**
 * A container that can run again but has no task: a reboot (or a crash of everything) ended its
 * last run, or a restart failed. Listed as stopped with its last exit; start makes it again, rm
 * releases what it still holds (its layer, its record, its logs).
 */
export class ExitedTask implements Task {
  constructor(
    readonly namespace: string,
    readonly id: string,
    readonly bundlePath: string,
    readonly meta: TaskMeta,
    private readonly state: { lastExit?: { status: number; at: string } },
    private readonly manager: { start: () => Promise<number>; remove: () => Promise<ExitInfo> },
  ) {}

  async status(): Promise<TaskStatus> {
    const exit = this.state.lastExit;
    return { pid: 0, status: Status.STOPPED, exitStatus: exit?.status ?? 255, ...(exit ? { exitedAt: new Date(exit.at) } : {}) };
  }

  private notRunning(): never {
    throw new FailedPreconditionError(`container ${this.id} is not running`);
  }

  start(execId: string): Promise<number> {
    if (execId !== "") this.notRunning();
    return this.manager.start();
  }
  async wait(execId: string): Promise<{ exitStatus: number; exitedAt: Date | undefined }> {
    if (execId !== "") this.notRunning();
    const st = await this.status();
    return { exitStatus: st.exitStatus, exitedAt: st.exitedAt };
  }
  async kill(): Promise<void> {
    return this.notRunning();
  }
  async exec(): Promise<void> {
    return this.notRunning();
  }
  async pause(): Promise<void> {
    return this.notRunning();
  }
  async resume(): Promise<void> {
    return this.notRunning();
  }
  async stats(): Promise<Any | undefined> {
    return this.notRunning();
  }
  async pids(): Promise<number[]> {
    return this.notRunning();
  }
  async resizePty(): Promise<void> {
    return this.notRunning();
  }
  async closeStdin(): Promise<void> {
    return this.notRunning();
  }
  async deleteProcess(): Promise<ExitInfo> {
    return this.notRunning();
  }

  async remove(): Promise<{ pid: number; exitStatus: number }> {
    const exit = await this.manager.remove();
    return { pid: exit.pid, exitStatus: exit.exitStatus };
  }
}
