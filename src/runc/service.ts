// The runc task service (containerd.task.v2.Task) for many containers in one shim process
// (containerd runtime/v2/runc/task/service.go). Events go out in containerd's order: TaskCreate,
// TaskStart, TaskExit, TaskDelete. Requests about exec processes, terminals, checkpoints, stats
// and updates answer Unimplemented until the shim's second part provides them.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { AlreadyExistsError, NotFoundError, NotImplementedError, ResourceExhaustedError } from "../errdefs.ts";
import {
  TaskCreateSchema,
  TaskDeleteSchema,
  TaskExitSchema,
  TaskPausedSchema,
  TaskResumedSchema,
  TaskStartSchema,
} from "../gen/containerd/events/task_pb.ts";
import type { Task } from "../gen/containerd/task/v2/shim_pb.ts";
import { Status } from "../gen/containerd/types/task/task_pb.ts";
import type { ServeContext, TaskService } from "../shim/types.ts";
import { sys as defaultSys } from "../sys/index.ts";
import type { Syscalls } from "../sys/types.ts";
import type { ServiceImpl } from "../ttrpc/server.ts";
import { validateIdentifier } from "../identifiers.ts";
import { Container } from "./container.ts";
import type { ProcessStatus } from "./process.ts";

const STATUS: Record<ProcessStatus, Status> = {
  created: Status.CREATED,
  running: Status.RUNNING,
  paused: Status.PAUSED,
  stopped: Status.STOPPED,
  deleted: Status.UNKNOWN,
};

/** Connects for ids not yet created that may hold the shim at once (start reserves one per container). */
export const MAX_RESERVATIONS = 64;

function noExec(execId: string, what: string): void {
  if (execId !== "") throw new NotImplementedError(`${what} of exec processes is not supported by this shim yet`);
}

export class RuncTaskService implements TaskService {
  private readonly containers = new Map<string, Container>();
  /** Ids whose Create is in progress: they count as served, and a second Create is AlreadyExists. */
  private readonly creating = new Set<string>();
  /** runc state removals still running after Delete answered, by container id. */
  private readonly cleanups = new Map<string, Promise<void>>();
  readonly impl: ServiceImpl<typeof Task>;

  constructor(
    private readonly ctx: ServeContext,
    private readonly sys: Syscalls = defaultSys(),
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
          await this.cleanups.get(req.id); // runc must have forgotten the previous one of that id
          const c = await Container.create(req, {
            namespace,
            sys: this.sys,
            monitor,
            log,
            onExit: (cont, exit) => {
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
        noExec(req.execId, "start");
        const c = this.get(req.id);
        const pid = await c.start((p) => publisher.publish("/tasks/start", TaskStartSchema, { containerId: c.id, pid: p }));
        return { pid };
      },

      state: (req) => {
        noExec(req.execId, "state");
        const c = this.get(req.id);
        const exit = c.state.exited;
        return {
          id: c.id,
          bundle: c.bundle,
          pid: c.pid,
          status: STATUS[c.state.status],
          stdin: c.request.stdin,
          stdout: c.request.stdout,
          stderr: c.request.stderr,
          terminal: c.request.terminal,
          exitStatus: exit?.exitStatus ?? 0,
          ...(exit ? { exitedAt: timestampFromDate(exit.exitedAt) } : {}),
        };
      },

      wait: async (req) => {
        noExec(req.execId, "wait");
        const exit = await this.get(req.id).state.wait();
        return { exitStatus: exit.exitStatus, exitedAt: timestampFromDate(exit.exitedAt) };
      },

      kill: async (req) => {
        noExec(req.execId, "kill");
        await this.get(req.id).kill(req.signal, req.all);
      },

      delete: async (req) => {
        noExec(req.execId, "delete");
        const c = this.get(req.id);
        const d = await c.delete();
        const cleanup = d.cleanup.finally(() => {
          if (this.cleanups.get(req.id) === cleanup) this.cleanups.delete(req.id);
        });
        this.cleanups.set(req.id, cleanup);
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
        const pids = await c.runc.ps(c.id);
        return { processes: pids.map((pid) => ({ pid })) };
      },

      pause: async (req) => {
        const c = this.get(req.id);
        c.state.check("pause");
        await c.runc.pause(c.id);
        c.state.apply("pause");
        publisher.publish("/tasks/paused", TaskPausedSchema, { containerId: c.id });
      },

      resume: async (req) => {
        const c = this.get(req.id);
        c.state.check("resume");
        await c.runc.resume(c.id);
        c.state.apply("resume");
        publisher.publish("/tasks/resumed", TaskResumedSchema, { containerId: c.id });
      },

      closeIO: (req) => {
        noExec(req.execId, "closeIO");
        const c = this.get(req.id);
        if (req.stdin) c.closeStdin();
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

      exec: () => {
        throw new NotImplementedError("exec is not supported by this shim yet");
      },
      resizePty: () => {
        throw new NotImplementedError("terminals are not supported by this shim yet");
      },
      checkpoint: () => {
        throw new NotImplementedError("checkpoint is not supported by this shim yet");
      },
      update: () => {
        throw new NotImplementedError("update is not supported by this shim yet");
      },
      stats: () => {
        throw new NotImplementedError("stats are not supported by this shim yet");
      },
    };
  }

  /** containerd stops reading a bundle's log once its task is deleted: follow a live container. */
  private moveLog(): void {
    for (const other of this.containers.values()) if (this.ctx.logTo(other.bundle)) return;
  }

  async close(): Promise<void> {
    await Promise.all(this.cleanups.values());
    if (this.containers.size > 0) {
      // containerd cleans these up through the delete action once it sees this shim gone
      this.ctx.log.warn({ containers: [...this.containers.keys()] }, "stopping with containers still served");
    }
    for (const c of this.containers.values()) c.closeStdin();
  }
}
