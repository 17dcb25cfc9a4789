// `bunker run --rm` with no daemon and the default runtime: the container runs under `runc run` in
// the foreground, supervised by this process alone (see src/runtime/foreground.ts for why and for
// how other bunkers see it). Keep the imports light: this path exists to start fast, and loading
// protobuf descriptors or pino would cost more than the whole container.
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { constants } from "node:os";
import { join, resolve } from "node:path";
import { AlreadyExistsError, InvalidArgumentError, NotFoundError, UnknownError } from "../errdefs.ts";
import { validateIdentifier, validateNamespace } from "../identifiers.ts";
import { FOREGROUND_PID_FILE, FOREGROUND_RUNTIME, foregroundPid, type ForegroundRecord, foregroundRuncRoot, releaseForegroundTask, writeForeground } from "../runtime/foreground.ts";
import { type ContainerLayers, type ContainerNetworks, ContainerStore, killAt, type NetworkSetup, stepsFor } from "../containers/record.ts";
import { processStartTime } from "../proc.ts";
import { makeBundleDir } from "../runtime/bundle.ts";
import { readMeta, writeMeta } from "../runtime/meta.ts";
import { cgroupParent, DEFAULT_SEARCH_PATH } from "../runtime/paths.ts";
import { generateSpec, type OciSpec, withNetwork } from "../oci/spec.ts";
import { applyRunOptions, type RunSpecOptions } from "../oci/run-options.ts";
import type { GlobalOptions, RunOptions } from "./args.ts";
import { CONFIG_FILE } from "../contract/bundle.ts";

/** Signals a terminal or `kill <bunker pid>` sends us, passed on to runc (which passes them on to the container). */
const FORWARDED: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"];

/** Whether this run can take the foreground path: embedded, removed at exit, default runtime, no tty or log file. */
export function foregroundEligible(g: GlobalOptions, o: RunOptions): boolean {
  return o.rm && !o.detach && !o.tty && o.runtime === undefined && o.log === undefined && g.runtimeConfig === undefined;
}

/** True when something accepts connections on the daemon's socket. */
export async function daemonListening(address: string): Promise<boolean> {
  if (!existsSync(address)) return false;
  try {
    const socket = await Bun.connect({ unix: address, socket: { data() {} } });
    socket.end();
    return true;
  } catch {
    return false;
  }
}

/** What the container's root is: a host directory runc takes where it is, or an image's layer mounted at <bundle>/rootfs. */
type Root = { rootfs: string; runOptions?: RunSpecOptions } | { image: ImageRoot };

interface ImageRoot {
  spec: OciSpec;
  image: string;
  parent: string;
  stopSignal?: string;
  layers: ContainerLayers;
}

function makeBundle(g: GlobalOptions, o: RunOptions, root: Root, rec: ForegroundRecord, containers: ContainerStore): string {
  const path = join(g.state, g.namespace, o.id);
  if (!makeBundleDir(path)) throw new AlreadyExistsError(`task ${g.namespace}/${o.id} already exists`);
  try {
    // the foreground record first: from then on every other bunker knows this bundle is ours and alive
    writeForeground(path, rec);
    // then the container record, whose teardown removes it all (also when this CLI is killed midway)
    containers.create(g.namespace, o.id, "image" in root ? { image: root.image.image, parent: root.image.parent } : undefined, { network: o.network.mode !== "none" });
    let config;
    if ("rootfs" in root) {
      // No mount of our own: runc takes the rootfs where it is, as `runc run` users give it.
      const spec = generateSpec({ namespace: g.namespace, id: o.id, cgroupParent: cgroupParent(g.address), args: o.args, env: o.env, annotations: o.annotations, rootfs: root.rootfs, ...(o.cwd ? { cwd: o.cwd } : {}) });
      config = root.runOptions ? applyRunOptions(spec, root.runOptions) : spec;
    } else {
      config = root.image.spec;
    }
    writeFileSync(join(path, CONFIG_FILE), JSON.stringify(config), { mode: 0o600 });
    const stopSignal = o.stopSignal ?? ("image" in root ? root.image.stopSignal : undefined);
    writeMeta({ path }, {
      runtime: FOREGROUND_RUNTIME,
      labels: o.labels,
      created: new Date().toISOString(),
      ...("image" in root ? { image: root.image.image } : {}),
      ...(stopSignal ? { stopSignal } : {}),
      ...(o.stopTimeout ? { stopTimeout: o.stopTimeout } : {}),
    });
  } catch (err) {
    containers.remove(g.namespace, o.id);
    rmSync(path, { recursive: true, force: true });
    throw err;
  }
  return path;
}

/**
 * The container's network, set up before runc runs and joined by the bundle's spec (the record's
 * network step releases it). `container:ID` joins a running container's namespace by its pid.
 */
async function joinNetwork(bundle: string, g: GlobalOptions, o: RunOptions, networks: ContainerNetworks): Promise<NetworkSetup> {
  let peer: { pid: number; namespace: string; id: string } | undefined;
  if (o.network.mode.startsWith("container:")) {
    const other = o.network.mode.slice("container:".length);
    validateIdentifier(other, "container id");
    peer = { pid: foregroundPid(join(g.state, g.namespace, other)) ?? 0, namespace: g.namespace, id: other };
  }
  const setup = await networks.setup(g.namespace, o.id, o.network, peer);
  const path = join(bundle, CONFIG_FILE);
  writeFileSync(path, JSON.stringify(withNetwork(JSON.parse(readFileSync(path, "utf8")) as object, setup)), { mode: 0o600 });
  return setup;
}

/** Mounts the container's own layer at <bundle>/rootfs (the record's snapshot step releases it). */
async function mountImageLayer(bundle: string, g: GlobalOptions, id: string, root: ImageRoot): Promise<void> {
  const target = join(bundle, "rootfs");
  mkdirSync(target, { recursive: true, mode: 0o711 });
  // a run --rm's layer is never mounted again: no sync of the whole disk at its unmount
  await root.layers.prepareMounted(g.namespace, id, root.parent, target, { volatile: true });
}

/**
 * Copies runc's stderr (which is the container's too) to ours as it comes. What arrives before
 * the container is known to run is held back: if runc fails to create it, that text is runc's
 * error, and we report it as one `bunker:` line instead.
 */
async function relayStderr(stream: ReadableStream<Uint8Array>, started: () => boolean): Promise<Uint8Array[]> {
  const held: Uint8Array[] = [];
  for await (const chunk of stream) {
    if (started()) {
      for (const h of held.splice(0)) process.stderr.write(h);
      process.stderr.write(chunk);
    } else {
      held.push(chunk);
    }
  }
  return held;
}

/** runc's own reason for failing: the last error of its JSON log, else the last line it printed. */
function runcError(logFile: string, held: Uint8Array[]): string {
  let msg = "";
  try {
    for (const line of readFileSync(logFile, "utf8").split("\n")) {
      if (!line) continue;
      const entry = JSON.parse(line) as { level?: string; msg?: string };
      if (entry.level === "error" && entry.msg) msg = entry.msg;
    }
  } catch {
    // no log (runc did not get that far): its stderr says why
  }
  msg ||= Buffer.concat(held).toString("utf8").trim().split("\n").pop() ?? "";
  return msg.replace(/^runc run failed: /, "") || "runc run failed with no message";
}

/** The bundle step: an image's layer is mounted at <bundle>/rootfs, and must be unmounted before the rm. */
async function removeBundle(bundle: string, mounted: boolean): Promise<void> {
  if (mounted) {
    const { sys } = await import("../sys/index.ts");
    sys().unmountAll(join(bundle, "rootfs"));
  }
  rmSync(bundle, { recursive: true, force: true });
}

/** Runs the container to its end; returns its exit status (128+signal when signalled), 125 when it never ran. */
export async function runForeground(g: GlobalOptions, o: RunOptions): Promise<number> {
  validateNamespace(g.namespace);
  validateIdentifier(o.id, "container id");
  let root: Root;
  const rootfs = "rootfs" in o.source ? resolve(o.source.rootfs) : undefined;
  if (rootfs !== undefined) {
    if (!existsSync(rootfs)) throw new NotFoundError(`rootfs ${rootfs} does not exist`);
    if (!statSync(rootfs).isDirectory()) throw new InvalidArgumentError(`rootfs ${rootfs} is not a directory`);
  }
  // the host lookups of -v, --device, --privileged, --init... (loaded only when a flag asks)
  const runOptions = o.runSpec ? await (await import("../oci/run-resolve.ts")).resolveRunOptions(o.runSpec, { root: g.root }) : undefined;
  if (rootfs !== undefined) {
    root = { rootfs, ...(runOptions ? { runOptions } : {}) };
  } else {
    const { prepareImageRun } = await import("./image-run.ts");
    const base = { namespace: g.namespace, id: o.id, cgroupParent: cgroupParent(g.address), annotations: o.annotations };
    root = { image: await prepareImageRun(g, o, o.source as Extract<RunOptions["source"], { image: string }>, base, runOptions) };
  }
  // as a shim finds it (the same default search path when PATH lacks it): run --rm and run -d agree
  const runc = Bun.which("runc") ?? Bun.which("runc", { PATH: DEFAULT_SEARCH_PATH });
  if (!runc) throw new NotFoundError(`runc not found in PATH or ${DEFAULT_SEARCH_PATH}`);
  const containers = new ContainerStore(g.root);
  const rec: ForegroundRecord = { owner: process.pid, ownerStart: processStartTime(process.pid) ?? "", runc, runcRoot: foregroundRuncRoot(g.state, g.namespace) };
  // --net none is runc's own empty namespace: nothing to set up, nothing to load
  const networks = o.network.mode === "none" ? undefined : (await import("../network/lazy-networks.ts")).lazyNetworks(g.root, g.state);
  const bundle = makeBundle(g, o, root, rec, containers);
  const pidFile = join(bundle, FOREGROUND_PID_FILE);
  const logFile = join(bundle, "runc.log");
  let sweeping: Promise<void> | undefined;
  try {
    // the layer and the network at once (mounts and CNI plugins, each tens of ms), both settled
    // before anything goes on: the teardown below must not race a setup still under way
    const made = await Promise.allSettled([
      "image" in root ? mountImageLayer(bundle, g, o.id, root.image) : undefined,
      networks ? joinNetwork(bundle, g, o, networks) : undefined,
    ]);
    for (const r of made) if (r.status === "rejected") throw r.reason;
    killAt("create:network");
    const net = made[1].status === "fulfilled" ? (made[1].value as NetworkSetup | undefined) : undefined;
    const meta = net?.summary ? readMeta({ path: bundle }) : undefined;
    if (meta && net?.summary) writeMeta({ path: bundle }, { ...meta, network: net.summary });
    const argv = [runc, "--root", rec.runcRoot, "--log", logFile, "--log-format", "json", "run", "--bundle", bundle, "--pid-file", pidFile, o.id];
    // pino only when asked for: loading it costs more than this whole path
    const log = g.debug ? (await import("./log.ts")).makeLogger({ debug: true, daemon: false }) : undefined;
    log?.debug({ argv }, "running in the foreground (no daemon, default runtime)");
    const proc = Bun.spawn(argv, {
      // docker's: the process reads our stdin only with -i; else it has none (EOF at once)
      stdin: o.interactive ? "inherit" : "ignore",
      stdout: "inherit",
      stderr: "pipe",
    });
    // while runc works, the layers earlier runs left to delete (see the snapshot step below) go
    sweeping = "image" in root ? root.image.layers.sweep?.() : undefined;
    const forward = (sig: NodeJS.Signals) => () => proc.kill(sig);
    const handlers = FORWARDED.map((s) => [s, forward(s)] as const);
    for (const [s, h] of handlers) process.on(s, h);
    try {
      // once runc wrote the pid file the container runs for good: no stat per chunk of a stderr flood
      let started = false;
      const [code, held] = await Promise.all([proc.exited, relayStderr(proc.stderr, () => (started ||= existsSync(pidFile)))]);
      log?.debug({ code, signal: proc.signalCode, pid: foregroundPid(bundle) }, "runc run ended");
      if (code !== 0 && !existsSync(pidFile)) throw new UnknownError(runcError(logFile, held));
      for (const h of held) process.stderr.write(h);
      // runc exits with the container's status; runc itself killed by a signal is 128+signal too.
      const sig = proc.signalCode;
      if (sig === null || sig === undefined) return code;
      return 128 + (typeof sig === "number" ? sig : (constants.signals[sig] ?? 0));
    } finally {
      for (const [s, h] of handlers) process.off(s, h);
    }
  } finally {
    // the record's teardown: runc run removed its state when the container ended (the task step then
    // runs nothing), the bundle goes, the record last. Unrecorded: if this CLI dies here, the bundle
    // names a dead owner and the orphan clean-up finishes the job through the full teardown.
    await containers.teardown(
      g.namespace,
      o.id,
      async (step) => {
        if (step === "task") await releaseForegroundTask(rec, o.id);
        // unmounted and out of the index now; its files are deleted by the next image run's sweep
        // (or prune), as containerd's snapshotter leaves removed dirs to its garbage collector
        else if (step === "snapshot") await (root as { image: ImageRoot }).image.layers.release(g.namespace, o.id, { deferDelete: true });
        else if (step === "network") await networks!.release(g.namespace, o.id);
        else await removeBundle(bundle, "image" in root);
      },
      { persist: false, steps: stepsFor({ image: "image" in root, network: networks !== undefined }) },
    );
    await sweeping;
  }
}
