// The runc task service (containerd.task.v2.Task) for many containers in one shim process
// (containerd runtime/v2/runc/task/service.go). Events go out in containerd's order: TaskCreate,
// TaskStart, TaskExit, TaskDelete; an exec's TaskExecAdded, TaskExecStarted, then its TaskExit.
// Checkpoint runs `runc checkpoint`. Create with `checkpoint` prepares a restore (pid 0, as
// containerd's shim answers) and its Start runs `runc restore` (see restore.ts).
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Any } from "@bufbuild/protobuf/wkt";
import {
  AlreadyExistsError,
  errorMessage,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
} from "../../errdefs.ts";
import { ProcessDetailsSchema } from "../../gen/containerd/runc/v1/options_pb.ts";
import {
  TaskCheckpointedSchema,
  TaskCreateSchema,
  TaskDeleteSchema,
  TaskExecAddedSchema,
  TaskExecStartedSchema,
  TaskExitSchema,
  TaskOOMSchema,
  TaskPausedSchema,
  TaskResumedSchema,
  TaskStartSchema,
} from "../../gen/containerd/events/task_pb.ts";
import type { Task } from "../../gen/containerd/task/v2/shim_pb.ts";
import { Status } from "../../gen/containerd/types/task/task_pb.ts";
import type { ServeContext, TaskService } from "../../shim/types.ts";
import { sys as defaultSys } from "../../sys/index.ts";
import type { Syscalls } from "../../sys/types.ts";
import { packAny } from "../../ttrpc/any.ts";
import type { ServiceImpl } from "../../ttrpc/server.ts";
import { OomWatcher } from "../../linux/oom.ts";
import { validateIdentifier } from "../../identifiers.ts";
import { checkpoint, checkpointPlan } from "./checkpoint.ts";
import { Container, type OciRuntimeFactory } from "./container.ts";
import type { ProcessStatus } from "./process.ts";
import { runcRuntimes } from "./options.ts";

const STATUS: Record<ProcessStatus, Status> = {
  created: Status.CREATED,
  running: Status.RUNNING,
  paused: Status.PAUSED,
  stopped: Status.STOPPED,
  deleted: Status.UNKNOWN,
};

/**
 * Connects for ids not yet created that may hold the shim at once (start reserves one per
 * container). A burst of creates in one group reserves faster than runc creates: 200 concurrent
 * creates needed more than 64. A reservation costs a map entry and a timer.
 */
export const MAX_RESERVATIONS = 1024;

/** The OCI LinuxResources of an Update request: containerd sends its JSON in an Any. */
export function resourcesOf(any: Any | undefined): unknown {
  if (!any || any.value.length === 0) throw new InvalidArgumentError("update needs resources");
  try {
    const r: unknown = JSON.parse(new TextDecoder().decode(any.value));
    if (typeof r === "object" && r !== null && !Array.isArray(r)) return r;
  } catch {
    // answered below
  }
  throw new InvalidArgumentError(`update resources (${any.typeUrl}) must be a JSON object`);
}

export class RuncTaskService implements TaskService {
  private readonly containers = new Map<string, Container>();
  /** Ids whose Create is in progress: they count as served, and a second Create is AlreadyExists. */
  private readonly creating = new Set<string>();
  readonly impl: ServiceImpl<typeof Task>;
  private oom: OomWatcher | undefined;

  constructor(
    private readonly ctx: ServeContext,
    private readonly sys: Syscalls = defaultSys(),
    /** The OCI runtime seam (container.ts): runc by default; unit tests pass a recording fake. */
    private readonly newRuntime: OciRuntimeFactory = runcRuntimes(),
  ) {
    this.impl = this.handlers();
  }

  containerCount(): number {
    return this.containers.size + this.creating.size;
  }

  private get(id: string): Container {
    const c = this.containers.get(id);
    if (!c) throw new NotFoundError(`container ${id}: not created`);
    return c;
  }

  private execState(c: Container, execId: string) {
    const e = c.exec(execId);
    return { id: e.id, pid: e.pid, state: e.state, io: e.request };
  }

  /** One OOM watcher for the whole shim, made with the first container that has a cgroup. */
  private watchOom(c: Container): void {
    if (!c.cgroup) return;
    try {
      if (!this.oom) {
        const oom = new OomWatcher({ onError: (err, id) => this.ctx.log.warn({ id, err: errorMessage(err) }, "OOM watch") });
        oom.onOom((containerId) => this.ctx.publisher.publish("/tasks/oom", TaskOOMSchema, { containerId }));
        this.oom = oom;
      }
      this.oom.add(c.id, c.cgroup);
    } catch (err) {
      this.ctx.log.warn({ id: c.id, err: errorMessage(err) }, "no OOM events for this container");
    }
  }

  private handlers(): ServiceImpl<typeof Task> {
    const { publisher, lifecycle, log, monitor, namespace } = this.ctx;
    return {
      create: async (req) => {
        if (this.containers.has(req.id) || this.creating.has(req.id)) {
          throw new AlreadyExistsError(`container ${req.id}: already exists`);
        }
        this.creating.add(req.id);
        lifecycle.release(req.id);
        try {
          const c = await Container.create(req, {
            namespace,
            newRuntime: this.newRuntime,
            sys: this.sys,
            monitor,
            log,
            onExecExit: (cont, e, exit) => {
              publisher.publish("/tasks/exit", TaskExitSchema, {
                containerId: cont.id,
                id: e.id,
                pid: e.pid,
                exitStatus: exit.exitStatus,
                exitedAt: timestampFromDate(exit.exitedAt),
              });
            },
            onExit: (cont, exit) => {
              this.oom?.flush(cont.id); // an OOM kill's TaskOOM goes before its TaskExit
              publisher.publish("/tasks/exit", TaskExitSchema, {
                containerId: cont.id,
                id: cont.id,
                pid: cont.pid,
                exitStatus: exit.exitStatus,
                exitedAt: timestampFromDate(exit.exitedAt),
              });
            },
          });
          this.containers.set(req.id, c);
          this.watchOom(c);
          // a lingering shim still logs into a deleted container's FIFO: follow the new one
          if (![...this.containers.values()].some((o) => o.bundle === this.ctx.logBundle)) this.ctx.logTo(req.bundle);
          publisher.publish("/tasks/create", TaskCreateSchema, {
            containerId: req.id,
            bundle: req.bundle,
            rootfs: req.rootfs,
            io: { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
            checkpoint: req.checkpoint,
            pid: c.pid,
          });
          log.info({ id: req.id, pid: c.pid }, "created");
          return { pid: c.pid };
        } finally {
          this.creating.delete(req.id);
          lifecycle.changed();
        }
      },

      start: async (req) => {
        const c = this.get(req.id);
        if (req.execId !== "") {
          const e = c.exec(req.execId);
          const pid = await e.start((p) =>
            publisher.publish("/tasks/exec-started", TaskExecStartedSchema, { containerId: c.id, execId: e.id, pid: p }),
          );
          return { pid };
        }
        const restoring = c.restoring;
        const pid = await c.start((p) => publisher.publish("/tasks/start", TaskStartSchema, { containerId: c.id, pid: p }));
        if (restoring) this.watchOom(c); // its cgroup is known only now
        return { pid };
      },

      state: (req) => {
        const c = this.get(req.id);
        const p = req.execId === "" ? { id: c.id, pid: c.pid, state: c.state, io: c.request } : this.execState(c, req.execId);
        const exit = p.state.exited;
        return {
          id: p.id,
          execId: req.execId,
          bundle: c.bundle,
          pid: p.pid,
          status: STATUS[p.state.status],
          stdin: p.io.stdin,
          stdout: p.io.stdout,
          stderr: p.io.stderr,
          terminal: p.io.terminal,
          exitStatus: exit?.exitStatus ?? 0,
          ...(exit ? { exitedAt: timestampFromDate(exit.exitedAt) } : {}),
        };
      },

      wait: async (req) => {
        const c = this.get(req.id);
        const state = req.execId === "" ? c.state : c.exec(req.execId).state;
        const exit = await state.wait();
        return { exitStatus: exit.exitStatus, exitedAt: timestampFromDate(exit.exitedAt) };
      },

      kill: async (req) => {
        const c = this.get(req.id);
        if (req.execId !== "") c.exec(req.execId).kill(req.signal);
        else await c.kill(req.signal, req.all);
      },

      delete: async (req) => {
        const c = this.get(req.id);
        if (req.execId !== "") {
          // containerd publishes no TaskDelete for an exec
          const d = c.deleteExec(req.execId);
          return { pid: d.pid, exitStatus: d.exitStatus, exitedAt: timestampFromDate(d.exitedAt) };
        }
        const d = await c.delete();
        this.oom?.remove(c.id);
        // Answer only once runc has forgotten the id: a Create of the same id may follow at once,
        // possibly in a new shim if this one is about to exit, and runc would refuse it.
        await d.cleanup;
        this.containers.delete(req.id);
        lifecycle.changed();
        if (this.ctx.logBundle === c.bundle) this.moveLog();
        const exitedAt = timestampFromDate(d.exitedAt);
        publisher.publish("/tasks/delete", TaskDeleteSchema, { containerId: c.id, pid: d.pid, exitStatus: d.exitStatus, exitedAt });
        log.info({ id: c.id, exitStatus: d.exitStatus }, "deleted");
        return { pid: d.pid, exitStatus: d.exitStatus, exitedAt };
      },

      pids: async (req) => {
        const c = this.get(req.id);
        const pids = await c.runtime.ps(c.id);
        const execOf = new Map([...c.execs.values()].filter((e) => e.pid !== 0).map((e) => [e.pid, e.id]));
        return {
          processes: pids.map((pid) => {
            const execId = execOf.get(pid);
            return execId === undefined ? { pid } : { pid, info: packAny(ProcessDetailsSchema, { execId }) };
          }),
        };
      },

      pause: async (req) => {
        const c = this.get(req.id);
        c.state.check("pause");
        await c.runtime.pause(c.id);
        c.state.apply("pause");
        publisher.publish("/tasks/paused", TaskPausedSchema, { containerId: c.id });
      },

      resume: async (req) => {
        const c = this.get(req.id);
        c.state.check("resume");
        await c.runtime.resume(c.id);
        c.state.apply("resume");
        publisher.publish("/tasks/resumed", TaskResumedSchema, { containerId: c.id });
      },

      closeIO: (req) => {
        const c = this.get(req.id);
        if (!req.stdin) return;
        if (req.execId !== "") c.exec(req.execId).closeStdin();
        else c.closeStdin();
      },

      resizePty: (req) => {
        const c = this.get(req.id);
        if (req.execId !== "") c.exec(req.execId).resize(req.width, req.height);
        else c.resize(req.width, req.height);
      },

      exec: (req) => {
        const c = this.get(req.id);
        const e = c.addExec(req);
        publisher.publish("/tasks/exec-added", TaskExecAddedSchema, { containerId: c.id, execId: e.id });
      },

      stats: async (req) => {
        const c = this.get(req.id);
        if (!c.cgroup) throw new NotFoundError(`container ${c.id}: cgroup does not exist`);
        // on first use: the cgroups Metrics descriptors cost every serve process memory (stats.ts)
        const { statsAny } = await import("../../linux/stats.ts");
        return { stats: statsAny(c.cgroup) };
      },

      update: async (req) => {
        const c = this.get(req.id);
        c.state.check("update");
        await c.runtime.update(c.id, resourcesOf(req.resources));
        // containerd 1.6's runc shim also takes the annotations and keeps nothing of them
        if (Object.keys(req.annotations).length) log.debug({ id: c.id, annotations: req.annotations }, "update annotations");
      },

      connect: (req) => {
        const c = this.containers.get(req.id);
        // an unknown id is a container about to be created here: hold the shim for it, but only a
        // valid id and only a few at once (a peer must not grow this process with made-up ids)
        if (!c && !this.creating.has(req.id) && req.id !== "") {
          validateIdentifier(req.id, "container id");
          if (!lifecycle.isReserved(req.id) && lifecycle.reserved >= MAX_RESERVATIONS) {
            throw new ResourceExhaustedError(`too many pending reservations (${MAX_RESERVATIONS}): create or wait`);
          }
          lifecycle.reserve(req.id);
        }
        return { shimPid: process.pid, taskPid: c?.pid ?? 0 };
      },

      shutdown: () => {
        if (lifecycle.requestShutdown()) log.info({}, "shutdown requested with nothing left to serve");
      },

      checkpoint: async (req) => {
        const c = this.get(req.id);
        c.state.check("checkpoint");
        const plan = checkpointPlan(req, c.bundle);
        await checkpoint(c.runtime, c.id, plan);
        publisher.publish("/tasks/checkpointed", TaskCheckpointedSchema, { containerId: c.id, checkpoint: plan.imagePath });
      },
    };
  }

  /** containerd stops reading a bundle's log once its task is deleted: follow a live container. */
  private moveLog(): void {
    for (const other of this.containers.values()) if (this.ctx.logTo(other.bundle)) return;
  }

  async close(): Promise<void> {
    if (this.containers.size > 0) {
      // containerd cleans these up through the delete action once it sees this shim gone
      this.ctx.log.warn({ containers: [...this.containers.keys()] }, "stopping with containers still served");
    }
    for (const c of this.containers.values()) c.closeStdin();
    this.oom?.close();
  }
}
