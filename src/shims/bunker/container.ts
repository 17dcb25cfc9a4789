// One container in a (possibly shared) shim: its init process, stdio copy, rootfs mounts and
// runc client. State is small on purpose (a shim holds many of these), and everything that can
// fail is confined to this object: an error here fails this container's RPC, nothing else.
import { mkdirSync, readFileSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError, errorMessage } from "../../errdefs.ts";
import type { CreateTaskRequest, ExecProcessRequest } from "../../gen/containerd/task/v2/shim_pb.ts";
import { validateIdentifier } from "../../identifiers.ts";
import type { Logger } from "../../shim/logger.ts";
import type { Exit, Monitor } from "../../shim/reaper.ts";
import type { Syscalls } from "../../sys/types.ts";
import { type Cgroup, cgroupOfPid } from "../../linux/cgroup.ts";
import { ExecProcess } from "./exec.ts";
import { ProcIO } from "../../stdio/procio.ts";
import { mountAll } from "../../linux/mount.ts";
import { type RuncOptions, writeOptions } from "./options.ts";
import { optionsFromAny } from "./options-any.ts";
import { ProcessState, type ExitInfo } from "./process.ts";
import { restore, restorePlan, type RestorePlan, startRestoreOptions } from "./restore.ts";
import type { OciRuntime } from "../../oci/runtime.ts";
import { INIT_PID_FILE, readBundleSpec } from "../../contract/bundle.ts";

/** How long init's exit report waits for the exits of its execs (killed with the PID namespace). */
const EXEC_EXIT_WAIT_MS = 2000;

/** Makes the OCI runtime a container's options ask for (runc's binary, root, log, cgroup driver). */
export type OciRuntimeFactory = (options: RuncOptions, bundle: string, namespace: string) => OciRuntime;

export interface ContainerDeps {
  namespace: string;
  /** The OCI runtime seam: given, never constructed here (runc in the shim, a recording fake in unit tests). */
  newRuntime: OciRuntimeFactory;
  sys: Syscalls;
  monitor: Monitor;
  log: Logger;
  /** The init process ended and its output is drained (publish TaskExit here). */
  onExit(c: Container, exit: ExitInfo): void;
  /** An exec process ended and its output is drained. */
  onExecExit(c: Container, e: ExecProcess, exit: ExitInfo): void;
}

export interface Deleted extends ExitInfo {
  pid: number;
}

const SIGKILL = 9;

/** Whether the bundle's spec gives the container no PID namespace of its own. */
export function sharesPidNamespace(bundle: string): boolean {
  try {
    const spec = readBundleSpec(bundle) as { linux?: { namespaces?: { type?: string; path?: string }[] } };
    return !(spec.linux?.namespaces ?? []).some((ns) => ns.type === "pid" && !ns.path);
  } catch {
    return false; // runc create reports an unreadable spec
  }
}

function readPidFile(path: string): number {
  const pid = Number.parseInt(readFileSync(path, "utf8").trim(), 10);
  if (!Number.isInteger(pid) || pid <= 0) throw new InvalidArgumentError(`${path} holds no pid`);
  return pid;
}

export class Container {
  readonly state: ProcessState;
  pid = 0;
  private io: ProcIO | undefined;
  readonly execs = new Map<string, ExecProcess>();
  /** No PID namespace of its own (none in the spec, or one joined by path): see exited(). */
  private sharesHostPidNs = false;
  /** The container's cgroup, resolved right after create (stats, OOM); undefined if unreadable. */
  cgroup: Cgroup | undefined;
  private rootfs = "";
  /** Start and the exit report go through this chain: TaskExit never overtakes TaskStart. */
  private order: Promise<unknown> = Promise.resolve();
  /** Set by a Create with `checkpoint`: Start runs `runc restore` instead of `runc start`. */
  private restorePlan: RestorePlan | undefined;
  private restoreFailed = false;
  private noPivot = false;

  private constructor(
    readonly request: CreateTaskRequest,
    readonly runtime: OciRuntime,
    private readonly deps: ContainerDeps,
  ) {
    this.state = new ProcessState(request.id);
  }

  get id(): string {
    return this.request.id;
  }
  get bundle(): string {
    return this.request.bundle;
  }

  /** Go's NewContainer + Init.Create: options, rootfs mounts, stdio, `runc create`, the init pid. */
  static async create(req: CreateTaskRequest, deps: ContainerDeps): Promise<Container> {
    validateIdentifier(req.id, "container id");
    if (!isAbsolute(req.bundle)) throw new InvalidArgumentError(`bundle path ${JSON.stringify(req.bundle)} must be absolute`);
    const plan = req.checkpoint ? restorePlan(req) : undefined;
    const options = optionsFromAny(req.options);
    const c = new Container(req, deps.newRuntime(options, req.bundle, deps.namespace), deps);
    writeOptions(req.bundle, options);
    c.sharesHostPidNs = sharesPidNamespace(req.bundle);
    try {
      if (req.rootfs.length > 0) {
        c.rootfs = join(req.bundle, "rootfs");
        mkdirSync(c.rootfs, { recursive: true, mode: 0o711 });
        mountAll(deps.sys, req.rootfs, c.rootfs);
      }
      const io = await ProcIO.open({ stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal }, deps.sys, req.bundle, {
        containerId: req.id,
        namespace: deps.namespace,
      });
      c.io = io;
      if (plan) {
        // go: createCheckpointedState; nothing runs before Start, and the pid is 0 until then
        c.restorePlan = plan;
        c.noPivot = options.noPivotRoot;
        return c;
      }
      const { io: stdio, consoleSocket } = io.runcOptions();
      const pidFile = join(req.bundle, INIT_PID_FILE);
      const t0 = performance.now();
      await io.launch(() =>
        c.runtime.create(req.id, req.bundle, {
          pidFile,
          noPivot: options.noPivotRoot,
          noNewKeyring: options.noNewKeyring,
          io: stdio,
          ...(consoleSocket ? { consoleSocket } : {}),
        }),
      );
      c.pid = readPidFile(pidFile);
      deps.log.debug({ id: req.id, ms: Math.round(performance.now() - t0) }, "runc create");
      try {
        c.cgroup = cgroupOfPid(c.pid);
      } catch (err) {
        deps.log.warn({ id: req.id, err: errorMessage(err) }, "no cgroup for the init process: no stats or OOM events");
      }
      deps.monitor.watch(c.pid, (exit) => c.exited(exit));
      return c;
    } catch (err) {
      c.io?.close();
      // Only what this create made: "already exists" means the runc state is another owner's
      // container of the same id in the same root, which a forced delete would SIGKILL.
      if (c.pid === 0 && !plan && !(err instanceof AlreadyExistsError)) await c.runtime.delete(req.id, { force: true }).catch(() => undefined);
      if (c.rootfs) c.unmountRootfs();
      throw err;
    }
  }

  private unmountRootfs(): void {
    try {
      this.deps.sys.unmountAll(this.rootfs);
    } catch (err) {
      this.deps.log.warn({ id: this.id, err: errorMessage(err) }, "failed to unmount rootfs");
    }
  }

  /** `runc start`; `started` runs in the same turn, so the TaskStart it sends precedes any TaskExit. */
  async start(started: (pid: number) => void): Promise<number> {
    this.state.check("start");
    if (this.restoreFailed) throw new FailedPreconditionError("restore from the checkpoint failed: delete the task");
    const run = this.order.then(async () => {
      const t0 = performance.now();
      const plan = this.restorePlan;
      if (plan) await this.restore(plan);
      else await this.runtime.start(this.id);
      this.deps.log.debug({ id: this.id, ms: Math.round(performance.now() - t0) }, plan ? "runc restore" : "runc start");
      this.state.apply("start");
      started(this.pid);
    });
    this.order = run.catch(() => undefined);
    await run;
    return this.pid;
  }

  /** Created from a checkpoint and not started yet: its Start runs `runc restore`. */
  get restoring(): boolean {
    return this.restorePlan !== undefined;
  }

  /**
   * `runc restore --detach` (go: createdCheckpointState.Start): the process comes back running on
   * the stdio Create opened. On failure nothing is left but this task's record, for Delete.
   */
  private async restore(plan: RestorePlan): Promise<void> {
    const io = this.io;
    if (!io) throw new FailedPreconditionError("restore without stdio");
    const { io: stdio, consoleSocket } = io.runcOptions();
    const pidFile = join(this.bundle, INIT_PID_FILE);
    const opts = startRestoreOptions(this.bundle, plan, { pidFile, noPivot: this.noPivot, consoleSocket });
    try {
      await io.launch(() => restore(this.runtime, this.id, plan, opts, stdio));
      this.pid = readPidFile(pidFile);
    } catch (err) {
      this.restoreFailed = true;
      this.pid = 0;
      // runc destroys a container whose restore failed; make sure, then free the rootfs
      await this.runtime.delete(this.id, { force: true }).catch(() => undefined);
      if (this.rootfs) this.unmountRootfs();
      this.rootfs = "";
      throw err;
    }
    try {
      this.cgroup = cgroupOfPid(this.pid);
    } catch (err) {
      this.deps.log.warn({ id: this.id, err: errorMessage(err) }, "no cgroup for the restored process: no stats or OOM events");
    }
    this.restorePlan = undefined;
    this.deps.monitor.watch(this.pid, (exit) => this.exited(exit));
  }

  /** Called by the monitor: waits for the output to drain, then records and reports the exit. */
  private exited(exit: Exit): void {
    this.order = this.order.then(async () => {
      if (this.sharesHostPidNs) {
        // no PID namespace ends with init here: what it left behind is killed (go: shouldKillAllOnExit)
        await this.runtime.kill(this.id, SIGKILL, { all: true }).catch((err: unknown) => {
          this.deps.log.warn({ id: this.id, err: errorMessage(err) }, "killing the processes init left behind");
        });
      }
      try {
        await this.io?.drain();
        this.io?.close();
      } catch (err) {
        this.deps.log.warn({ id: this.id, err: errorMessage(err) }, "closing stdio after exit");
      }
      // the execs die with init (its PID namespace ends): report their exits first, as containerd does
      const running = [...this.execs.values()].filter((e) => e.pid !== 0 && !e.state.exited).map((e) => e.state.wait());
      if (running.length) await Promise.race([Promise.all(running), Bun.sleep(EXEC_EXIT_WAIT_MS)]);
      this.state.setExited(exit.status, exit.at);
      const info = this.state.exited;
      if (info) this.deps.onExit(this, info);
    });
  }

  async kill(signal: number, all: boolean): Promise<void> {
    this.state.check("kill");
    // the runtime answers NotFound when nothing is left to signal (go: checkKillError)
    await this.runtime.kill(this.id, signal, { all });
  }

  closeStdin(): void {
    this.io?.closeStdin();
  }

  resize(width: number, height: number): void {
    this.io?.resize(width, height);
  }

  /** Exec: a new process in the created state; `runc exec` runs at its Start. */
  addExec(req: ExecProcessRequest): ExecProcess {
    this.state.check("exec");
    if (this.restorePlan || this.restoreFailed) throw new FailedPreconditionError("cannot exec in a created state");
    if (this.execs.has(req.execId)) throw new AlreadyExistsError(`id ${req.execId}: already exists`);
    const e = new ExecProcess(req, {
      containerId: this.id,
      namespace: this.deps.namespace,
      bundle: this.bundle,
      runtime: this.runtime,
      sys: this.deps.sys,
      monitor: this.deps.monitor,
      log: this.deps.log,
      onExit: (p, exit) => this.deps.onExecExit(this, p, exit),
    });
    this.execs.set(req.execId, e);
    return e;
  }

  exec(execId: string): ExecProcess {
    const e = this.execs.get(execId);
    if (!e) throw new NotFoundError(`process ${execId} does not exist: not found`);
    return e;
  }

  deleteExec(execId: string): ExitInfo & { pid: number } {
    const d = this.exec(execId).delete();
    this.execs.delete(execId);
    return d;
  }

  private async runcDelete(): Promise<void> {
    try {
      await this.runtime.delete(this.id);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  }

  /**
   * `runc delete`, unmount, and the exit to report. For a stopped container runc only removes its
   * state and cgroup; that part is returned as `cleanup`, still running, so that the caller can
   * let the rest of Delete proceed meanwhile (the service awaits it before answering).
   */
  async delete(): Promise<Deleted & { cleanup: Promise<void> }> {
    this.state.check("delete");
    let cleanup = Promise.resolve();
    if (this.state.status === "stopped") {
      cleanup = this.runcDelete().catch((err: unknown) => {
        this.deps.log.warn({ id: this.id, err: errorMessage(err) }, "runc delete after exit failed");
      });
    } else {
      await this.runcDelete(); // a created process: runc kills it
      // the monitor reports that kill in a moment
      if (!this.state.exited && this.pid !== 0) await Promise.race([this.state.wait(), Bun.sleep(1000)]);
    }
    this.deps.monitor.unwatch(this.pid);
    this.io?.close();
    for (const e of this.execs.values()) e.close();
    this.execs.clear();
    if (this.rootfs) this.unmountRootfs();
    const exit = this.state.exited ?? { exitStatus: 0, exitedAt: new Date() };
    this.state.apply("delete");
    return { pid: this.pid, ...exit, cleanup };
  }

}
