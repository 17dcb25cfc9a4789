// The executor (moby plugin/executor/containerd): create-and-start with output streams, restore
// after a restart, isRunning, signal, and exit events turned into exitHandler calls after the
// container is deleted. See index.ts for the contract.
import { rmSync } from "node:fs";
import { isAbsolute } from "node:path";
import pino, { type Logger } from "pino";
import { loadRuntimeConfig, type RuntimeConfig } from "../config/runtime-config.ts";
import { AlreadyExistsError, errorMessage, InvalidArgumentError, isNotFound, NotFoundError } from "../errdefs.ts";
import type { TaskInfo } from "../gen/bunker/v1/api_pb.ts";
import { TaskExitSchema } from "../gen/containerd/events/task_pb.ts";
import { Status } from "../gen/containerd/types/task/task_pb.ts";
import { validateIdentifier, validateNamespace } from "../identifiers.ts";
import { Topics, unpackEvent } from "../runtime/events.ts";
import type { CreateOptions, TaskManager } from "../runtime/manager.ts";
import type { RunSpecFlags } from "../images/run-spec.ts";
import { sys } from "../sys/index.ts";
import { cgroupParent, DEFAULT_ADDRESS, DEFAULT_ROOT } from "../runtime/paths.ts";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { type Api, type Backend, DaemonBackend, managerBackend } from "./backend.ts";
import { isTrackedInitExit, nextCursor, type Tracked } from "./exits.ts";
import { Attachment, fifoPaths, makeFifos } from "./io.ts";
import { type PreparedSpec, parseSignal, prepareSpec, type ResolvedRuntime, resolveRuntime, withShimGroup } from "./request.ts";

/** The runtime to create with, and the config it came from (its shim_group shapes the spec). */
type RuntimeChoice = ResolvedRuntime & { config: RuntimeConfig | undefined };
import { type Output, type OutputTarget, toOutput } from "./streams.ts";

/** Called once per exit of a container this executor created or restored, after it was deleted. */
export interface ExitHandler {
  handleExitEvent(id: string): void | Promise<void>;
}

export interface ExecutorOptions {
  /** The embedded task manager (see startEmbeddedRuntime); or give `address`. */
  manager?: TaskManager;
  /** The socket of a running `bunker daemon`; or give `manager`. */
  address?: string;
  namespace: string;
  /** Per-container dirs holding the output FIFOs (the seed's rootDir); absolute. */
  rootDir: string;
  /** When given, the FIFO dirs go here instead (volatile storage such as /run); absolute. */
  stateDir?: string;
  /** A runtime name (looked up in runtimeConfig, or `bunker`/`runc`), a runtime type, or a shim path. */
  runtime?: string;
  /** A runtime config TOML file, or one already parsed (src/config/runtime-config.ts). */
  runtimeConfig?: string | RuntimeConfig;
  exitHandler: ExitHandler;
  logger?: Logger;
  /** bunker's --root, whose image store createFromImage uses (default /var/lib/bunker). */
  imageRoot?: string;
  /** Registries reached over plain HTTP besides loopback ones, for createFromImage's pulls. */
  insecureRegistries?: string[];
}

/**
 * A container's network, as `bunker run` takes it (--net, -p, --dns, --dns-search, --add-host,
 * --hostname): `mode` is "bridge", a network's name, "host", "none" or "container:<id>".
 */
export type NetworkOptions = NonNullable<CreateOptions["network"]>;

/** What createFromImage runs: an image (pulled per `pull`, default "missing") and docker run's overrides. */
export interface ImageRunRequest {
  network?: NetworkOptions;
  image: string;
  pull?: "missing" | "always" | "never";
  platform?: string;
  /** The command (default: the image's Cmd after its Entrypoint). */
  args?: string[];
  entrypoint?: string;
  env?: string[];
  user?: string;
  cwd?: string;
  terminal?: boolean;
  /** `bunker run`'s -v, --mount, --tmpfs, --read-only, --memory, --cpus, --pids-limit, caps, --privileged, --device, --init. */
  runSpec?: RunSpecFlags;
}

interface Entry extends Tracked {
  attachment: Attachment | undefined;
  /** Resolves when create() is over, so an early exit is handled after Start answered. */
  ready: Promise<void>;
  settle: () => void;
}

/** How long an exit waits for the last output before the handler runs anyway. */
const DRAIN_MS = 5_000;
const POLL_MS = 30_000;
const MAX_BACKOFF_MS = 2_000;

export class Executor {
  private readonly backend: Backend;
  private readonly namespace: string;
  private readonly fifoRoot: string;
  private readonly log: Logger;
  private readonly tracked = new Map<string, Entry>();
  private readonly exiting = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  private readonly events: Promise<void>;
  private resolved: Promise<RuntimeChoice> | undefined;

  constructor(private readonly o: ExecutorOptions) {
    this.namespace = validateNamespace(o.namespace);
    if ((o.manager === undefined) === (o.address === undefined)) throw new InvalidArgumentError("give exactly one of manager and address");
    for (const [name, dir] of [["rootDir", o.rootDir], ["stateDir", o.stateDir]] as const) {
      if (dir !== undefined && !isAbsolute(dir)) throw new InvalidArgumentError(`${name} must be an absolute path, got ${JSON.stringify(dir)}`);
    }
    if (typeof o.exitHandler?.handleExitEvent !== "function") throw new InvalidArgumentError("exitHandler.handleExitEvent is required");
    if (typeof o.runtimeConfig !== "string") this.resolved = Promise.resolve({ ...resolveRuntime(o.runtime, o.runtimeConfig), config: o.runtimeConfig });
    this.fifoRoot = o.stateDir ?? o.rootDir;
    this.log = (o.logger ?? pino({ level: "warn" }, pino.destination({ fd: 2, sync: true }))).child({ executor: this.namespace });
    this.backend = o.manager ? managerBackend(o.manager) : new DaemonBackend(o.address!);
    this.events = this.readEvents();
  }

  /**
   * Creates and starts the container. A container with this id that exists but does not run is
   * stale: it is deleted and the create tried again (the seed's recovery); a running one fails
   * with AlreadyExists. The outputs end when the process's output does, or at once on failure.
   */
  async create(id: string, spec: object, stdout: OutputTarget, stderr: OutputTarget, opts: { network?: NetworkOptions } = {}): Promise<void> {
    const out = toOutput(stdout, (err) => this.log.warn({ id, err: errorMessage(err) }, "stdout destination failed"));
    const errOut = toOutput(stderr, (err) => this.log.warn({ id, err: errorMessage(err) }, "stderr destination failed"));
    let entry: Entry;
    try {
      validateIdentifier(id, "container id");
      const unshaped = prepareSpec(spec);
      const runtime = await this.runtime();
      const prepared = { ...withShimGroup(unshaped, runtime.config), ...(opts.network ? { network: opts.network } : {}) };
      try {
        entry = await this.createTask(id, prepared, runtime, out, errOut);
      } catch (err) {
        const status = await this.status(id).catch((e: unknown) => {
          if (!isNotFound(e)) this.log.warn({ id, err: errorMessage(e) }, "reading the status of a container that failed to create");
          return undefined;
        });
        if (status === undefined || status === Status.RUNNING || status === Status.UNKNOWN) throw err;
        await this.deleteTaskAndContainer(id);
        entry = await this.createTask(id, prepared, runtime, out, errOut);
      }
    } catch (err) {
      await Promise.all([out.end(), errOut.end()]);
      throw err;
    }
    await this.startTask(id, entry);
  }

  /**
   * Creates and starts a container from an image, as `bunker run IMAGE` does: the image pulled per
   * the policy and unpacked, the spec from its config, the container on its own writable layer
   * (released with the container). Outputs, exits and restore work as for create().
   */
  async createFromImage(id: string, req: ImageRunRequest, stdout: OutputTarget, stderr: OutputTarget): Promise<void> {
    const out = toOutput(stdout, (err) => this.log.warn({ id, err: errorMessage(err) }, "stdout destination failed"));
    const errOut = toOutput(stderr, (err) => this.log.warn({ id, err: errorMessage(err) }, "stderr destination failed"));
    let entry: Entry;
    try {
      validateIdentifier(id, "container id");
      const runtime = await this.runtime();
      const prepared = { ...withShimGroup(await this.imageSpec(id, req), runtime.config), ...(req.network ? { network: req.network } : {}) };
      entry = await this.createTask(id, prepared, runtime, out, errOut);
    } catch (err) {
      await Promise.all([out.end(), errOut.end()]);
      throw err;
    }
    await this.startTask(id, entry);
  }

  private async imageSpec(id: string, req: ImageRunRequest): Promise<PreparedSpec> {
    const [{ ImageStore }, { imageSpec, resolveRunSpec }, { topChainId }] = await Promise.all([import("../images/store.ts"), import("../images/run-spec.ts"), import("../images/image.ts")]);
    const root = this.o.imageRoot ?? this.o.manager?.root ?? DEFAULT_ROOT;
    // the flags' host lookups first: a bad --device refuses the run before any pull
    const runOptions = req.runSpec ? await resolveRunSpec(req.runSpec, root) : undefined;
    const store = new ImageStore(root, { insecureRegistries: this.o.insecureRegistries ?? [] });
    const img = await store.ensure(req.image, req.pull ?? "missing", req.platform ? { platform: req.platform } : {});
    const spec = await imageSpec(
      store,
      img,
      { namespace: this.namespace, id, cgroupParent: cgroupParent(this.o.address ?? this.o.manager?.address ?? DEFAULT_ADDRESS), terminal: req.terminal ?? false },
      {
        args: req.args ?? [],
        env: req.env ?? [],
        ...(req.entrypoint !== undefined ? { entrypoint: req.entrypoint } : {}),
        ...(req.user !== undefined ? { user: req.user } : {}),
        ...(req.cwd !== undefined ? { cwd: req.cwd } : {}),
      },
      runOptions,
    );
    return { rootfs: "", image: { image: img.name, parent: topChainId(img) }, json: new TextEncoder().encode(JSON.stringify(spec)), terminal: req.terminal ?? false };
  }

  /**
   * Reattaches the outputs to a container after a restart. True when it is alive (not stopped);
   * a stopped one is deleted, and one that no longer exists only has its FIFO dir removed. Exits of
   * an alive one reach the exit handler from then on.
   */
  async restore(id: string, stdout: OutputTarget, stderr: OutputTarget): Promise<boolean> {
    const out = toOutput(stdout, (err) => this.log.warn({ id, err: errorMessage(err) }, "stdout destination failed"));
    const errOut = toOutput(stderr, (err) => this.log.warn({ id, err: errorMessage(err) }, "stderr destination failed"));
    let info: TaskInfo;
    let attachment: Attachment;
    try {
      validateIdentifier(id, "container id");
      info = await this.info(id);
      attachment = new Attachment(fifoPaths(this.fifoRoot, id, false), out, errOut);
    } catch (err) {
      await Promise.all([out.end(), errOut.end()]);
      if (!isNotFound(err)) throw err;
      this.forget(id);
      rmSync(fifoPaths(this.fifoRoot, id, false).dir, { recursive: true, force: true });
      return false;
    }
    attachment.start();
    if (info.status === Status.STOPPED) {
      this.forget(id);
      await this.deleteTaskAndContainer(id);
      await this.drained(attachment);
      return false;
    }
    const previous = this.tracked.get(id);
    previous?.attachment?.detach();
    const entry: Entry = { pid: info.pid, since: 0, attachment, ready: Promise.resolve(), settle: () => undefined };
    this.tracked.set(id, entry);
    // An exit between our look and the tracking above was not acted on: look once more.
    const now = await this.status(id).catch((e: unknown) => (isNotFound(e) ? Status.STOPPED : undefined));
    if (now === Status.STOPPED) this.handleExit(id, entry);
    return true;
  }

  /** Whether the container's init process runs; NotFound for an unknown id (as the seed). */
  async isRunning(id: string): Promise<boolean> {
    return (await this.status(id)) === Status.RUNNING;
  }

  /** Sends a signal (a number or a name such as "SIGTERM") to the container's init process. */
  async signal(id: string, signal: number | string): Promise<void> {
    validateIdentifier(id, "container id");
    const n = parseSignal(signal);
    const api = await this.backend.api();
    await api.kill({ namespace: this.namespace, id, signal: n });
  }

  /**
   * Stops reading events and output (the outputs end; what is still unread stays in the FIFOs for
   * a later restore). Containers keep running.
   */
  async close(): Promise<void> {
    this.abort.abort();
    await this.events;
    await Promise.all(this.exiting);
    const attachments = [...this.tracked.values()].flatMap((e) => (e.attachment ? [e.attachment] : []));
    this.tracked.clear();
    for (const a of attachments) a.detach();
    await Promise.all(attachments.map((a) => a.done));
    this.backend.close();
  }

  private runtime(): Promise<RuntimeChoice> {
    this.resolved ??= (async () => {
      const config = typeof this.o.runtimeConfig === "string" ? await loadRuntimeConfig(this.o.runtimeConfig) : this.o.runtimeConfig;
      return { ...resolveRuntime(this.o.runtime, config), config };
    })().catch((err: unknown) => {
      this.resolved = undefined; // a fixed config file is read again next time
      throw err;
    });
    return this.resolved;
  }

  private async info(id: string): Promise<TaskInfo> {
    validateIdentifier(id, "container id");
    const api = await this.backend.api();
    const { tasks } = await api.list({ namespace: this.namespace, id });
    const t = tasks[0];
    if (!t) throw new NotFoundError(`container ${this.namespace}/${id} not found`);
    return t;
  }

  private async status(id: string): Promise<Status> {
    return (await this.info(id)).status;
  }

  private async createTask(id: string, spec: PreparedSpec & { network?: NetworkOptions }, rt: ResolvedRuntime, out: Output, errOut: Output): Promise<Entry> {
    const api = await this.backend.api();
    // Checked before the FIFOs are replaced: a running container's must stay as they are.
    if (await this.status(id).then(() => true, (e: unknown) => (isNotFound(e) ? false : Promise.reject(e)))) {
      throw new AlreadyExistsError(`container ${this.namespace}/${id} already exists`);
    }
    const paths = fifoPaths(this.fifoRoot, id, spec.terminal);
    makeFifos((p, mode) => sys().mkfifo(p, mode), paths);
    let attachment: Attachment;
    try {
      attachment = new Attachment(paths, out, errOut);
    } catch (err) {
      rmSync(paths.dir, { recursive: true, force: true });
      throw err;
    }
    const { promise: ready, resolve: settle } = Promise.withResolvers<void>();
    const entry: Entry = { pid: undefined, since: Date.now(), attachment, ready, settle };
    this.tracked.set(id, entry);
    try {
      await api.create({
        namespace: this.namespace,
        id,
        runtime: rt.runtime,
        rootfs: spec.rootfs,
        ...(spec.image ? { image: spec.image.image, snapshotParent: spec.image.parent } : {}),
        ...(spec.network
          ? {
              network: spec.network.mode,
              publish: spec.network.publish ?? [],
              dns: spec.network.dns ?? [],
              dnsSearch: spec.network.dnsSearch ?? [],
              addHosts: spec.network.addHosts ?? [],
              hostname: spec.network.hostname ?? "",
            }
          : {}),
        spec: spec.json,
        stdout: paths.stdout,
        stderr: paths.stderr,
        terminal: spec.terminal,
        ...(rt.options ? { runtimeOptions: rt.options } : {}),
      });
    } catch (err) {
      this.forget(id, entry);
      settle();
      attachment.abandon();
      rmSync(paths.dir, { recursive: true, force: true });
      throw err;
    }
    attachment.start();
    return entry;
  }

  private async startTask(id: string, entry: Entry): Promise<void> {
    try {
      const api = await this.backend.api();
      entry.pid = (await api.start({ namespace: this.namespace, id })).pid;
    } catch (err) {
      this.forget(id, entry);
      await this.deleteTaskAndContainer(id);
      entry.attachment?.detach();
      throw err;
    } finally {
      entry.settle();
    }
  }

  private forget(id: string, entry?: Entry): void {
    if (entry === undefined || this.tracked.get(id) === entry) this.tracked.delete(id);
  }

  /** The seed's deleteTaskAndContainer: errors are logged, NotFound is success. */
  private async deleteTaskAndContainer(id: string): Promise<void> {
    try {
      const api = await this.backend.api();
      await api.delete({ namespace: this.namespace, id, force: true });
    } catch (err) {
      if (!isNotFound(err)) this.log.error({ id, err: errorMessage(err) }, "failed to delete container");
    }
    // The FIFO files may go now: our open read ends keep the last output readable.
    rmSync(fifoPaths(this.fifoRoot, id, false).dir, { recursive: true, force: true });
  }

  /** Waits for the outputs to end, at most DRAIN_MS (a daemonized child may hold a pipe). */
  private async drained(a: Attachment | undefined): Promise<void> {
    if (!a) return;
    let timer: Timer | undefined;
    await Promise.race([a.done, new Promise<void>((r) => (timer = setTimeout(r, DRAIN_MS)))]);
    clearTimeout(timer);
    a.detach();
  }

  /** The seed's processEvent for an exit: delete, then the handler; once per tracked incarnation. */
  private handleExit(id: string, entry: Entry): void {
    if (this.tracked.get(id) !== entry) return;
    this.tracked.delete(id);
    const p = (async () => {
      await entry.ready;
      await this.deleteTaskAndContainer(id);
      await this.drained(entry.attachment);
      try {
        await this.o.exitHandler.handleExitEvent(id);
      } catch (err) {
        this.log.error({ id, err: errorMessage(err) }, "exit handler failed");
      }
    })().finally(() => this.exiting.delete(p));
    this.exiting.add(p);
  }

  /** After a (re)connection: containers that stopped while we could not hear about it. */
  private async recheck(api: Api): Promise<void> {
    for (const [id, entry] of [...this.tracked]) {
      if (entry.pid === undefined) continue;
      try {
        const { tasks } = await api.list({ namespace: this.namespace, id });
        if (tasks[0]?.status !== Status.STOPPED) continue;
      } catch (err) {
        if (!isNotFound(err)) continue;
      }
      this.handleExit(id, entry);
    }
  }

  private async readEvents(): Promise<void> {
    const signal = this.abort.signal;
    let after = 0n;
    let generation = -1;
    let backoff = 100;
    while (!signal.aborted) {
      try {
        const api = await this.backend.api();
        if (this.backend.generation !== generation) {
          // A new connection, maybe to a restarted daemon: replay its log from the start.
          generation = this.backend.generation;
          after = 0n;
          void this.recheck(api).catch((err: unknown) => this.log.debug({ err: errorMessage(err) }, "recheck after reconnect"));
        }
        const r = await api.events({ after, timeoutMs: POLL_MS, namespace: this.namespace, topics: [Topics.TaskExit] }, { signal });
        backoff = 100;
        for (const e of r.events) {
          const exit = e.event ? unpackEvent(e.event, TaskExitSchema) : undefined;
          const entry = exit ? this.tracked.get(exit.containerId) : undefined;
          if (!exit || !entry) continue;
          const info = { containerId: exit.containerId, id: exit.id, pid: exit.pid, exitedAt: exit.exitedAt ? timestampDate(exit.exitedAt) : undefined };
          if (isTrackedInitExit(entry, info)) this.handleExit(exit.containerId, entry);
        }
        after = nextCursor(after, r.last);
      } catch (err) {
        if (signal.aborted) return;
        this.log.debug({ err: errorMessage(err), backend: this.backend.description }, "event poll failed; retrying");
        await new Promise<void>((resolve) => {
          const done = (): void => {
            clearTimeout(timer);
            signal.removeEventListener("abort", done);
            resolve();
          };
          const timer = setTimeout(done, backoff);
          signal.addEventListener("abort", done, { once: true });
        });
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
    }
  }
}
