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
import { familiarString, parseDockerRef } from "../registry/reference.ts";
import { sys } from "../sys/index.ts";
import { type Command, type GlobalOptions, parseSignal, type RunOptions } from "./args.ts";
import type { Api } from "../api/client.ts";
import { openOutputFifos, type OutputFifos, StdinFifo, streamSink } from "../api/stdio.ts";
import { VERSION } from "../version.ts";
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

/** Forwards our SIGINT/SIGTERM/SIGHUP to the process while `body` runs (ctr's sig-proxy). */
async function withSignalProxy<T>(send: (signal: number) => Promise<void>, body: () => Promise<T>): Promise<T> {
  const handlers: [NodeJS.Signals, () => void][] = [
    ["SIGINT", () => void send(2).catch(() => undefined)],
    ["SIGTERM", () => void send(15).catch(() => undefined)],
    ["SIGHUP", () => void send(1).catch(() => undefined)],
  ];
  for (const [s, h] of handlers) process.on(s, h);
  try {
    return await body();
  } finally {
    for (const [s, h] of handlers) process.off(s, h);
  }
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
    root = { rootfs };
  } else {
    const { prepareImageRun } = await import("./image-run.ts");
    const r = await prepareImageRun(g, o, o.source, base);
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
  try {
    return await withSignalProxy(
      (signal) => api.kill({ ...ref, signal }).then(() => undefined),
      async () => {
        // Wait before Start: a fast process must not exit unobserved.
        const waiting = api.wait(ref);
        try {
          await api.start(ref);
        } catch (err) {
          waiting.catch(() => undefined);
          await api.delete({ ...ref, force: true }).catch(() => undefined);
          throw err;
        }
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
    stdin?.close();
    io.dispose();
  }
}

export async function exec(api: Api, g: GlobalOptions, c: Extract<Command, { name: "exec" }>): Promise<number> {
  const ref = { namespace: g.namespace, id: c.id };
  const execId = c.execId ?? `exec-${Buffer.from(crypto.getRandomValues(new Uint8Array(6))).toString("hex")}`;
  validateIdentifier(execId, "exec id");
  const io = c.detach ? undefined : fifos(c.tty);
  try {
    await api.exec({
      ...ref,
      execId,
      process: encoder.encode(JSON.stringify({ args: c.args, env: c.env, ...(c.cwd ? { cwd: c.cwd } : {}) })),
      stdout: io?.stdout ?? "",
      stderr: io?.stderr ?? "",
      terminal: c.tty,
    });
    if (!io) {
      await api.start({ ...ref, execId });
      return 0;
    }
    const waiting = api.wait({ ...ref, execId });
    try {
      await api.start({ ...ref, execId });
    } catch (err) {
      waiting.catch(() => undefined);
      await api.delete({ ...ref, execId }).catch(() => undefined);
      throw err;
    }
    io.releaseWriters();
    const exit = await withSignalProxy((signal) => api.kill({ ...ref, execId, signal }).then(() => undefined), () => waiting);
    await io.drain(DRAIN_MS);
    await api.delete({ ...ref, execId });
    return exit.exitStatus;
  } finally {
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

export async function ps(api: Api, g: GlobalOptions, quiet: boolean): Promise<number> {
  const { tasks } = await api.list({ namespace: g.namespace });
  if (quiet) {
    for (const t of tasks) out(t.id);
    return 0;
  }
  for (const line of psLines(tasks)) out(line);
  return 0;
}

/** docker stop: the container's stop signal, then SIGKILL to all its processes after the timeout; it stays, stopped. */
export async function stop(api: Api, g: GlobalOptions, c: Extract<Command, { name: "stop" }>): Promise<number> {
  let code = 0;
  for (const id of c.ids) {
    try {
      const t = (await api.list({ namespace: g.namespace, id })).tasks[0];
      if (!t) throw new NotFoundError(`container ${id} not found`);
      if (t.status === Status.RUNNING || t.status === Status.PAUSED || t.status === Status.PAUSING) {
        const ref = { namespace: g.namespace, id };
        const waiting = api.wait(ref);
        waiting.catch(() => undefined);
        const seconds = c.timeout ?? (t.stopTimeout || 10);
        if (seconds > 0) await api.kill({ ...ref, signal: parseSignal(t.stopSignal || "TERM") });
        let timer: Timer | undefined;
        const stopped = await Promise.race([waiting.then(() => true), new Promise<false>((r) => (timer = setTimeout(() => r(false), seconds * 1000)))]);
        clearTimeout(timer);
        if (!stopped) {
          await api.kill({ ...ref, signal: 9, all: true });
          await waiting;
        }
      }
      out(id);
    } catch (err) {
      process.stderr.write(`bunker: stop ${id}: ${err instanceof Error ? err.message : String(err)}\n`);
      code = 1;
    }
  }
  return code;
}

/** docker wait: blocks until each container exits, printing its exit code. */
export async function wait(api: Api, g: GlobalOptions, ids: string[]): Promise<number> {
  for (const id of ids) {
    const r = await api.wait({ namespace: g.namespace, id });
    out(String(r.exitStatus));
  }
  return 0;
}

/** `inspect`: what the manager knows of each container, as JSON (docker inspect's fields that apply). */
export async function inspect(api: Api, g: GlobalOptions, ids: string[]): Promise<number> {
  const docs = [];
  for (const id of ids) {
    const t = (await api.list({ namespace: g.namespace, id })).tasks[0];
    if (!t) throw new NotFoundError(`container ${id} not found`);
    docs.push({
      Id: t.id,
      Namespace: t.namespace,
      Runtime: t.runtime,
      Image: t.image,
      State: {
        Status: STATUS_NAMES[t.status] ?? String(t.status),
        Running: t.status === Status.RUNNING,
        Pid: t.pid,
        ExitCode: t.status === Status.STOPPED ? t.exitStatus : null,
        FinishedAt: t.exitedAt ? timestampDate(t.exitedAt).toISOString() : null,
      },
      NetworkSettings: { Network: t.network, IPAddresses: t.ips, Ports: t.ports },
      Config: { StopSignal: t.stopSignal || "SIGTERM", StopTimeout: t.stopTimeout || 10 },
      Labels: t.labels,
      LogPath: t.logPath,
      Bundle: t.bundle,
    });
  }
  out(JSON.stringify(docs, null, 2));
  return 0;
}

export async function kill(api: Api, g: GlobalOptions, c: Extract<Command, { name: "kill" }>): Promise<number> {
  await api.kill({ namespace: g.namespace, id: c.id, signal: c.signal, all: c.all });
  return 0;
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

export async function events(api: Api, g: GlobalOptions): Promise<number> {
  // Loaded here: JSON rendering of protobuf is the heaviest code the CLI has, and only this uses it.
  const [{ createRegistry, toJson }, { file_containerd_events_task }, { unpackAnyWith }] = await Promise.all([
    import("@bufbuild/protobuf"),
    import("../gen/containerd/events/task_pb.ts"),
    import("../ttrpc/any.ts"),
  ]);
  const eventRegistry = createRegistry(file_containerd_events_task);
  let after = 0n;
  for (;;) {
    const r = await api.events({ after, timeoutMs: 30_000, namespace: g.namespace });
    for (const e of r.events) {
      let event: unknown = { typeUrl: e.event?.typeUrl };
      try {
        if (e.event) {
          const msg = unpackAnyWith(e.event, eventRegistry);
          event = toJson(eventRegistry.getMessage(msg.$typeName)!, msg, { registry: eventRegistry });
        }
      } catch {
        // an event type we do not know: print its type only
      }
      const timestamp = e.timestamp ? timestampDate(e.timestamp).toISOString() : "";
      out(JSON.stringify({ seq: Number(e.seq), timestamp, namespace: e.namespace, topic: e.topic, event }));
    }
    after = r.last > after ? r.last : after;
  }
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
