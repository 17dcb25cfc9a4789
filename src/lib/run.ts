// bunker.run(image, options): `bunker run -d IMAGE` for a test. The image per the pull policy
// (errors become ImagePullError), its config applied to bunker's spec (images/run-spec.ts, as the
// CLI and the executor do), the library's labels, ports chosen free and published, then Create
// and Start through the bunker.v1 API. The container keeps its output in its json-file log (no
// stdio of ours: a detached container), which logs() and the log waits read. A create that lost
// a chosen port to another process is retried with fresh ports; anything that fails after the
// container exists removes it, so a failed run leaves nothing behind.
import { resolve as resolvePath } from "node:path";
import { InvalidArgumentError, isNotFound, NotFoundError } from "../errdefs.ts";
import { validateIdentifier } from "../identifiers.ts";
import type { Api } from "../api/client.ts";
import type { MountRequest, RunSpecFlags } from "../oci/run-options.ts";
import { cgroupParent } from "../runtime/paths.ts";
import { Container } from "./container.ts";
import { imageError } from "./errors.ts";
import { envList } from "./exec.ts";
import { type Network, networkHosts, noteMember } from "./network.ts";
import { parsePorts, type PortPlan, type PortRequest, publishSpecs, releaseChosen, withPortRetry } from "./ports.ts";
import { libLabels, notify } from "./tracking.ts";
import type { ContainerRef, ContainerTracker } from "./types.ts";
import { healthcheckCommand, type WaitFor, waitUntilReady } from "./wait.ts";
import type { ResolvedOptions } from "./client.ts";

/** A bind mount of a host path, or a tmpfs. */
export type Mount =
  | { type?: "bind"; source: string; target: string; readonly?: boolean }
  | { type: "tmpfs"; target: string; options?: string[] };

export interface RunOptions {
  /** The container's id (default: "bunker-" and 12 random hex digits). An existing one is AlreadyExists. */
  name?: string;
  /** The command (default the image's Cmd), after the entrypoint. */
  cmd?: readonly string[];
  /** Replaces the image's Entrypoint (and drops its Cmd, as docker's --entrypoint); "" clears it. */
  entrypoint?: string | readonly string[];
  env?: Readonly<Record<string, string>> | readonly string[];
  /** `{ [containerPort]: hostPort }`, 0 for a free port chosen here; "53/udp" keys for UDP. Implies network "bridge". */
  ports?: PortRequest;
  mounts?: readonly Mount[];
  /** docker's -v: "HOST:CONTAINER[:ro]" (a missing host dir is made). */
  volumes?: readonly string[];
  user?: string;
  workdir?: string;
  /** "bridge", a network's name (or a Network), "host", "none" (default: $BUNKER_NETWORK, else bridge). */
  network?: string | Network;
  hostname?: string;
  labels?: Readonly<Record<string, string>>;
  pull?: "missing" | "always" | "never";
  platform?: string;
  privileged?: boolean;
  /** Readiness: Wait.port(80), Wait.log(/ready/), Wait.exec([...]), Wait.healthcheck(), or several (all). */
  waitFor?: WaitFor;
  /** How long waitFor may take, in ms (default 60 s). */
  startupTimeout?: number;
  stopSignal?: string;
  /** Seconds stop() waits before SIGKILL (default 10). */
  stopTimeout?: number;
}

export interface Hooks {
  tracker: ContainerTracker | undefined;
  onRemoved: (c: Container) => void;
}

type Where = ResolvedOptions & { daemon: boolean };

const PORT_RETRIES = 5;

function randomId(): string {
  return `bunker-${Buffer.from(crypto.getRandomValues(new Uint8Array(6))).toString("hex")}`;
}

/** docker -v HOST:CONTAINER[:ro|rw]. */
export function parseVolume(spec: string): MountRequest {
  const parts = spec.split(":");
  const [source, target, mode] = parts;
  if (parts.length < 2 || parts.length > 3 || !source || !target) throw new InvalidArgumentError(`volume ${JSON.stringify(spec)} is not HOST:CONTAINER[:ro]`);
  if (mode !== undefined && mode !== "ro" && mode !== "rw") throw new InvalidArgumentError(`volume ${JSON.stringify(spec)}: mode must be ro or rw`);
  if (!target.startsWith("/")) throw new InvalidArgumentError(`volume ${JSON.stringify(spec)}: the container path must be absolute`);
  return { type: "bind", source: resolvePath(source), target, readonly: mode === "ro", propagation: "rprivate", createSource: true };
}

/** The run flags the library's options ask for (undefined when none: nothing to resolve). */
export function runSpecFlags(o: Pick<RunOptions, "mounts" | "volumes" | "privileged">): RunSpecFlags | undefined {
  const mounts: MountRequest[] = [
    ...(o.volumes ?? []).map(parseVolume),
    ...(o.mounts ?? []).map((m): MountRequest => {
      if (!m.target?.startsWith("/")) throw new InvalidArgumentError(`mount target ${JSON.stringify(m.target)} must be an absolute path`);
      if (m.type === "tmpfs") return { type: "tmpfs", target: m.target, options: [...(m.options ?? [])] };
      if (!m.source) throw new InvalidArgumentError(`bind mount to ${m.target} needs a source`);
      return { type: "bind", source: resolvePath(m.source), target: m.target, readonly: m.readonly === true, propagation: "rprivate", createSource: false };
    }),
  ];
  const flags: RunSpecFlags = { ...(mounts.length > 0 ? { mounts } : {}), ...(o.privileged ? { privileged: true } : {}) };
  return Object.keys(flags).length > 0 ? flags : undefined;
}

/** The network mode: ports need a bridge; a Network object is its name. */
export function networkMode(o: Pick<RunOptions, "network" | "ports">, env: string | undefined): string {
  const asked = typeof o.network === "object" ? o.network.name : o.network;
  const ports = Object.keys(o.ports ?? {}).length > 0;
  const mode = asked ?? (ports ? "bridge" : env || "bridge");
  if (ports && (mode === "none" || mode === "host" || mode.startsWith("container:"))) throw new InvalidArgumentError(`ports need a bridge network, not network ${JSON.stringify(mode)}`);
  return mode;
}

function entrypointOf(e: RunOptions["entrypoint"]): { entrypoint?: string; args: string[] } {
  if (e === undefined) return { args: [] };
  if (typeof e === "string") return { entrypoint: e, args: [] };
  if (e.length === 0) return { entrypoint: "", args: [] };
  return { entrypoint: e[0]!, args: e.slice(1) };
}

export async function startContainer(api: Api, w: Where, image: string, o: RunOptions, hooks: Hooks): Promise<Container> {
  if (typeof image !== "string" || image === "") throw new InvalidArgumentError("run needs an image name");
  const id = validateIdentifier(o.name ?? randomId(), "container name");
  const mode = networkMode(o, process.env.BUNKER_NETWORK);
  let plans = parsePorts(o.ports);
  const flags = runSpecFlags(o);
  const labels = libLabels(o.labels);
  for (const k of Object.keys(o.labels ?? {})) if (k.startsWith("bunker.lib")) throw new InvalidArgumentError(`label ${k}: bunker.lib* labels are the library's own`);
  const env = envList(o.env);
  const ep = entrypointOf(o.entrypoint);
  const [{ ImageStore }, { imageSpec, imageStopSignal, resolveRunSpec }, { topChainId }] = await Promise.all([
    import("../images/store.ts"),
    import("../images/run-spec.ts"),
    import("../images/image.ts"),
  ]);
  // host lookups of the mounts first: a bad one refuses the run before any pull
  const runOptions = flags ? await resolveRunSpec(flags, w.root) : undefined;
  const store = new ImageStore(w.root, { insecureRegistries: w.insecureRegistries });
  let img;
  try {
    img = await store.ensure(image, o.pull ?? "missing", o.platform ? { platform: o.platform } : {});
  } catch (err) {
    throw imageError(image, err);
  }
  // the container's name, so that what a peer was told (--add-host NAME) is what it calls itself
  // (docker's default, the id's first 12 characters, would cut "bunker-…" names short)
  const hostname = o.hostname ?? (id.length <= 63 ? id : id.slice(0, 12));
  const spec = await imageSpec(
    store,
    img,
    { namespace: w.namespace, id, cgroupParent: cgroupParent(w.address), terminal: false, hostname },
    {
      args: [...ep.args, ...(o.cmd ?? [])],
      env,
      ...(ep.entrypoint !== undefined ? { entrypoint: ep.entrypoint } : {}),
      ...(o.user !== undefined ? { user: o.user } : {}),
      ...(o.workdir !== undefined ? { cwd: o.workdir } : {}),
    },
    runOptions,
  );
  const healthcheck = healthcheckCommand((img.configJson.config as { Healthcheck?: { Test?: string[] } } | undefined)?.Healthcheck?.Test);
  const ref: ContainerRef = { id, namespace: w.namespace, root: w.root, state: w.state, address: w.address, labels, ...(w.daemon ? { daemon: w.address } : {}) };
  const call = { namespace: w.namespace, id };
  // told before the create: a process killed during it leaves a record the sweep can act on
  notify(hooks.tracker, "track", ref);
  let created = false;
  try {
    ({ plans } = await withPortRetry(plans, async (chosen) => {
      await api.create({
        ...call,
        image: img.name,
        snapshotParent: topChainId(img),
        spec: new TextEncoder().encode(JSON.stringify(spec)),
        network: mode,
        publish: publishSpecs(chosen),
        addHosts: networkHosts(mode),
        hostname,
        stopSignal: o.stopSignal ?? imageStopSignal(img) ?? "",
        stopTimeout: o.stopTimeout ?? 0,
        labels,
        // a detached container: its output goes to the json-file log logs() reads
        stdin: "",
        stdout: "",
        stderr: "",
      });
      created = true;
    }, PORT_RETRIES));
    await api.start(call);
    const t = (await api.list(call)).tasks[0];
    if (!t) throw new NotFoundError(`container ${id} vanished after its start`);
    if (t.logPath === "") throw new InvalidArgumentError(`container ${id} keeps no log (the runtime cannot write one)`);
    noteMember(mode, id, t.ips[0]);
    const c = new Container({ api, ref, ports: plans, ips: t.ips, logPath: t.logPath, healthcheck, tracker: hooks.tracker, onRemoved: hooks.onRemoved });
    if (o.waitFor) {
      const probe = c.probe();
      try {
        await waitUntilReady(o.waitFor, probe, o.startupTimeout !== undefined ? { timeoutMs: o.startupTimeout } : {});
      } catch (err) {
        await c.remove().catch(() => undefined);
        throw err;
      } finally {
        probe.close();
      }
    }
    return c;
  } catch (err) {
    if (created) {
      releaseChosen(plans);
      await api.delete({ ...call, force: true }).catch(() => undefined);
    }
    notify(hooks.tracker, "untrack", ref);
    throw err;
  }
}

/** A Container for an existing one (bunker.get): its published ports read back from the manager. */
export async function attach(api: Api, w: Where, id: string, hooks: Hooks): Promise<Container> {
  const t = (await api.list({ namespace: w.namespace, id }).catch((err: unknown) => {
    if (isNotFound(err)) throw new NotFoundError(`container ${id} not found`);
    throw err;
  })).tasks[0];
  if (!t) throw new NotFoundError(`container ${id} not found`);
  const plans: PortPlan[] = t.ports.flatMap((p) => {
    const m = /^(?:.*:)?(\d+)->(\d+)\/(tcp|udp)$/.exec(p);
    return m ? [{ hostPort: Number(m[1]), containerPort: Number(m[2]), protocol: m[3] as "tcp" | "udp", chosen: false }] : [];
  });
  const ref: ContainerRef = { id, namespace: w.namespace, root: w.root, state: w.state, address: w.address, labels: t.labels, ...(w.daemon ? { daemon: w.address } : {}) };
  return new Container({ api, ref, ports: plans, ips: t.ips, logPath: t.logPath, healthcheck: undefined, tracker: hooks.tracker, onRemoved: hooks.onRemoved });
}
