// The lifecycle of one container process as a state machine (containerd pkg/process/init_state.go,
// youki state.rs): every operation is checked against the current state first, and a refusal is
// FailedPrecondition with the same wording as containerd, so `ctr` users see familiar messages.
import { FailedPreconditionError, NotFoundError } from "../../errdefs.ts";

export type ProcessStatus = "created" | "running" | "paused" | "stopped" | "deleted";
export type Operation = "start" | "pause" | "resume" | "update" | "checkpoint" | "delete" | "kill" | "exec";

/** The state an allowed operation leads to (same state when it does not move). */
const TRANSITIONS: Record<ProcessStatus, Partial<Record<Operation, ProcessStatus>>> = {
  created: { start: "running", delete: "deleted", kill: "created", update: "created", exec: "created" },
  running: { pause: "paused", update: "running", checkpoint: "running", kill: "running", exec: "running" },
  paused: { resume: "running", update: "paused", checkpoint: "paused", kill: "paused" },
  stopped: { delete: "deleted" },
  deleted: {},
};

const REFUSALS: Partial<Record<ProcessStatus, Partial<Record<Operation, string>>>> = {
  created: {
    pause: "cannot pause task in created state",
    resume: "cannot resume task in created state",
    checkpoint: "cannot checkpoint a task in created state",
  },
  running: {
    start: "cannot start a running process",
    delete: "cannot delete a running process",
    resume: "cannot resume a running process",
  },
  paused: {
    pause: "cannot pause a paused container",
    start: "cannot start a paused process",
    delete: "cannot delete a paused process",
    exec: "cannot exec in a paused state",
  },
  stopped: {
    pause: "cannot pause a stopped container",
    resume: "cannot resume a stopped container",
    update: "cannot update a stopped container",
    checkpoint: "cannot checkpoint a stopped container",
    start: "cannot start a stopped process",
    exec: "cannot exec in a stopped state",
  },
};

export interface ExitInfo {
  /** Exit code, or 128+signal. */
  exitStatus: number;
  exitedAt: Date;
}

export class ProcessState {
  private current: ProcessStatus = "created";
  private exit: ExitInfo | undefined;
  private readonly waiters: Array<(e: ExitInfo) => void> = [];

  constructor(readonly id: string) {}

  get status(): ProcessStatus {
    return this.current;
  }

  get exited(): ExitInfo | undefined {
    return this.exit;
  }

  /** Throws unless `op` is allowed now; does not change the state (call `apply` once it worked). */
  check(op: Operation): ProcessStatus {
    const next = TRANSITIONS[this.current][op];
    if (next !== undefined) return next;
    if (op === "kill") {
      // containerd reports a signal to a finished process as NotFound, not as a precondition
      throw new NotFoundError(this.current === "deleted" ? "cannot kill a deleted process: not found" : "process already finished: not found");
    }
    const refusal = REFUSALS[this.current]?.[op] ?? `cannot ${op} a ${this.current} process`;
    throw new FailedPreconditionError(refusal);
  }

  /**
   * Moves along a transition once the operation worked. An exit that arrived while the operation
   * ran wins (a container can stop between `runc start` and its reply); anything else is checked again.
   */
  apply(op: Operation): void {
    if (this.current === "stopped" && op !== "delete") return;
    this.current = this.check(op);
  }

  /** The process ended. Later exits (a second report of the same pid) are ignored. */
  setExited(exitStatus: number, exitedAt = new Date()): void {
    if (this.exit) return;
    this.exit = { exitStatus, exitedAt };
    if (this.current !== "deleted") this.current = "stopped";
    for (const resolve of this.waiters.splice(0)) resolve(this.exit);
  }

  /** Resolves when the process has exited; immediately if it already has. Valid from `created` on. */
  wait(): Promise<ExitInfo> {
    if (this.exit) return Promise.resolve(this.exit);
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}
