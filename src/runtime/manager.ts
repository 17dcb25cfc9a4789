// The task manager (containerd runtime/v2/manager.go): creates tasks (bundle + shim + Create,
// rolled back together on failure), keeps the task list, cleans up after shims that die, and on
// start-up reloads every task a previous bunker left running, all namespaces and bundles at once.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Any, AnySchema, timestampDate } from "@bufbuild/protobuf/wkt";
import type { Logger } from "pino";
import { AlreadyExistsError, errorMessage, FailedPreconditionError, isNotFound, NotFoundError, UnavailableError } from "../errdefs.ts";
import { type Mount, MountSchema } from "../gen/containerd/types/mount_pb.ts";
import { validateIdentifier, validateNamespace } from "../identifiers.ts";
import { resolveShimBinary } from "./binary.ts";
import { type Bundle, type BundleSys, bundlePaths, deleteBundle, exists, listBundleIds, listNamespaces, loadBundle, newBundle } from "./bundle.ts";
import { DeadShimCleanup } from "./cleanup.ts";
import { type LogPlan, type LogRequest, planContainerLog } from "./container-log.ts";
import { type ContainerLayers, type ContainerNetworks, ContainerStore, killAt, type ImageSource, type NetworkRequest, type NetworkSetup, type Step } from "../containers/record.ts";
import { CONFIG_FILE as SAVED_CONFIG, type ContainerConfig, type ContainerState, readConfig, readState, updateState, writeConfig } from "../containers/config.ts";
import { NO_RESTART, type RestartPolicy } from "../containers/restart-policy.ts";
import { withNetwork } from "../oci/spec.ts";
import { foregroundPid, type ForegroundRecord, type LiveForeground, listLiveForeground, liveForeground, ownerAlive, readForeground, releaseForegroundTask } from "./foreground.ts";
import { ExitedTask, ForegroundTask, isRunning, OrphanTask, ShimBackedTask, type Task } from "./task.ts";
import { type Exchange, type ExitInfo, Topics, unpackEvent } from "./events.ts";
import { TaskDeleteSchema } from "../gen/containerd/events/task_pb.ts";
import {
  LOAD_TIMEOUT_MS,
  readAddress,
  readMeta,
  readShimBinary,
  removeStaleSocket,
  SHIM_BINARY_FILE,
  ShimConnection,
  ShimLog,
  ShimTask,
  TaskList,
  taskKey,
  type TaskMeta,
  writeMeta,
} from "./shim.ts";
import type { ShimCommandConfig } from "./shimproc.ts";
import { managerRuncRoot } from "./paths.ts";
import { withRuncRoot } from "./runc-root.ts";
import { ShimActions } from "./shim-actions.ts";
import { ADDRESS_FILE, CONFIG_FILE } from "../contract/bundle.ts";

export interface ManagerOptions {
  root: string;
  state: string;
  /** bunker's API address, passed to shims as -address. */
  address: string;
  /** Where shims publish events (TTRPC_ADDRESS). */
  ttrpcAddress: string;
  /** The bunker executable (-publish-binary); defaults to process.execPath. */
  publishBinary?: string;
  events: Exchange;
  sys: BundleSys;
  logger: Logger;
  debug?: boolean;
  loadTimeoutMs?: number;
  /** Where shim binaries are looked for besides $PATH (default: beside the bunker executable). */
  selfDir?: string;
  /** runc's state root for runc-type shims that name none (default <state>/runc; see runc-root.ts). */
  runcRoot?: string;
  /** Containers' writable layers over images (the image subsystem); without it, only rootfs mounts can be created. */
  layers?: ContainerLayers;
  /** Containers' networks (the network subsystem); without it, a container gets runc's empty netns. */
  networks?: ContainerNetworks;
}

export interface CreateOptions {
  runtime: string;
  spec: Uint8Array | string;
  /** The rootfs mounts, or an image's snapshot to make the container's writable layer over (then rootfs is empty). */
  rootfs: Mount[];
  image?: ImageSource;
  /** `--net` and its companions; absent: an empty network namespace of runc's (only lo). */
  network?: NetworkRequest;
  /** What `stop` sends first and how long it waits (kept in the task's meta). */
  stopSignal?: string;
  stopTimeout?: number;
  stdin?: string;
  stdout?: string;
  stderr?: string;
  terminal?: boolean;
  /** Runtime options: on the shim's stdin at start, and in CreateTaskRequest.options. */
  options?: Any;
  labels?: Record<string, string>;
  /** A detached container's kept output (container-log.ts): its stdout and stderr URIs replace the request's. */
  log?: LogRequest;
  /** docker's --restart (kept with the container; the daemon's RestartSupervisor applies it). */
  restart?: RestartPolicy;
}

/** Output that outlives an attached client: a file or a logging binary, not a client's FIFO. */
function lasting(uri: string | undefined): string {
  return uri !== undefined && (uri.startsWith("file://") || uri.startsWith("binary://")) ? uri : "";
}

/** What a create keeps to make the container again (containers/config.ts). */
function savedConfig(o: CreateOptions): ContainerConfig {
  const c: ContainerConfig = {
    runtime: o.runtime,
    spec: typeof o.spec === "string" ? o.spec : new TextDecoder().decode(o.spec),
    rootfs: o.rootfs.map((m) => ({ type: m.type, source: m.source, ...(m.target ? { target: m.target } : {}), options: [...m.options] })),
    stdout: lasting(o.stdout),
    stderr: lasting(o.stderr),
    terminal: o.terminal ?? false,
    labels: o.labels ?? {},
    restart: o.restart ?? NO_RESTART,
  };
  if (o.image) c.image = o.image;
  if (o.network) c.network = o.network;
  if (o.options) c.options = Buffer.from(toBinary(AnySchema, o.options)).toString("base64");
  if (o.log) c.log = o.log;
  if (o.stopSignal) c.stopSignal = o.stopSignal;
  if (o.stopTimeout) c.stopTimeout = o.stopTimeout;
  return c;
}

/** The create options of a saved container, for making it again. */
function optionsOf(c: ContainerConfig): CreateOptions {
  const o: CreateOptions = {
    runtime: c.runtime,
    spec: c.spec,
    rootfs: c.rootfs.map((m) => create(MountSchema, m)),
    stdout: c.stdout,
    stderr: c.stderr,
    terminal: c.terminal,
    labels: c.labels,
    restart: c.restart,
  };
  if (c.image) o.image = c.image;
  if (c.network) o.network = c.network;
  if (c.options) o.options = fromBinary(AnySchema, Buffer.from(c.options, "base64"));
  if (c.log) o.log = c.log;
  if (c.stopSignal) o.stopSignal = c.stopSignal;
  if (c.stopTimeout) o.stopTimeout = c.stopTimeout;
  return o;
}

/** Whether a request makes something the network step must release (none: runc's own empty netns). */
function hasNetwork(req: NetworkRequest | undefined): boolean {
  return req !== undefined && req.mode !== "none";
}

export class TaskManager {
  readonly tasks = new TaskList();
  private readonly conns = new Map<string, ShimConnection>();
  private readonly log: Logger;

  private readonly deadShims: DeadShimCleanup;
  /** The container records: every removal goes through their teardown (containers/record.ts). */
  private readonly containers: ContainerStore;
  /** Shim binaries' start and delete actions, bounded; no `start` per task of a live group (shim-actions.ts). */
  readonly actions: ShimActions;

  private constructor(private readonly o: ManagerOptions) {
    this.log = o.logger;
    this.actions = new ShimActions({
      apiAddress: o.address,
      liveConnection: (address) => {
        const c = this.conns.get(address);
        return c && !c.closed ? c : undefined;
      },
      connect: (address, namespace) => this.connection(address, namespace),
    });
    this.containers = new ContainerStore(o.root);
    this.deadShims = new DeadShimCleanup({
      command: (bundle, binary) => this.command(bundle, binary),
      runDelete: (cmd) => this.actions.delete(cmd),
      events: o.events,
      log: o.logger,
      teardown: (bundle, releaseTask) => this.teardown(bundle, releaseTask),
    });
  }

  /**
   * Makes root and state, then reloads what a previous bunker left (containerd's New). With
   * `load: false` (the embedded CLI, which may run next to other bunker processes) nothing is
   * loaded up front: tasks are loaded one by one on demand, and never cleaned up behind the back
   * of a process that may be creating them.
   */
  static async create(o: ManagerOptions, { load = true }: { load?: boolean } = {}): Promise<TaskManager> {
    for (const d of [o.root, o.state]) mkdirSync(d, { recursive: true, mode: 0o711 });
    const m = new TaskManager(o);
    m.unsubscribe = o.events.subscribe({ topics: [Topics.TaskDelete] }, (env) => void m.onShimDelete(env.namespace, env.event));
    if (load) await m.loadExistingTasks();
    return m;
  }

  private unsubscribe = (): void => undefined;
  private readonly deleting = new Set<string>();

  /**
   * A Delete a previous bunker left in flight completes in the shim after we reloaded its task:
   * the shim's TaskDelete is then our only news of it. Drop the task once the shim disowns it.
   */
  private async onShimDelete(namespace: string, event: Any): Promise<void> {
    const id = unpackEvent(event, TaskDeleteSchema)?.containerId ?? "";
    const key = taskKey(namespace, id);
    if (!this.tasks.has(namespace, id) || this.deleting.has(key) || this.deadShims.busy(namespace, id)) return;
    const t = this.tasks.get(namespace, id);
    try {
      await t.state("", LOAD_TIMEOUT_MS);
      return;
    } catch (err) {
      if (!isNotFound(err) || !this.tasks.has(namespace, id) || this.tasks.get(namespace, id) !== t || this.deleting.has(key)) return;
    }
    this.log.info({ namespace, id }, "task deleted by its shim while bunker was away");
    this.tasks.delete(namespace, id);
    await this.tryTeardown(t.bundle, async () => {
      await t.shutdown();
      t.release();
    });
  }

  /** Tasks whose shim (or foreground CLI) could not be reached by a load without cleanup, with the reason. */
  private readonly unreachable = new Map<string, { bundle: Bundle; meta: TaskMeta | undefined; error: string }>();

  /**
   * The task of an id, whatever its kind (task.ts): a shim's (loaded from its bundle on demand), a
   * live foreground run, or an orphan waiting for rm. NotFound without one.
   */
  async task(namespace: string, id: string): Promise<Task> {
    validateNamespace(namespace);
    validateIdentifier(id, "container id");
    // a listed task is live in this process: no record to read on the hot path of every call
    if (this.tasks.has(namespace, id)) return this.shimTask(this.tasks.get(namespace, id));
    await this.restarting.get(taskKey(namespace, id))?.catch(() => undefined);
    if (this.tasks.has(namespace, id)) return this.shimTask(this.tasks.get(namespace, id));
    await this.finishTeardowns(namespace, id);
    const { path } = bundlePaths(this.o.root, this.o.state, namespace, id);
    if (!exists(path)) {
      const exited = this.exitedTask(namespace, id);
      if (exited) return exited;
      throw new NotFoundError(`task ${namespace}/${id} not found`);
    }
    const fg = liveForeground(this.o.state, namespace, id);
    if (fg) return this.foregroundTask(fg);
    await this.loadTask(namespace, id, false);
    if (this.tasks.has(namespace, id)) return this.shimTask(this.tasks.get(namespace, id));
    const u = this.unreachable.get(taskKey(namespace, id));
    return new OrphanTask(namespace, id, path, u?.meta ?? readMeta({ path }), u?.error ?? "no address", () => this.cleanupDead(namespace, id));
  }

  /** Every task of a namespace (or of all), each kind; `load` first loads what is on disk (the embedded CLI). */
  async list(namespace?: string, { load = false }: { load?: boolean } = {}): Promise<Task[]> {
    // a container between its released run and its new task is in no list: wait for it (tens of ms)
    await Promise.all([...this.restarting].filter(([k]) => !namespace || k.startsWith(`${namespace}/`)).map(([, p]) => p.catch(() => undefined)));
    const { exited } = await this.finishTeardowns(namespace);
    if (load) await this.loadAll(namespace);
    const out: Task[] = this.tasks.all(namespace).map((t) => this.shimTask(t));
    for (const fg of this.foreground(namespace)) out.push(this.foregroundTask(fg));
    for (const u of this.unreachable.values()) {
      if (namespace && u.bundle.namespace !== namespace) continue;
      const { namespace: ns, id, path } = u.bundle;
      out.push(new OrphanTask(ns, id, path, u.meta, u.error, () => this.cleanupDead(ns, id)));
    }
    for (const c of exited) {
      const t = this.exitedTask(c.namespace, c.id);
      if (t) out.push(t);
    }
    return out;
  }

  private shimTask(t: ShimTask): ShimBackedTask {
    return new ShimBackedTask(t, () => this.deleteTask(t.namespace, t.id), () => this.restart(t.namespace, t.id));
  }

  private foregroundTask(fg: LiveForeground): ForegroundTask {
    return new ForegroundTask(fg, readMeta({ path: fg.bundlePath }), () => exists(fg.bundlePath));
  }

  /** Loads every task without cleaning up (for listing from the embedded CLI). */
  private async loadAll(namespace?: string): Promise<void> {
    const nss = namespace ? [namespace] : listNamespaces(this.o.state);
    await Promise.all(
      nss.map(async (ns) => {
        const ids = listBundleIds(this.o.state, ns).filter((id) => !this.tasks.has(ns, id));
        await Promise.all(ids.map((id) => this.loadTask(ns, id, false)));
      }),
    );
  }

  /** The containers `bunker run --rm` runs in the foreground of a live CLI (see foreground.ts). */
  private foreground(namespace?: string): LiveForeground[] {
    return listLiveForeground(this.o.state, namespace ? [namespace] : listNamespaces(this.o.state), (ns, id) => this.tasks.has(ns, id));
  }

  /** Removes a task whose shim (or foreground CLI) is gone: the binary's delete, exit events, bundle removal. */
  async cleanupDead(namespace: string, id: string): Promise<ExitInfo> {
    const bundle = loadBundle(this.o.state, namespace, id);
    if (!exists(bundle.path)) throw new NotFoundError(`task ${namespace}/${id} not found`);
    this.unreachable.delete(taskKey(namespace, id));
    const fg = readForeground(bundle.path);
    if (fg) return this.removeOrphanForeground(bundle, fg);
    return this.cleanupAfterDeadShim(bundle, readShimBinary(bundle), true);
  }

  /** A foreground container whose CLI died (refused while it lives); its exit is unknown: 255. */
  private async removeOrphanForeground(bundle: Bundle, fg: ForegroundRecord): Promise<ExitInfo> {
    if (ownerAlive(fg)) throw new FailedPreconditionError(`task ${bundle.id} is running in the foreground of bunker pid ${fg.owner}`);
    const pid = foregroundPid(bundle.path);
    await this.teardown(bundle, () => releaseForegroundTask(fg, bundle.id));
    return { pid, exitStatus: 255, exitedAt: new Date() };
  }

  /**
   * The one teardown path: the container record's steps in order (task, then bundle), each recorded
   * once done, so that a teardown cut short is finished by the next rm, ps or daemon start.
   * `releaseTask` is how the caller releases the task (it knows best: a live shim's Delete, a dead
   * shim's delete action, a rollback); the bundle step is always deleteBundle.
   */
  private teardown(bundle: Bundle, releaseTask: () => Promise<void>): Promise<void> {
    return this.containers.teardown(bundle.namespace, bundle.id, (step: Step) => {
      if (step === "task") return releaseTask();
      if (step === "bundle") return this.releaseBundle(bundle);
      if (step === "network") return this.releaseNetwork(bundle.namespace, bundle.id);
      return this.releaseLayer(bundle.namespace, bundle.id);
    });
  }

  /** The network step: DEL of its attachments, its netns and /etc files, through the network subsystem. */
  private async releaseNetwork(namespace: string, id: string): Promise<void> {
    if (!this.o.networks) throw new FailedPreconditionError(`container ${namespace}/${id} has a network, and this bunker has no network subsystem to release it`);
    await this.o.networks.release(namespace, id);
  }

  /**
   * Sets up the container's network after its id is reserved and before its task exists, and joins
   * the bundle's spec to it. `container:ID` joins the other container's namespace by its init pid.
   */
  private async setupNetwork(bundle: Bundle, req: NetworkRequest): Promise<NetworkSetup> {
    if (!this.o.networks) throw new FailedPreconditionError("this bunker has no network subsystem: only an empty network namespace");
    let peer: { pid: number; namespace: string; id: string } | undefined;
    if (req.mode.startsWith("container:")) {
      const other = req.mode.slice("container:".length);
      const t = await this.task(bundle.namespace, other);
      peer = { pid: (await t.status()).pid, namespace: bundle.namespace, id: other };
    }
    const setup = await this.o.networks.setup(bundle.namespace, bundle.id, req, peer);
    // replaced whole: the shim's start, running meanwhile, reads this file for its group
    const specPath = join(bundle.path, CONFIG_FILE);
    const tmp = `${specPath}.net`;
    writeFileSync(tmp, JSON.stringify(withNetwork(JSON.parse(readFileSync(specPath, "utf8")) as object, setup)), { mode: 0o600 });
    renameSync(tmp, specPath);
    return setup;
  }

  /** The snapshot step: the container's writable layer, through the image subsystem. */
  private async releaseLayer(namespace: string, id: string): Promise<void> {
    if (!this.o.layers) throw new FailedPreconditionError(`container ${namespace}/${id} has an image layer, and this bunker has no image store to release it`);
    await this.o.layers.release(namespace, id);
  }

  private async tryTeardown(bundle: Bundle, releaseTask: () => Promise<void>): Promise<void> {
    try {
      await this.teardown(bundle, releaseTask);
    } catch (err) {
      this.log.error({ id: bundle.id, namespace: bundle.namespace, err: errorMessage(err) }, "teardown");
    }
  }

  /** The bundle step: unmount, remove the state dir and the work dir (also when the bundle is gone). */
  private async releaseBundle(bundle: Bundle): Promise<void> {
    deleteBundle(bundle, this.o.sys);
    rmSync(bundlePaths(this.o.root, this.o.state, bundle.namespace, bundle.id).work, { recursive: true, force: true });
  }

  /**
   * Finishes the teardowns a crash cut short (records marked removing), and those of containers
   * whose bundle is gone (a reboot wiped --state): of one container, a namespace, or all. A record
   * whose foreground CLI still runs is that CLI's to finish.
   */
  private async finishTeardowns(namespace?: string, id?: string): Promise<{ finished: number; exited: { namespace: string; id: string }[] }> {
    const records = id ? [this.containers.read(namespace!, id)].filter((r) => r !== undefined) : this.containers.list(namespace);
    const outcomes = await Promise.all(
      records.map(async (rec): Promise<"finished" | "exited" | undefined> => {
        const bundle = loadBundle(this.o.state, rec.namespace, rec.id);
        const present = exists(bundle.path);
        if (present && !rec.removing) return undefined;
        // a reboot ended it, and it can run again: listed as exited until started or removed, its
        // network released once (by whichever bunker process sees it first)
        const dir = this.containers.dir(rec.namespace, rec.id);
        if (!present && !rec.removing && existsSync(join(dir, SAVED_CONFIG))) {
          if (!this.restarting.has(taskKey(rec.namespace, rec.id)) && !readState(dir).settled) {
            await this.settleStopped(rec.namespace, rec.id).catch((err) => this.log.warn({ id: rec.id, err: errorMessage(err) }, "releasing what a reboot left"));
          }
          return "exited";
        }
        const fg = present ? readForeground(bundle.path) : undefined;
        if (fg && ownerAlive(fg)) return undefined;
        this.log.info({ namespace: rec.namespace, id: rec.id, released: rec.released }, "finishing a teardown cut short");
        await this.tryTeardown(bundle, () => this.releaseTaskOnResume(bundle, fg));
        return "finished";
      }),
    );
    return {
      finished: outcomes.filter((o) => o === "finished").length,
      exited: records.filter((_, i) => outcomes[i] === "exited").map((r) => ({ namespace: r.namespace, id: r.id })),
    };
  }

  /** Finishes the teardown of one container if one was cut short; whether there was one (rm then succeeds). */
  async resumeTeardown(namespace: string, id: string): Promise<boolean> {
    validateNamespace(namespace);
    validateIdentifier(id, "container id");
    return (await this.finishTeardowns(namespace, id)).finished > 0;
  }

  /** Waits (up to LOAD_TIMEOUT_MS) until the shim no longer knows the task: its own Delete completed. */
  private async waitDeletedInShim(t: ShimTask): Promise<void> {
    const deadline = Date.now() + LOAD_TIMEOUT_MS;
    for (;;) {
      try {
        await t.state("", LOAD_TIMEOUT_MS);
      } catch (err) {
        if (isNotFound(err)) return;
        throw err;
      }
      if (Date.now() > deadline) throw new UnavailableError(`task ${t.namespace}/${t.id}: its shim has not finished deleting it`);
      await Bun.sleep(50);
    }
  }

  /** The task step of a teardown resumed after a crash: whatever still holds the task is released. */
  private async releaseTaskOnResume(bundle: Bundle, fg: ForegroundRecord | undefined): Promise<void> {
    if (!exists(bundle.path)) return; // rebooted: nothing of it runs, runc's state under --state is gone
    if (fg) return releaseForegroundTask(fg, bundle.id);
    const { namespace, id } = bundle;
    if (!this.tasks.has(namespace, id)) await this.loadTask(namespace, id, false);
    this.unreachable.delete(taskKey(namespace, id));
    if (this.tasks.has(namespace, id)) {
      const t = this.tasks.get(namespace, id);
      this.tasks.delete(namespace, id);
      try {
        await t.deleteProcess().catch(async (err: unknown) => {
          if (!isNotFound(err) && !(err instanceof FailedPreconditionError)) throw err;
          let st;
          try {
            st = await t.state("", LOAD_TIMEOUT_MS);
          } catch (stateErr) {
            if (isNotFound(stateErr)) return; // the shim finished a Delete of its own meanwhile
            throw stateErr;
          }
          // stopped, and Delete refused: the shim is finishing the Delete the crashed bunker sent
          if (!isRunning(st.status)) return await this.waitDeletedInShim(t);
          // still running (the teardown was cut before its kill): kill it through its shim first
          await t.killAndWait(LOAD_TIMEOUT_MS);
          await t.deleteProcess();
        });
        await t.shutdown();
        t.release();
        return;
      } catch (err) {
        this.log.warn({ namespace, id, err: errorMessage(err) }, "resumed teardown: the shim's Delete failed; forcing");
        t.release();
      }
    }
    await this.deadShims.releaseTask(bundle, readShimBinary(bundle), true);
  }

  get events(): Exchange {
    return this.o.events;
  }

  /** bunker's --root and --address this manager serves (for embedders that build specs). */
  get root(): string {
    return this.o.root;
  }

  get address(): string {
    return this.o.address;
  }

  private command(bundle: Bundle, binary: string): ShimCommandConfig {
    return {
      binary,
      bundle,
      address: this.o.address,
      ttrpcAddress: this.o.ttrpcAddress,
      publishBinary: this.o.publishBinary ?? process.execPath,
      debug: this.o.debug ?? false,
    };
  }

  async create(namespace: string, id: string, opts: CreateOptions): Promise<ShimTask> {
    validateNamespace(namespace);
    validateIdentifier(id, "container id");
    const { path } = bundlePaths(this.o.root, this.o.state, namespace, id);
    if (this.tasks.has(namespace, id) || exists(path)) throw new AlreadyExistsError(`task ${namespace}/${id} already exists`);
    // Resolve before touching disk: a missing runtime leaves nothing behind.
    const binary = resolveShimBinary(opts.runtime, this.o.selfDir === undefined ? {} : { selfDir: this.o.selfDir });
    const layers = this.o.layers;
    if (opts.image && !layers) throw new FailedPreconditionError("this bunker has no image store: give a rootfs");
    if (hasNetwork(opts.network) && !this.o.networks) throw new FailedPreconditionError("this bunker has no network subsystem: only --net none");
    // planned before anything exists: a bad driver or option leaves nothing behind
    const log = this.planLog(opts, namespace, id, binary);
    const bundle = newBundle({ root: this.o.root, state: this.o.state, namespace, id, spec: opts.spec, sys: this.o.sys });
    // the record after the bundle (the mkdir that reserves the id): a record never names a bundle
    // someone else is making; a crash between the two leaves a bundle that reload cleans up
    try {
      this.containers.create(namespace, id, opts.image, { network: hasNetwork(opts.network) });
      writeConfig(this.containers.dir(namespace, id), savedConfig(opts));
    } catch (err) {
      deleteBundle(bundle, this.o.sys);
      throw err;
    }
    return this.build(bundle, binary, opts, log, "create");
  }

  /** Where a detached container's output goes this run (container-log.ts); undefined: no log asked for, or driver none. */
  private planLog(opts: CreateOptions, namespace: string, id: string, binary: string): LogPlan | undefined {
    return opts.log ? planContainerLog(opts.log, { recordDir: this.containers.dir(namespace, id), id, shimBinary: binary }) : undefined;
  }

  /**
   * Makes the container's network, writable layer, shim and task in a reserved bundle. On failure
   * a create rolls back everything (the record included); a restart releases what this run made
   * (task, network, bundle) and leaves the container stopped, with its layer and its record.
   */
  private async build(bundle: Bundle, binary: string, opts: CreateOptions, log: LogPlan | undefined, why: "create" | "restart"): Promise<ShimTask> {
    const { namespace, id } = bundle;
    const layers = this.o.layers;
    let shimLog: ShimLog | undefined;
    let task: ShimTask | undefined;
    try {
      // The network and the image layer are made while the shim starts (each is tens of ms of other
      // processes' work: CNI plugins, mounts); all three settle before anything else, so that a
      // rollback's release never races a setup still under way. The record names both already.
      const made = Promise.allSettled([
        opts.network ? this.setupNetwork(bundle, opts.network) : Promise.resolve(undefined),
        opts.image ? layers!.prepare(namespace, id, opts.image.parent) : Promise.resolve(opts.rootfs),
      ]);
      const meta: TaskMeta = { runtime: opts.runtime, labels: opts.labels ?? {}, created: new Date().toISOString() };
      if (log) Object.assign(meta, { logPath: log.path, logDriver: log.driver });
      else if (opts.log) meta.logDriver = "none";
      if (opts.image) meta.image = opts.image.image;
      if (opts.stopSignal) meta.stopSignal = opts.stopSignal;
      if (opts.stopTimeout) meta.stopTimeout = opts.stopTimeout;
      const cmd = this.command(bundle, binary);
      const runtimeOptions = withRuncRoot(opts.runtime, opts.options, this.o.runcRoot ?? managerRuncRoot(this.o.state));
      const options = runtimeOptions ? anyBytes(runtimeOptions) : undefined;
      const t0 = performance.now();
      let shim: Awaited<ReturnType<ShimActions["shimFor"]>>;
      try {
        writeMeta(bundle, meta);
        shimLog = new ShimLog(bundle, this.log);
        shim = await this.actions.shimFor(opts.runtime, cmd, options);
      } finally {
        await made;
      }
      const [netResult, rootfsResult] = await made;
      if (netResult.status === "rejected") throw netResult.reason;
      if (rootfsResult.status === "rejected") throw rootfsResult.reason;
      killAt("create:network");
      const { conn, spawned } = shim;
      if (netResult.value?.summary) {
        meta.network = netResult.value.summary;
        writeMeta(bundle, meta);
      }
      const rootfs = rootfsResult.value;
      // "shim started": this create ran the binary's start action; "shim reused": it joined a live group
      this.log.debug({ id, address: conn.address, ms: Math.round(performance.now() - t0) }, spawned ? "shim started" : "shim reused");
      writeFileSync(join(bundle.path, SHIM_BINARY_FILE), binary, { mode: 0o600 });
      task = new ShimTask(bundle, conn, binary, meta, shimLog);
      await task.create({
        rootfs: rootfs.map((m) => create(MountSchema, m)),
        stdin: opts.stdin ?? "",
        stdout: log?.stdio ?? opts.stdout ?? "",
        stderr: log?.stdio ?? opts.stderr ?? "",
        terminal: opts.terminal ?? false,
        ...(runtimeOptions ? { options: runtimeOptions } : {}),
      });
      this.tasks.add(task);
      this.log.debug({ id, pid: task.pid, ms: Math.round(performance.now() - t0) }, "task created");
      return task;
    } catch (err) {
      if (why === "create") await this.rollback(bundle, binary, task, shimLog, err);
      else await this.releaseRun(bundle, () => this.releaseFailedTask(bundle, binary, task, shimLog)).catch((e) => this.log.error({ id, err: errorMessage(e) }, "releasing a failed restart"));
      throw err;
    }
  }

  private async rollback(bundle: Bundle, binary: string, task: ShimTask | undefined, shimLog: ShimLog | undefined, cause: unknown): Promise<void> {
    this.log.warn({ id: bundle.id, namespace: bundle.namespace, err: errorMessage(cause) }, "create failed; rolling back");
    await this.tryTeardown(bundle, () => this.releaseFailedTask(bundle, binary, task, shimLog));
  }

  /** The task step of a failed create or restart: whatever the shim made of it, and the shim's own clean-up. */
  private async releaseFailedTask(bundle: Bundle, binary: string, task: ShimTask | undefined, shimLog: ShimLog | undefined): Promise<void> {
    if (task) {
      try {
        await task.deleteProcess();
      } catch {
        // Nothing was created in the shim, or it is gone: the binary's delete cleans up below.
      }
      await task.shutdown();
      task.release();
    } else {
      shimLog?.close();
    }
    if (exists(join(bundle.path, ADDRESS_FILE))) {
      try {
        await this.actions.delete(this.command(bundle, binary));
      } catch (err) {
        this.log.debug({ id: bundle.id, err: errorMessage(err) }, "shim delete during rollback");
      }
    }
  }

  /** A shared connection per shim address (grouping shims serve several tasks on one socket). */
  private async connection(address: string, namespace: string, timeoutMs?: number): Promise<ShimConnection> {
    const existing = this.conns.get(address);
    if (existing && !existing.closed) return existing;
    const conn = await ShimConnection.dial(address, namespace, timeoutMs);
    this.conns.set(address, conn);
    conn.onClose((c) => this.onDisconnect(c));
    return conn;
  }

  private onDisconnect(conn: ShimConnection): void {
    if (this.conns.get(conn.address) === conn) this.conns.delete(conn.address);
    for (const t of [...conn.tasks]) {
      t.release();
      // Only a task still listed died unexpectedly; deleted tasks were unlisted first.
      if (!this.tasks.has(t.namespace, t.id) || this.tasks.get(t.namespace, t.id) !== t) continue;
      this.log.warn({ id: t.id, namespace: t.namespace }, "shim disconnected");
      void this.cleanupAfterDeadShim(t.bundle, t.binary, true).finally(() => this.tasks.delete(t.namespace, t.id));
    }
  }

  /** containerd's cleanupAfterDeadShim (see cleanup.ts); bunker also removes the bundle. */
  private cleanupAfterDeadShim(bundle: Bundle, binary: string | undefined, publish: boolean): Promise<ExitInfo> {
    return this.deadShims.run(bundle, binary, publish);
  }

  get(namespace: string, id: string): ShimTask {
    return this.tasks.get(namespace, id);
  }

  add(task: ShimTask): void {
    this.tasks.add(task);
  }

  /** Drops a task from the list (containerd's TaskManager.Delete). */
  delete(namespace: string, id: string): void {
    this.tasks.delete(namespace, id);
  }

  /** The tasks shims serve (the daemon's count at start-up; the manager's own bookkeeping). */
  shimTasks(namespace?: string): ShimTask[] {
    return this.tasks.all(namespace);
  }

  /** Deletes the task in its shim, stops the shim, removes the bundle; returns the exit. */
  async deleteTask(namespace: string, id: string): Promise<ExitInfo> {
    const t = this.tasks.get(namespace, id);
    const key = taskKey(namespace, id);
    let exit: ExitInfo | undefined;
    let deadShim = false;
    this.deleting.add(key);
    try {
      await this.teardown(t.bundle, async () => {
        try {
          const r = await t.deleteProcess();
          exit = { pid: r.pid, exitStatus: r.exitStatus, exitedAt: r.exitedAt ? timestampDate(r.exitedAt) : new Date() };
        } catch (err) {
          if (!(err instanceof UnavailableError) && !t.conn.closed) throw err;
          // The shim is gone: its binary's delete reports the exit (before the bundle goes).
          deadShim = true;
          this.tasks.delete(namespace, id);
          t.release();
          exit = await this.deadShims.releaseTask(t.bundle, t.binary, true);
          return;
        }
        // Unlist before the shim goes away, so its disconnect is not taken for a crash.
        this.tasks.delete(namespace, id);
        await t.shutdown();
        t.release();
      });
    } finally {
      this.deleting.delete(key);
    }
    if (deadShim) await removeStaleSocket(t.conn.address);
    return exit ?? { pid: 0, exitStatus: 255, exitedAt: new Date() };
  }

  private readonly restarting = new Map<string, Promise<number>>();

  /**
   * Runs a stopped container again: `start` of an exited container, its restart policy, the
   * daemon's start after a reboot. Releases what its last run held (task, network, bundle; never
   * its writable layer, its record or its logs), makes them again from the saved config and starts
   * the init. Returns its pid. One at a time per container.
   */
  restart(namespace: string, id: string, { byPolicy = false }: { byPolicy?: boolean } = {}): Promise<number> {
    validateNamespace(namespace);
    validateIdentifier(id, "container id");
    const key = taskKey(namespace, id);
    const inFlight = this.restarting.get(key);
    if (inFlight) return inFlight;
    const p = this.runAgain(namespace, id, byPolicy).finally(() => this.restarting.delete(key));
    this.restarting.set(key, p);
    return p;
  }

  private async runAgain(namespace: string, id: string, byPolicy: boolean): Promise<number> {
    const dir = this.containers.dir(namespace, id);
    const rec = this.containers.read(namespace, id);
    if (!rec || rec.removing) throw new NotFoundError(`container ${namespace}/${id} not found`);
    const config = readConfig(dir);
    if (!config) throw new FailedPreconditionError(`container ${id} was made before bunker kept containers' configs and cannot be started again; remove it`);
    // the old task's shim is kept (not shut down) until the new task is made: the create reuses its
    // live connection instead of starting a shim again (a shim's start is ~200 ms of two Bun
    // processes' start-up; a crash loop's restart costs ~140 ms of CPU in all with it kept)
    let held: ShimTask | undefined;
    let pid: number;
    try {
      await this.releaseRun(loadBundle(this.o.state, namespace, id), async (b) => {
        held = await this.releaseStoppedTask(b);
      });
      const opts = optionsOf(config);
      const binary = resolveShimBinary(opts.runtime, this.o.selfDir === undefined ? {} : { selfDir: this.o.selfDir });
      const log = this.planLog(opts, namespace, id, binary);
      const bundle = newBundle({ root: this.o.root, state: this.o.state, namespace, id, spec: opts.spec, sys: this.o.sys });
      const t = await this.build(bundle, binary, opts, log, "restart");
      // recorded before the start is asked for: a command that exits at once can have its exit
      // handled (restarts.ts) before start() returns, and must see this run's start time and count
      // (an older startedAt made a crash loop's run look > 10 s long and reset its back-off)
      updateState(dir, (s) => {
        s.startedAt = new Date().toISOString();
        s.manuallyStopped = false;
        delete s.settled;
        if (byPolicy) s.restartCount++;
      });
      try {
        pid = await t.start("");
      } catch (err) {
        this.tasks.delete(namespace, id);
        await this.releaseRun(bundle, () => this.releaseFailedTask(bundle, binary, t, undefined)).catch(() => undefined);
        throw err;
      }
    } catch (err) {
      await held?.shutdown();
      throw err;
    } finally {
      held?.release();
    }
    return pid;
  }

  /** What one run of a container holds, released in the record's order: its task, network and bundle. */
  private async releaseRun(bundle: Bundle, releaseTask: (bundle: Bundle) => Promise<void>): Promise<void> {
    await releaseTask(bundle);
    if (this.containers.read(bundle.namespace, bundle.id)?.steps.includes("network")) await this.releaseNetwork(bundle.namespace, bundle.id);
    await this.releaseBundle(bundle);
  }

  /**
   * The task of a stopped container, before it runs again (a running one is refused, nothing
   * released). Returns the deleted task still holding its shim connection: the caller releases it.
   */
  private async releaseStoppedTask(bundle: Bundle): Promise<ShimTask | undefined> {
    if (!exists(bundle.path)) return undefined; // rebooted, or released already: nothing of it runs
    const { namespace, id } = bundle;
    const key = taskKey(namespace, id);
    if (!this.tasks.has(namespace, id)) await this.loadTask(namespace, id, false);
    if (!this.tasks.has(namespace, id)) {
      this.unreachable.delete(key);
      await this.deadShims.releaseTask(bundle, readShimBinary(bundle), false);
      return undefined;
    }
    const t = this.tasks.get(namespace, id);
    const st = await t.state("", LOAD_TIMEOUT_MS);
    if (isRunning(st.status)) throw new FailedPreconditionError(`container ${id} is running`);
    this.deleting.add(key);
    try {
      const r = await t.deleteProcess();
      updateState(this.containers.dir(namespace, id), (s) => {
        s.lastExit = { status: r.exitStatus, at: (r.exitedAt ? timestampDate(r.exitedAt) : new Date()).toISOString() };
      });
      this.tasks.delete(namespace, id);
      return t;
    } finally {
      this.deleting.delete(key);
    }
  }

  /**
   * A container whose last run a reboot (or a crash of everything) ended and that does not run
   * again now: its exit is unknown (255) unless one was seen, and its network is released (DEL, so
   * no lease waits for an rm); its layer and logs stay until rm. Idempotent.
   */
  async settleStopped(namespace: string, id: string): Promise<void> {
    const dir = this.containers.dir(namespace, id);
    await this.releaseRun(loadBundle(this.o.state, namespace, id), async () => {});
    updateState(dir, (s) => {
      if (!s.lastExit || (s.startedAt !== undefined && s.startedAt > s.lastExit.at)) s.lastExit = { status: 255, at: new Date().toISOString() };
      s.settled = true;
    });
  }

  /** A user's stop or kill of a container's init: its restart policy holds until it is started again. */
  noteUserStop(namespace: string, id: string): void {
    const dir = this.containers.dir(namespace, id);
    if (readConfig(dir)?.restart.name === "no") return;
    updateState(dir, (s) => {
      s.manuallyStopped = true;
    });
  }

  /** `<root>/containers/<ns>/<id>`: the record, the saved config and state, the logs. */
  containerDir(namespace: string, id: string): string {
    return this.containers.dir(namespace, id);
  }

  /** The saved config and state of a container (undefined for one made before configs were kept). */
  saved(namespace: string, id: string): { config: ContainerConfig; state: ContainerState } | undefined {
    const dir = this.containers.dir(namespace, id);
    const config = readConfig(dir);
    return config ? { config, state: readState(dir) } : undefined;
  }

  /** Containers with a saved config and no bundle: stopped by a reboot or a failed restart (listed as exited). */
  async exitedContainers(namespace?: string): Promise<{ namespace: string; id: string }[]> {
    return (await this.finishTeardowns(namespace)).exited;
  }

  private exitedTask(namespace: string, id: string): ExitedTask | undefined {
    const saved = this.saved(namespace, id);
    if (!saved) return undefined;
    const { path } = bundlePaths(this.o.root, this.o.state, namespace, id);
    const shimBinary = () => resolveShimBinary(saved.config.runtime, this.o.selfDir === undefined ? {} : { selfDir: this.o.selfDir });
    return new ExitedTask(namespace, id, path, metaOf(saved.config, { recordDir: this.containers.dir(namespace, id), id, shimBinary }), saved.state, {
      start: () => this.restart(namespace, id),
      remove: () => this.removeExited(namespace, id),
    });
  }

  private async removeExited(namespace: string, id: string): Promise<ExitInfo> {
    const exit = this.saved(namespace, id)?.state.lastExit;
    await this.teardown(loadBundle(this.o.state, namespace, id), async () => {});
    return { pid: 0, exitStatus: exit?.status ?? 255, exitedAt: exit ? new Date(exit.at) : new Date() };
  }

  /** Closes every shim connection without touching the shims (they keep running). */
  close(): void {
    this.unsubscribe();
    for (const conn of this.conns.values()) {
      for (const t of [...conn.tasks]) {
        this.tasks.delete(t.namespace, t.id);
        t.release();
      }
      conn.client.close();
    }
    this.conns.clear();
  }

  private async loadExistingTasks(): Promise<void> {
    await this.finishTeardowns();
    await Promise.all(
      listNamespaces(this.o.state).map(async (ns) => {
        try {
          validateNamespace(ns);
          await Promise.all(listBundleIds(this.o.state, ns).map((id) => this.loadTask(ns, id, true)));
          this.cleanupWorkDirs(ns);
        } catch (err) {
          this.log.error({ namespace: ns, err: errorMessage(err) }, "loading tasks in namespace");
        }
      }),
    );
  }

  private async loadTask(namespace: string, id: string, cleanup: boolean): Promise<void> {
    let bundle: Bundle;
    try {
      bundle = loadBundle(this.o.state, namespace, id);
    } catch (err) {
      this.log.error({ namespace, id, err: errorMessage(err) }, "skipping bundle with an invalid name");
      return;
    }
    let entries: string[];
    try {
      entries = readdirSync(bundle.path);
    } catch (err) {
      this.log.error({ id, err: errorMessage(err) }, "read bundle");
      if (cleanup) await this.tryDeleteBundle(bundle);
      return;
    }
    if (entries.length === 0) {
      if (cleanup) await this.tryDeleteBundle(bundle);
      return;
    }
    const fg = readForeground(bundle.path);
    if (fg) return this.loadForeground(bundle, fg, cleanup);
    const binary = readShimBinary(bundle);
    const meta = readMeta(bundle) ?? { runtime: binary ?? "", labels: {}, created: "" };
    let shimLog: ShimLog | undefined;
    try {
      const address = readAddress(bundle);
      const conn = await this.connection(address, namespace, this.o.loadTimeoutMs ?? LOAD_TIMEOUT_MS);
      shimLog = entries.includes("log") ? new ShimLog(bundle, this.log) : undefined;
      const task = new ShimTask(bundle, conn, binary ?? "", meta, shimLog);
      try {
        const { taskPid } = await task.connect(this.o.loadTimeoutMs ?? LOAD_TIMEOUT_MS);
        // A grouped shim answers Connect for any id (it may be about to be created there): a task
        // it deleted while we were down (pid 0, State NotFound) must not come back as a ghost.
        if (taskPid === 0) await task.state("", this.o.loadTimeoutMs ?? LOAD_TIMEOUT_MS);
      } catch (err) {
        task.release();
        throw err;
      }
      this.tasks.add(task);
      this.unreachable.delete(taskKey(namespace, id));
    } catch (err) {
      shimLog?.close();
      if (!cleanup) {
        this.unreachable.set(taskKey(namespace, id), { bundle, meta: readMeta(bundle), error: errorMessage(err) });
        return;
      }
      this.log.warn({ namespace, id, err: errorMessage(err) }, "cannot load shim; cleaning up");
      // Unlike containerd (which has no listed task to report here), bunker reports the exit:
      // the restart must not lose it.
      await this.cleanupAfterDeadShim(bundle, binary, true);
    }
  }

  /** A foreground container's CLI lives: leave it be. It died: clean up (at start-up) or list it as unreachable. */
  private async loadForeground(bundle: Bundle, fg: ForegroundRecord, cleanup: boolean): Promise<void> {
    if (ownerAlive(fg)) return;
    if (!cleanup) {
      this.unreachable.set(taskKey(bundle.namespace, bundle.id), { bundle, meta: readMeta(bundle), error: `its foreground bunker (pid ${fg.owner}) is gone` });
      return;
    }
    this.log.warn({ namespace: bundle.namespace, id: bundle.id, owner: fg.owner }, "foreground container lost its bunker; cleaning up");
    await this.removeOrphanForeground(bundle, fg).catch((err) => this.log.error({ id: bundle.id, err: errorMessage(err) }, "clean up foreground container"));
  }

  /** A bundle with nothing in it, or nothing readable: its teardown has no task to release. */
  private tryDeleteBundle(bundle: Bundle): Promise<void> {
    return this.tryTeardown(bundle, async () => {});
  }

  /** Removes work dirs of tasks that did not load (e.g. /run was wiped by a reboot). */
  cleanupWorkDirs(namespace: string): void {
    let dirs: string[];
    try {
      dirs = readdirSync(join(this.o.root, namespace));
    } catch (err) {
      if (isNotFound(err) || (err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    for (const d of dirs) {
      if (this.tasks.has(namespace, d)) continue;
      rmSync(join(this.o.root, namespace, d), { recursive: true, force: true });
    }
  }
}

/** What ps shows of a container that has no bundle (and so no bunker.json). */
function metaOf(c: ContainerConfig, where: { recordDir: string; id: string; shimBinary: () => string }): TaskMeta {
  const meta: TaskMeta = { runtime: c.runtime, labels: c.labels, created: "" };
  if (c.log) {
    try {
      const plan = planContainerLog(c.log, { recordDir: where.recordDir, id: where.id, shimBinary: where.shimBinary() });
      if (plan) Object.assign(meta, { logPath: plan.path, logDriver: plan.driver });
      else meta.logDriver = "none";
    } catch {
      // its runtime is gone from this host: logs has nothing to name
    }
  }
  if (c.image) meta.image = c.image.image;
  if (c.stopSignal) meta.stopSignal = c.stopSignal;
  if (c.stopTimeout) meta.stopTimeout = c.stopTimeout;
  return meta;
}

function anyBytes(any: Any): Uint8Array {
  // The shim reads a serialized google.protobuf.Any from stdin.
  return toBinary(AnySchema, any);
}
