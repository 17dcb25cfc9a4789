// The CLI commands on top of the bunker.v1 API (daemon or embedded, see src/api/client.ts).
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { existsSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { InvalidArgumentError, isNotFound, NotFoundError } from "../errdefs.ts";
import { applyShimGroup, loadRuntimeConfig } from "../config/runtime-config.ts";
import { resolveRuntime } from "../executor/request.ts";
import type { TaskInfo } from "../gen/bunker/v1/api_pb.ts";
import { Status } from "../gen/containerd/types/task/task_pb.ts";
import { validateIdentifier, validateNamespace } from "../identifiers.ts";
import { cgroupParent } from "../runtime/paths.ts";
import { generateSpec } from "../oci/spec.ts";
import { applyRunOptions } from "../oci/run-options.ts";
import { familiarString, parseDockerRef } from "../registry/reference.ts";
import { sys } from "../sys/index.ts";
import { type Command, type GlobalOptions, parseSignal, type RunOptions } from "./args.ts";
import { type Api, startWatched } from "../api/client.ts";
import { openOutputFifos, type OutputFifos, StdinFifo, streamSink } from "../api/stdio.ts";
import { VERSION } from "../version.ts";
import { type AttachedTerminal, attachTerminal, withSignalProxy } from "./attach.ts";
import { commit, runcVersion } from "./install.ts";
import { stdout } from "./stdout.ts";

/** How long to wait for the last output after a process exited (a daemonized child may hold it). */
const DRAIN_MS = 2_000;
const encoder = new TextEncoder();

function out(line: string): void {
  stdout().write(line + "\n");
}

function fifos(terminal: boolean): OutputFifos {
  return openOutputFifos(sys(), tmpdir(), terminal, streamSink(stdout()), streamSink(process.stderr));
}

export async function run(api: Api, g: GlobalOptions, o: RunOptions): Promise<number> {
  // Checked here too, so a bad request creates nothing at all (not even our FIFOs).
  validateNamespace(g.namespace);
  validateIdentifier(o.id, "container id");
  if (o.log !== undefined && !existsSync(dirname(resolve(o.log)))) {
    // the shim would make the directory: a typo must not create paths on the host
    throw new NotFoundError(`--log ${o.log}: directory ${dirname(resolve(o.log))} does not exist`);
  }
  // Resolved before anything is made: an unknown runtime name or a bad options table creates nothing.
  const config = g.runtimeConfig === undefined ? undefined : await loadRuntimeConfig(g.runtimeConfig);
  const runtime = resolveRuntime(o.runtime, config);
  // the host lookups of -v, --device, --privileged, --init... (loaded only when a flag asks)
  const runOptions = o.runSpec ? await (await import("../oci/run-resolve.ts")).resolveRunOptions(o.runSpec, { root: g.root }) : undefined;
  const base = {
    namespace: g.namespace,
    id: o.id,
    cgroupParent: cgroupParent(g.address),
    terminal: o.tty,
    annotations: applyShimGroup(config, o.annotations),
  };
  let root: { rootfs: string } | { image: string; snapshotParent: string };
  let imageStop: string | undefined;
  let spec;
  if ("rootfs" in o.source) {
    const rootfs = resolve(o.source.rootfs);
    if (!existsSync(rootfs)) throw new NotFoundError(`rootfs ${rootfs} does not exist`);
    if (!statSync(rootfs).isDirectory()) throw new InvalidArgumentError(`rootfs ${rootfs} is not a directory`);
    spec = generateSpec({ ...base, args: o.args, env: o.env, ...(o.cwd ? { cwd: o.cwd } : {}) });
    if (runOptions) applyRunOptions(spec, runOptions);
    root = { rootfs };
  } else {
    const { prepareImageRun } = await import("./image-run.ts");
    const r = await prepareImageRun(g, o, o.source, base, runOptions);
    spec = r.spec;
    root = { image: r.image, snapshotParent: r.parent };
    imageStop = r.stopSignal;
  }
  const io = o.detach ? undefined : fifos(o.tty);
  // -i: the process reads our stdin through a FIFO beside the output ones (none: it gets /dev/null)
  const stdin = io && o.interactive ? new StdinFifo(sys(), join(io.dir, "stdin")) : undefined;
  const ref = { namespace: g.namespace, id: o.id };
  try {
    await api.create({
      ...ref,
      runtime: runtime.runtime,
      ...(runtime.options ? { runtimeOptions: runtime.options } : {}),
      ...root,
      network: o.network.mode,
      publish: o.network.publish,
      dns: o.network.dns,
      dnsSearch: o.network.dnsSearch,
      addHosts: o.network.addHosts,
      hostname: o.network.hostname ?? "",
      stopSignal: o.stopSignal ?? imageStop ?? "",
      restartPolicy: o.restart ?? "",
      stopTimeout: o.stopTimeout ?? 0,
      spec: encoder.encode(JSON.stringify(spec)),
      stdin: stdin?.path ?? "",
      stdout: io?.stdout ?? "",
      stderr: io?.stderr ?? "",
      terminal: o.tty,
      labels: o.labels,
      logPath: o.log ? resolve(o.log) : "",
      logDriver: o.logDriver ?? "",
      logOptions: o.logOptions ?? {},
    });
  } catch (err) {
    stdin?.close();
    io?.dispose();
    throw err;
  }
  if (!io) {
    try {
      await api.start(ref);
    } catch (err) {
      await api.delete({ ...ref, force: true }).catch(() => undefined);
      throw err;
    }
    return 0;
  }
  let terminal: AttachedTerminal | undefined;
  try {
    return await withSignalProxy(
      (signal) => api.kill({ ...ref, signal }).then(() => undefined),
      async () => {
        // the pty exists since Create: the process starts with our window size, not 0x0
        if (o.tty) terminal = await attachTerminal({ interactive: o.interactive === true, resize: (size) => api.resizePty({ ...ref, ...size }) });
        const { waiting } = await startWatched(api, ref, { force: true });
        io.releaseWriters();
        // at our stdin's EOF the shim is told to close the process's (it holds the FIFO open itself)
        const pumping = stdin
          ?.pump(Bun.stdin.stream(), waiting.catch(() => undefined))
          .then(() => api.closeStdin(ref))
          .catch(() => undefined);
        const exit = await waiting;
        await io.drain(DRAIN_MS);
        await pumping;
        if (o.rm) await api.delete(ref);
        return exit.exitStatus;
      },
    );
  } finally {
    terminal?.detach();
    stdin?.close();
    io.dispose();
  }
}

export async function exec(api: Api, g: GlobalOptions, c: Extract<Command, { name: "exec" }>): Promise<number> {
  const ref = { namespace: g.namespace, id: c.id };
  const execId = c.execId ?? `exec-${Buffer.from(crypto.getRandomValues(new Uint8Array(6))).toString("hex")}`;
  validateIdentifier(execId, "exec id");
  const io = c.detach ? undefined : fifos(c.tty);
  // -i: as for run, the process reads our stdin through a FIFO (none: it gets /dev/null)
  const stdin = io && c.interactive ? new StdinFifo(sys(), join(io.dir, "stdin")) : undefined;
  const proc = { ...ref, execId };
  let terminal: AttachedTerminal | undefined;
  try {
    await api.exec({
      ...proc,
      process: encoder.encode(JSON.stringify({ args: c.args, env: c.env, ...(c.cwd ? { cwd: c.cwd } : {}) })),
      stdin: stdin?.path ?? "",
      stdout: io?.stdout ?? "",
      stderr: io?.stderr ?? "",
      terminal: c.tty,
    });
    if (!io) {
      await api.start(proc);
      return 0;
    }
    return await withSignalProxy(
      (signal) => api.kill({ ...proc, signal }).then(() => undefined),
      async () => {
        const { waiting } = await startWatched(api, proc);
        // an exec's pty is made by its Start (runc exec): resized from then on
        if (c.tty) terminal = await attachTerminal({ interactive: c.interactive === true, resize: (size) => api.resizePty({ ...proc, ...size }) });
        io.releaseWriters();
        const pumping = stdin
          ?.pump(Bun.stdin.stream(), waiting.catch(() => undefined))
          .then(() => api.closeStdin(proc))
          .catch(() => undefined);
        const exit = await waiting;
        await io.drain(DRAIN_MS);
        await pumping;
        await api.delete(proc);
        return exit.exitStatus;
      },
    );
  } finally {
    terminal?.detach();
    stdin?.close();
    io?.dispose();
  }
}

const STATUS_NAMES: Record<number, string> = {
  [Status.UNKNOWN]: "UNKNOWN",
  [Status.CREATED]: "CREATED",
  [Status.RUNNING]: "RUNNING",
  [Status.STOPPED]: "STOPPED",
  [Status.PAUSED]: "PAUSED",
  [Status.PAUSING]: "PAUSING",
};

/** `a=1,b=2`, sorted by key, as docker ps shows labels. */
export function formatLabels(labels: Readonly<Record<string, string>>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(",");
}

/** docker's familiar form (docker.io/library/busybox:latest -> busybox:latest); a digest name as it is. */
function shortImageName(name: string): string {
  try {
    return familiarString(parseDockerRef(name));
  } catch {
    return name;
  }
}

/** The lines of `bunker ps`: aligned columns, labels last (they are the widest and often empty). */
export function psLines(tasks: readonly TaskInfo[]): string[] {
  const rows = [["ID", "PID", "STATUS", "EXIT", "RUNTIME", "IMAGE", "PORTS", "LABELS"]];
  for (const t of tasks) {
    const exit = t.status === Status.STOPPED ? String(t.exitStatus) : "";
    rows.push([t.id, t.pid ? String(t.pid) : "-", STATUS_NAMES[t.status] ?? String(t.status), exit, t.runtime, t.image ? shortImageName(t.image) : "", t.ports.join(","), formatLabels(t.labels)]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join("   ").trimEnd());
}

/** What `ps` lists without -a: docker's running containers (paused ones are), and those nothing answers for. */
function listedByDefault(t: TaskInfo): boolean {
  return t.status === Status.RUNNING || t.status === Status.PAUSED || t.status === Status.PAUSING || t.status === Status.UNKNOWN;
}

export async function ps(api: Api, g: GlobalOptions, quiet: boolean, all: boolean): Promise<number> {
  const tasks = (await api.list({ namespace: g.namespace })).tasks.filter((t) => all || listedByDefault(t));
  if (quiet) {
    for (const t of tasks) out(t.id);
    return 0;
  }
  for (const line of psLines(tasks)) out(line);
  return 0;
}

/** docker wait: blocks until each container exits, printing its exit code. */
export async function wait(api: Api, g: GlobalOptions, ids: string[]): Promise<number> {
  for (const id of ids) {
    const r = await api.wait({ namespace: g.namespace, id });
    out(String(r.exitStatus));
  }
  return 0;
}

/** The parts of an OCI spec docker inspect shows (its Config and Mounts). */
interface SpecView {
  process?: { args?: string[]; env?: string[]; cwd?: string; user?: { uid?: number; gid?: number }; terminal?: boolean };
  hostname?: string;
  root?: { readonly?: boolean };
  mounts?: { destination: string; type?: string; source?: string; options?: string[] }[];
}

/** Mounts a user asked for (binds and tmpfs), not the ones every container gets (/proc, /dev, ...). */
const DEFAULT_DESTINATIONS = new Set(["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup", "/run"]);

function specView(bytes: Uint8Array): SpecView {
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as SpecView;
  } catch {
    return {};
  }
}

/** `inspect`: what the manager knows of each container, as JSON (docker inspect's fields that apply). */
export async function inspect(api: Api, g: GlobalOptions, ids: string[]): Promise<number> {
  const docs = [];
  for (const id of ids) {
    const t = (await api.list({ namespace: g.namespace, id, withSpec: true })).tasks[0];
    if (!t) throw new NotFoundError(`container ${id} not found`);
    const spec = specView(t.spec);
    const [policy, retries] = (t.restartPolicy || "no").split(":");
    docs.push({
      Id: t.id,
      Namespace: t.namespace,
      Created: t.createdAt ? timestampDate(t.createdAt).toISOString() : null,
      Runtime: t.runtime,
      Image: t.image,
      State: {
        Status: STATUS_NAMES[t.status] ?? String(t.status),
        Running: t.status === Status.RUNNING,
        Paused: t.status === Status.PAUSED,
        Pid: t.pid,
        ExitCode: t.status === Status.STOPPED ? t.exitStatus : null,
        StartedAt: t.startedAt ? timestampDate(t.startedAt).toISOString() : null,
        FinishedAt: t.exitedAt ? timestampDate(t.exitedAt).toISOString() : null,
      },
      RestartCount: t.restartCount,
      HostConfig: { RestartPolicy: { Name: policy, MaximumRetryCount: Number(retries ?? 0) }, ReadonlyRootfs: spec.root?.readonly === true, LogConfig: { Type: t.logDriver || (t.logPath ? "file" : "none") } },
      NetworkSettings: { Network: t.network, IPAddresses: t.ips, Ports: t.ports },
      Config: {
        Cmd: spec.process?.args ?? [],
        Env: spec.process?.env ?? [],
        WorkingDir: spec.process?.cwd ?? "",
        User: spec.process?.user ? `${spec.process.user.uid ?? 0}:${spec.process.user.gid ?? 0}` : "",
        Tty: spec.process?.terminal === true,
        Hostname: spec.hostname ?? "",
        StopSignal: t.stopSignal || "SIGTERM",
        StopTimeout: t.stopTimeout || 10,
        Labels: t.labels,
      },
      Mounts: (spec.mounts ?? [])
        .filter((m) => !DEFAULT_DESTINATIONS.has(m.destination) && !m.destination.startsWith("/etc/"))
        .map((m) => ({ Type: m.type === "tmpfs" ? "tmpfs" : "bind", Source: m.source ?? "", Destination: m.destination, RW: !(m.options ?? []).includes("ro") })),
      Labels: t.labels,
      LogPath: t.logPath,
      Bundle: t.bundle,
    });
  }
  out(JSON.stringify(docs, null, 2));
  return 0;
}

/** docker kill: each container signalled and named on stdout; a failure is one line and exit 1, the rest still go. */
export async function kill(api: Api, g: GlobalOptions, c: Extract<Command, { name: "kill" }>): Promise<number> {
  let code = 0;
  for (const id of c.ids) {
    try {
      await api.kill({ namespace: g.namespace, id, signal: c.signal, all: c.all });
      out(id);
    } catch (err) {
      process.stderr.write(`bunker: kill ${id}: ${(err instanceof Error ? err.message : String(err)).split("\n")[0]}\n`);
      code = 1;
    }
  }
  return code;
}

export async function rm(api: Api, g: GlobalOptions, c: Extract<Command, { name: "rm" }>): Promise<number> {
  let code = 0;
  for (const id of c.ids) {
    try {
      await api.delete({ namespace: g.namespace, id, force: c.force });
    } catch (err) {
      // docker and nerdctl: rm -f of a container that does not exist is not an error
      if (c.force && isNotFound(err)) continue;
      process.stderr.write(`bunker: rm ${id}: ${err instanceof Error ? err.message : String(err)}\n`);
      code = 1;
    }
  }
  return code;
}

export async function logs(api: Api, g: GlobalOptions, c: Extract<Command, { name: "logs" }>): Promise<number> {
  // its own module: json-file parsing, rotation and -f are loaded only by `bunker logs`
  const { logs } = await import("./logs.ts");
  return await logs(api, g, c);
}

export async function version(api: Api | undefined): Promise<number> {
  out(`bunker ${VERSION}`);
  out(`commit ${commit()}`);
  out(`bun ${Bun.version}`);
  out(runcVersion());
  if (api) {
    const v = await api.version({});
    out(`daemon ${v.version}`);
  }
  return 0;
}
