// A recording fake of the OciRuntime seam (src/oci/runtime.ts) for unit tests of bunker's task
// service: containers and processes are records, pids are made up, and a process "exits" when the
// test says so, through the same reaper path a real one takes (a zombie in the FakeSyscalls, then
// Monitor.reap). Calls are recorded in order; any call can be made to fail, or held until released,
// so that tests can pin the service's ordering rules without root or runc.
import { writeFileSync } from "node:fs";
import { AlreadyExistsError, NotFoundError } from "../../src/errdefs.ts";
import type { CheckpointOptions, ContainerState, CreateOptions, ExecOptions, OciRuntime, ProcessIO, ProcessPipes, RestoreOptions, RuntimeFeatures } from "../../src/oci/runtime.ts";
import type { Monitor } from "../../src/shim/reaper.ts";
import type { OciRuntimeFactory } from "../../src/shims/bunker/container.ts";
import type { FakeSyscalls } from "../../src/sys/index.ts";

type Method = keyof OciRuntime;

interface FakeContainer {
  id: string;
  bundle: string;
  pid: number;
  status: "created" | "running" | "paused" | "stopped";
}

const NO_PIPES: ProcessPipes = { stdin: undefined, stdout: undefined, stderr: undefined };

/** The containers every fake runtime of one test sees (the fake's equivalent of runc's root). */
export class FakeOciWorld {
  readonly calls: string[] = [];
  readonly containers = new Map<string, FakeContainer>();
  /** pid -> alive; inits and execs alike. */
  readonly live = new Set<number>();
  private nextPid = 1000;
  private readonly failures = new Map<string, Error>();
  private readonly holds = new Map<string, { release: () => void; gate: Promise<void> }>();

  constructor(
    private readonly sys: FakeSyscalls,
    private readonly monitor: Monitor,
  ) {}

  /** The factory the task service takes (its runtime per container). */
  readonly factory: OciRuntimeFactory = () => new FakeOciRuntime(this);

  /** The next `method` call on `id` throws err (once). */
  fail(method: Method, id: string, err: Error): void {
    this.failures.set(`${method} ${id}`, err);
  }

  /** The next `method` call on `id` waits until the returned function is called. */
  hold(method: Method, id: string): () => void {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    this.holds.set(`${method} ${id}`, { release, gate });
    return release;
  }

  /** The process exits with `status` (128+N for a signal N), seen by the reaper as a real one is. */
  exit(pid: number, status: number): void {
    if (!this.live.delete(pid)) return;
    for (const c of this.containers.values()) if (c.pid === pid) c.status = "stopped";
    this.sys.zombies.set(pid, status > 128 ? { status, signal: status - 128, raw: status - 128 } : { status, raw: status << 8 });
    this.monitor.reap();
  }

  newPid(pidFile: string | undefined): number {
    const pid = this.nextPid++;
    this.live.add(pid);
    if (pidFile) writeFileSync(pidFile, String(pid));
    return pid;
  }

  /** Records the call, then fails or waits if the test asked for it. */
  async enter(method: Method, id: string, detail = ""): Promise<void> {
    this.calls.push(`${method} ${id}${detail ? ` ${detail}` : ""}`);
    const key = `${method} ${id}`;
    const held = this.holds.get(key);
    if (held) {
      this.holds.delete(key);
      await held.gate;
    }
    const err = this.failures.get(key);
    if (err) {
      this.failures.delete(key);
      throw err;
    }
  }

  get(id: string): FakeContainer {
    const c = this.containers.get(id);
    if (!c) throw new NotFoundError(`fake runtime: container ${id} does not exist`);
    return c;
  }
}

export class FakeOciRuntime implements OciRuntime {
  constructor(private readonly w: FakeOciWorld) {}

  async create(id: string, bundle: string, opts: CreateOptions = {}): Promise<ProcessPipes> {
    await this.w.enter("create", id);
    if (this.w.containers.has(id)) throw new AlreadyExistsError(`fake runtime: container ${id} already exists`);
    this.w.containers.set(id, { id, bundle, pid: this.w.newPid(opts.pidFile), status: "created" });
    return NO_PIPES;
  }

  async start(id: string): Promise<void> {
    await this.w.enter("start", id);
    this.w.get(id).status = "running";
  }

  async exec(id: string, _spec: unknown, opts: ExecOptions = {}): Promise<ProcessPipes> {
    await this.w.enter("exec", id);
    if (this.w.get(id).status !== "running") throw new NotFoundError(`fake runtime: container ${id} is not running`);
    this.w.newPid(opts.pidFile);
    return NO_PIPES;
  }

  async kill(id: string, signal: number, opts: { all?: boolean } = {}): Promise<void> {
    await this.w.enter("kill", id, `${signal}${opts.all ? " all" : ""}`);
    const c = this.w.get(id);
    if (c.status === "stopped") throw new NotFoundError("process already finished: not found");
  }

  async delete(id: string, opts: { force?: boolean } = {}): Promise<void> {
    await this.w.enter("delete", id, opts.force ? "force" : "");
    const c = this.w.get(id);
    if (c.status !== "stopped" && c.status !== "created" && !opts.force) throw new Error(`fake runtime: container ${id} is ${c.status}: delete needs force`);
    this.w.containers.delete(id);
    // a created or force-deleted container's init is killed, as runc does
    if (this.w.live.has(c.pid)) this.w.exit(c.pid, 137);
  }

  async state(id: string): Promise<ContainerState> {
    await this.w.enter("state", id);
    const c = this.w.get(id);
    return { id, pid: c.pid, status: c.status, bundle: c.bundle, rootfs: `${c.bundle}/rootfs`, created: "" };
  }

  async ps(id: string): Promise<number[]> {
    await this.w.enter("ps", id);
    return [this.w.get(id).pid];
  }

  async pause(id: string): Promise<void> {
    await this.w.enter("pause", id);
    this.w.get(id).status = "paused";
  }

  async resume(id: string): Promise<void> {
    await this.w.enter("resume", id);
    this.w.get(id).status = "running";
  }

  async update(id: string, _resources: unknown): Promise<void> {
    await this.w.enter("update", id);
  }

  async checkpoint(id: string, _opts: CheckpointOptions): Promise<void> {
    await this.w.enter("checkpoint", id);
  }

  async restore(id: string, opts: RestoreOptions, _io?: ProcessIO): Promise<ProcessPipes> {
    await this.w.enter("restore", id);
    const pid = this.w.newPid(opts.pidFile);
    this.w.containers.set(id, { id, bundle: opts.bundle, pid, status: "running" });
    return NO_PIPES;
  }

  async features(): Promise<RuntimeFeatures | undefined> {
    return { ociVersionMin: "1.0.0", ociVersionMax: "1.0.2-dev" };
  }
}
