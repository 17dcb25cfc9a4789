// The daemon's restart supervisor (docker's restartmanager, run by dockerd): applies each
// container's restart policy (containers/restart-policy.ts) after its init exits, with the back-off
// between restarts, and at the daemon's start brings back what a reboot (or a crash of everything)
// ended. Only the daemon runs it: a CLI without a daemon keeps the policy with the container, and
// the next daemon start applies it, as podman leaves restarts to its systemd units.
// Each exit costs the daemon one state write; a restart loop's cost is bounded by the back-off
// (at most ~10 restarts in its first minute, then one a minute).
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Logger } from "pino";
import { errorMessage, isNotFound } from "../errdefs.ts";
import { TaskExitSchema } from "../gen/containerd/events/task_pb.ts";
import { Status } from "../gen/containerd/types/task/task_pb.ts";
import { nextBackoff, shouldRestart } from "../containers/restart-policy.ts";
import { updateState } from "../containers/config.ts";
import { type Exchange, Topics, unpackEvent } from "./events.ts";
import type { TaskManager } from "./manager.ts";

/** How many containers the daemon's start brings back at once (each is a runc create and start). */
const RESTORE_CONCURRENCY = 16;

interface Pending {
  /** The wait before the last restart (the next one doubles it). */
  backoffMs: number;
  timer?: Timer;
}

export class RestartSupervisor {
  private readonly pending = new Map<string, Pending>();
  private unsubscribe: () => void = () => undefined;
  private closed = false;

  constructor(
    private readonly m: TaskManager,
    private readonly events: Exchange,
    private readonly log: Logger,
  ) {}

  /** Listens for exits from now on. */
  watch(): void {
    this.unsubscribe = this.events.subscribe({ topics: [Topics.TaskExit] }, (env) => {
      const e = unpackEvent(env.event, TaskExitSchema);
      // an exec's exit names its exec id; only the init's (id = container id) ends the container
      if (!e || e.id !== e.containerId) return;
      void this.onExit(env.namespace, e.containerId, e.exitStatus, e.exitedAt ? timestampDate(e.exitedAt).getTime() : Date.now());
    });
  }

  private async onExit(namespace: string, id: string, exitStatus: number, exitedAtMs: number): Promise<void> {
    const saved = this.m.saved(namespace, id);
    if (!saved) return;
    const state = updateState(this.m.containerDir(namespace, id), (s) => {
      s.lastExit = { status: exitStatus, at: new Date(exitedAtMs).toISOString() };
    });
    const policy = saved.config.restart;
    if (!shouldRestart(policy, { exitStatus, manuallyStopped: state.manuallyStopped, restartCount: state.restartCount, atDaemonStart: false })) {
      this.pending.delete(key(namespace, id));
      return;
    }
    const k = key(namespace, id);
    const ranMs = state.startedAt ? exitedAtMs - Date.parse(state.startedAt) : 0;
    const p = this.pending.get(k) ?? { backoffMs: 0 };
    p.backoffMs = nextBackoff(p.backoffMs, ranMs);
    clearTimeout(p.timer);
    p.timer = setTimeout(() => void this.restartNow(namespace, id), p.backoffMs);
    this.pending.set(k, p);
    this.log.info({ namespace, id, exitStatus, inMs: p.backoffMs, restartCount: state.restartCount }, "restarting by policy");
  }

  private async restartNow(namespace: string, id: string): Promise<void> {
    if (this.closed) return;
    // decided again at the time: a user may have stopped, started or removed it meanwhile
    const saved = this.m.saved(namespace, id);
    if (!saved || saved.state.manuallyStopped) return;
    try {
      const t = await this.m.task(namespace, id);
      const st = await t.status();
      if (st.status !== Status.STOPPED) return;
      await this.m.restart(namespace, id, { byPolicy: true });
    } catch (err) {
      if (isNotFound(err)) return;
      this.log.warn({ namespace, id, err: errorMessage(err) }, "restart by policy failed");
      // a failed restart counts as a failed run: the back-off goes on
      await this.onExit(namespace, id, 255, Date.now());
    }
  }

  /**
   * At the daemon's start: every container whose last run ended with nothing left of it (a reboot
   * wiped --state) comes back when its policy says so; the others are settled as exited (their
   * network released, their exit 255 unless one was seen).
   */
  async restoreAtStart(): Promise<{ restarted: number; exited: number }> {
    const stopped = await this.m.exitedContainers();
    let restarted = 0;
    let exited = 0;
    const queue = [...stopped];
    const worker = async (): Promise<void> => {
      for (let c = queue.shift(); c; c = queue.shift()) {
        const saved = this.m.saved(c.namespace, c.id);
        if (!saved) continue;
        const facts = { exitStatus: saved.state.lastExit?.status ?? 255, manuallyStopped: saved.state.manuallyStopped, restartCount: saved.state.restartCount, atDaemonStart: true };
        try {
          if (shouldRestart(saved.config.restart, facts)) {
            await this.m.restart(c.namespace, c.id, { byPolicy: true });
            restarted++;
          } else {
            await this.m.settleStopped(c.namespace, c.id);
            exited++;
          }
        } catch (err) {
          this.log.error({ namespace: c.namespace, id: c.id, err: errorMessage(err) }, "bringing a container back at start");
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(RESTORE_CONCURRENCY, queue.length) }, worker));
    return { restarted, exited };
  }

  close(): void {
    this.closed = true;
    this.unsubscribe();
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
  }
}

function key(namespace: string, id: string): string {
  return `${namespace}/${id}`;
}
