// A connection to a running shim and the tasks it serves (containerd runtime/v2 shim.go). A shim
// that groups containers serves several tasks on one socket, so connections are shared by address
// and the disconnect hook sees every task that went down with it.
import { closeSync, constants, lstatSync, openSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import { DeadlineExceededError, errorMessage, NotFoundError, UnavailableError } from "../errdefs.ts";
import type { Any } from "@bufbuild/protobuf/wkt";
import type { Mount } from "../gen/containerd/types/mount_pb.ts";
import { Task } from "../gen/containerd/task/v2/shim_pb.ts";
import { type Client, type ServiceClient, dial, socketPath } from "../ttrpc/index.ts";
import { LOG_FIFO, type Bundle } from "./bundle.ts";

export const LOAD_TIMEOUT_MS = 5_000;
export const SHUTDOWN_TIMEOUT_MS = 3_000;
export const SHIM_BINARY_FILE = "shim-binary-path";
export { META_FILE, readMeta, writeMeta, type TaskMeta } from "./meta.ts";
import type { TaskMeta } from "./meta.ts";
import { readAddress as readBundleAddress } from "../contract/address.ts";

/** One ttrpc connection to a shim; closes itself when its last task is released. */
export class ShimConnection {
  readonly task: ServiceClient<typeof Task>;
  readonly tasks = new Set<ShimTask>();
  private closeHandlers: ((conn: ShimConnection) => void)[] = [];

  constructor(
    readonly address: string,
    readonly client: Client,
  ) {
    this.task = client.service(Task);
    client.onClose(() => {
      for (const h of this.closeHandlers) h(this);
    });
  }

  static async dial(address: string, namespace: string, connectTimeoutMs = LOAD_TIMEOUT_MS): Promise<ShimConnection> {
    const client = await dial(address, { namespace, connectTimeoutMs });
    return new ShimConnection(address, client);
  }

  onClose(h: (conn: ShimConnection) => void): void {
    this.closeHandlers.push(h);
  }

  get closed(): boolean {
    return this.client.closed;
  }

  release(t: ShimTask): void {
    this.tasks.delete(t);
    if (this.tasks.size === 0) this.client.close();
  }
}

/** Copies the shim's `log` FIFO into bunker's log until closed (containerd's openShimLog). */
export class ShimLog {
  private fd: number | undefined;
  private reader: { cancel(): Promise<void> } | undefined;

  constructor(bundle: Bundle, logger: Logger) {
    // O_RDWR: the open never blocks and we never see EOF between two writers (shim restarts).
    this.fd = openSync(join(bundle.path, LOG_FIFO), constants.O_RDWR | constants.O_NONBLOCK);
    const reader = Bun.file(this.fd).stream().getReader();
    this.reader = reader;
    const log = logger.child({ shim: `${bundle.namespace}/${bundle.id}` });
    let partial = "";
    const decoder = new TextDecoder();
    void (async () => {
      for (;;) {
        const r = await reader.read();
        if (r.done) return;
        const lines = (partial + decoder.decode(r.value, { stream: true })).split("\n");
        partial = lines.pop() ?? "";
        for (const line of lines) if (line.trim() !== "") log.info({ shimLog: line });
      }
    })().catch((err: unknown) => log.debug({ err: errorMessage(err) }, "shim log copy ended"));
  }

  close(): void {
    void this.reader?.cancel().catch(() => undefined);
    this.reader = undefined;
    if (this.fd !== undefined) {
      try {
        closeSync(this.fd);
      } catch {
        // already closed
      }
      this.fd = undefined;
    }
  }
}

export interface CreateTaskOptions {
  rootfs: Mount[];
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
  options?: Any;
}

/** A task as the manager sees it: its bundle, its metadata and the shim connection serving it. */
export class ShimTask {
  constructor(
    readonly bundle: Bundle,
    readonly conn: ShimConnection,
    readonly binary: string,
    readonly meta: TaskMeta,
    readonly log: ShimLog | undefined,
  ) {
    conn.tasks.add(this);
  }

  get id(): string {
    return this.bundle.id;
  }
  get namespace(): string {
    return this.bundle.namespace;
  }
  get key(): string {
    return taskKey(this.namespace, this.id);
  }
  get api(): ServiceClient<typeof Task> {
    return this.conn.task;
  }

  /** The init process's pid as Create reported it (0 for a task loaded after a restart). */
  pid = 0;

  async create(o: CreateTaskOptions): Promise<number> {
    const r = await this.api.create({
      id: this.id,
      bundle: this.bundle.path,
      rootfs: o.rootfs,
      terminal: o.terminal,
      stdin: o.stdin,
      stdout: o.stdout,
      stderr: o.stderr,
      options: o.options,
    });
    this.pid = r.pid;
    return r.pid;
  }

  async start(execId = ""): Promise<number> {
    return (await this.api.start({ id: this.id, execId })).pid;
  }

  state(execId = "", timeoutMs?: number) {
    return this.api.state({ id: this.id, execId }, timeoutMs === undefined ? undefined : { timeoutMs });
  }

  wait(execId = "", signal?: AbortSignal) {
    return this.api.wait({ id: this.id, execId }, signal ? { signal } : undefined);
  }

  async kill(signal: number, all = false, execId = ""): Promise<void> {
    await this.api.kill({ id: this.id, execId, signal, all });
  }

  async exec(execId: string, spec: Any, io: { stdin: string; stdout: string; stderr: string; terminal: boolean }): Promise<void> {
    await this.api.exec({ id: this.id, execId, spec, ...io });
  }

  /** CloseIO{stdin}: the shim closes the process's stdin once what it read from the FIFO is written. */
  async closeStdin(execId = ""): Promise<void> {
    await this.api.closeIO({ id: this.id, execId, stdin: true });
  }

  /** ResizePty: the process's terminal becomes width columns by height rows (the client's SIGWINCH). */
  async resizePty(execId: string, width: number, height: number): Promise<void> {
    await this.api.resizePty({ id: this.id, execId, width, height });
  }

  deleteProcess(execId = "") {
    return this.api.delete({ id: this.id, execId });
  }

  /** SIGKILLs every process of the task and waits for its exit (at most `timeoutMs` when given). */
  async killAndWait(timeoutMs?: number): Promise<void> {
    const waiting = this.wait();
    await this.kill(9, true);
    await (timeoutMs === undefined ? waiting : Promise.race([waiting, Bun.sleep(timeoutMs)]));
  }

  /** Asks the shim to exit; it refuses while it still serves other containers, which is fine. */
  async shutdown(): Promise<void> {
    try {
      await this.api.shutdown({ id: this.id, now: false }, { timeoutMs: SHUTDOWN_TIMEOUT_MS });
    } catch {
      // The shim exits while answering: a closed connection is the expected outcome.
    }
  }

  /** Checks the shim answers for this task; the shim's pid and the task's pid. */
  async connect(timeoutMs = LOAD_TIMEOUT_MS): Promise<{ shimPid: number; taskPid: number }> {
    const r = await this.api.connect({ id: this.id }, { timeoutMs });
    return { shimPid: r.shimPid, taskPid: r.taskPid };
  }

  /** Forgets the connection (closing it with the last task) and stops copying the shim's log. */
  release(): void {
    this.log?.close();
    this.conn.release(this);
  }
}

export function taskKey(namespace: string, id: string): string {
  return `${namespace}/${id}`;
}

/** A namespace+id keyed task list (containerd runtime.TaskList). */
export class TaskList {
  private readonly tasks = new Map<string, ShimTask>();

  get(namespace: string, id: string): ShimTask {
    const t = this.tasks.get(taskKey(namespace, id));
    if (!t) throw new NotFoundError(`task ${namespace}/${id} not found`);
    return t;
  }

  has(namespace: string, id: string): boolean {
    return this.tasks.has(taskKey(namespace, id));
  }

  add(t: ShimTask): void {
    this.tasks.set(t.key, t);
  }

  delete(namespace: string, id: string): boolean {
    return this.tasks.delete(taskKey(namespace, id));
  }

  all(namespace?: string): ShimTask[] {
    const out = [...this.tasks.values()];
    return namespace ? out.filter((t) => t.namespace === namespace) : out;
  }
}

/** The address the bundle's shim serves on (contract/address.ts readAddress, trimmed as containerd does). */
export function readAddress(bundle: Bundle): string {
  return readBundleAddress(bundle.path).trim();
}

export function readShimBinary(bundle: Bundle): string | undefined {
  try {
    return readFileSync(join(bundle.path, SHIM_BINARY_FILE), "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Unlinks a unix:// shim socket no shim serves any more (a live shim's socket is left alone). An
 * accepted connection is not proof: a child of a killed Go shim (e.g. a runc still running) may
 * hold its listening fd, so the kernel accepts but nobody answers. Any ttrpc answer is.
 */
export async function removeStaleSocket(address: string, timeoutMs = 2_000): Promise<void> {
  try {
    const path = socketPath(address);
    if (!lstatSync(path).isSocket()) return;
    const client = await dial(path, { connectTimeoutMs: 500 }).catch(() => undefined);
    if (client) {
      try {
        await client.service(Task).state({ id: "" }, { timeoutMs });
        return;
      } catch (err) {
        if (!(err instanceof DeadlineExceededError || err instanceof UnavailableError)) return;
      } finally {
        client.close();
      }
    }
    unlinkSync(path);
  } catch {
    // already gone
  }
}
