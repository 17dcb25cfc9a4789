// An exec process (containerd pkg/process/exec.go): created by Exec, run by Start with
// `runc exec --detach --pid-file`, its own stdio (pipes or a terminal), its own exit. Its start and
// its exit report go through one chain, so TaskExit for an exec never precedes its TaskExecStarted.
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Any } from "@bufbuild/protobuf/wkt";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, errorMessage } from "../../errdefs.ts";
import type { ExecProcessRequest } from "../../gen/containerd/task/v2/shim_pb.ts";
import { validateIdentifier } from "../../identifiers.ts";
import type { Logger } from "../../shim/logger.ts";
import type { Exit, Monitor } from "../../shim/reaper.ts";
import type { Syscalls } from "../../sys/types.ts";
import { ProcIO } from "../../stdio/procio.ts";
import { ProcessState, type ExitInfo } from "./process.ts";
import type { OciRuntime } from "../../oci/runtime.ts";

export interface ExecDeps {
  containerId: string;
  namespace: string;
  bundle: string;
  runtime: OciRuntime;
  sys: Syscalls;
  monitor: Monitor;
  log: Logger;
  /** The exec ended and its output is drained (publish TaskExit here). */
  onExit(e: ExecProcess, exit: ExitInfo): void;
}

/** The OCI Process of an Exec request: containerd sends its JSON in an Any. */
export function processSpecOf(spec: Any | undefined): Record<string, unknown> {
  if (!spec || spec.value.length === 0) throw new InvalidArgumentError("exec needs a process spec");
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(spec.value));
  } catch (err) {
    throw new InvalidArgumentError(`exec process spec (${spec.typeUrl}) is not JSON: ${errorMessage(err)}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new InvalidArgumentError("exec process spec must be a JSON object");
  const p = parsed as Record<string, unknown>;
  if (!Array.isArray(p.args) || p.args.length === 0) throw new InvalidArgumentError("exec process spec has no args");
  return p;
}

export class ExecProcess {
  readonly state: ProcessState;
  pid = 0;
  private io: ProcIO | undefined;
  private stdinClosed = false;
  private order: Promise<unknown> = Promise.resolve();
  private readonly spec: Record<string, unknown>;

  constructor(
    readonly request: ExecProcessRequest,
    private readonly deps: ExecDeps,
  ) {
    validateIdentifier(request.execId, "exec id");
    this.spec = processSpecOf(request.spec);
    // runc takes the terminal flag from the process spec; the request's flag is what containerd means
    this.spec.terminal = request.terminal;
    this.state = new ProcessState(request.execId);
  }

  get id(): string {
    return this.request.execId;
  }

  /** `runc exec --detach`; `started` runs in the same turn, so TaskExecStarted precedes its TaskExit. */
  async start(started: (pid: number) => void): Promise<number> {
    this.state.check("start");
    const run = this.order.then(async () => {
      const { request: r, deps } = this;
      const io = await ProcIO.open({ stdin: r.stdin, stdout: r.stdout, stderr: r.stderr, terminal: r.terminal }, deps.sys, deps.bundle, {
        containerId: deps.containerId,
        namespace: deps.namespace,
      });
      this.io = io;
      if (this.stdinClosed) io.closeStdin();
      const pidFile = join(deps.bundle, `${this.id}.pid`);
      try {
        const { io: stdio, consoleSocket } = io.runcOptions();
        await io.launch(() => deps.runtime.exec(deps.containerId, this.spec, { detach: true, pidFile, io: stdio, ...(consoleSocket ? { consoleSocket } : {}) }));
        this.pid = Number.parseInt(readFileSync(pidFile, "utf8").trim(), 10);
      } finally {
        rmSync(pidFile, { force: true });
      }
      if (!Number.isInteger(this.pid) || this.pid <= 0) throw new FailedPreconditionError(`exec ${this.id}: runc wrote no pid`);
      deps.monitor.watch(this.pid, (exit) => this.exited(exit));
      this.state.apply("start");
      started(this.pid);
    });
    this.order = run.catch(() => undefined);
    await run;
    return this.pid;
  }

  private exited(exit: Exit): void {
    this.order = this.order.then(async () => {
      try {
        await this.io?.drain();
        this.io?.close();
      } catch (err) {
        this.deps.log.warn({ id: this.deps.containerId, execId: this.id, err: errorMessage(err) }, "closing exec stdio after exit");
      }
      this.state.setExited(exit.status, exit.at);
      const info = this.state.exited;
      if (info) this.deps.onExit(this, info);
    });
  }

  kill(signal: number): void {
    this.state.check("kill");
    if (this.pid === 0) throw new NotFoundError(`exec ${this.id} has not started: not found`);
    try {
      process.kill(this.pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ESRCH") throw new NotFoundError("process already finished: not found");
      throw err;
    }
  }

  resize(width: number, height: number): void {
    this.io?.resize(width, height);
  }

  closeStdin(): void {
    this.stdinClosed = true;
    this.io?.closeStdin();
  }

  /** Only a created or stopped exec can go; its stdio is closed. */
  delete(): ExitInfo & { pid: number } {
    this.state.check("delete");
    if (this.pid) this.deps.monitor.unwatch(this.pid);
    this.io?.close();
    const exit = this.state.exited ?? { exitStatus: 0, exitedAt: new Date() };
    this.state.apply("delete");
    return { pid: this.pid, ...exit };
  }

  /** The init process is gone: stop copying (what is left is killed with the container). */
  close(): void {
    this.io?.close();
    if (this.pid) this.deps.monitor.unwatch(this.pid);
  }
}
