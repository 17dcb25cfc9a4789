// The bunker.v1.Bunker service on top of the task manager. `bunker daemon` serves it over ttrpc;
// the embedded CLI calls the very same handlers in-process, so both paths behave alike.
import { create } from "@bufbuild/protobuf";
import { AnySchema, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { statSync } from "node:fs";
import { isAbsolute } from "node:path";
import { InvalidArgumentError, NotFoundError, NotImplementedError, errorMessage } from "../errdefs.ts";
import { Bunker, type TaskInfo, TaskInfoSchema } from "../gen/bunker/v1/api_pb.ts";
import { MountSchema } from "../gen/containerd/types/mount_pb.ts";
import { validateIdentifier, validateNamespace } from "../identifiers.ts";
import type { ServiceImpl } from "../ttrpc/index.ts";
import type { TaskManager } from "../runtime/manager.ts";
import { execProcess, type OciSpec } from "../oci/spec.ts";
import { VERSION } from "../version.ts";
import { formatRestartPolicy, parseRestartPolicy } from "../containers/restart-policy.ts";

import { BUNKER_RUNTIME } from "../contract/runtime.ts";
import { readBundleSpec } from "../contract/bundle.ts";

/** The runtime of a CreateRequest that names none: bunker's own shim. */
export const DEFAULT_RUNTIME = BUNKER_RUNTIME;
/** containerd's typeurl name for an OCI process (its value is JSON). */
export const PROCESS_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process";
const STATE_TIMEOUT_MS = 2_000;

export interface ServiceOptions {
  /** In-process use by the CLI: no event log, tasks loaded on demand. */
  embedded: boolean;
}

function ns(value: string): string {
  return validateNamespace(value);
}

function checkRootfs(rootfs: string): string {
  if (rootfs === "") throw new InvalidArgumentError("a rootfs directory is required");
  if (!isAbsolute(rootfs)) throw new InvalidArgumentError(`rootfs ${JSON.stringify(rootfs)} must be an absolute path`);
  let st;
  try {
    st = statSync(rootfs);
  } catch {
    throw new NotFoundError(`rootfs ${rootfs} does not exist`);
  }
  if (!st.isDirectory()) throw new InvalidArgumentError(`rootfs ${rootfs} is not a directory`);
  return rootfs;
}

const CHAIN_ID = /^sha256:[0-9a-f]{64}$/;

/** The Create request's network fields, as the manager's network subsystem takes them. */
function networkRequest(req: { network: string; publish: string[]; dns: string[]; dnsSearch: string[]; addHosts: string[]; hostname: string }) {
  return {
    mode: req.network,
    publish: req.publish,
    dns: req.dns,
    dnsSearch: req.dnsSearch,
    addHosts: req.addHosts,
    ...(req.hostname !== "" ? { hostname: req.hostname } : {}),
  };
}

/** A container from an image names the image and its top snapshot, and no rootfs directory. */
function checkImage(image: string, parent: string, rootfs: string): { image: string; parent: string } | undefined {
  if (image === "" && parent === "") return undefined;
  if (rootfs !== "") throw new InvalidArgumentError("a container has a rootfs directory or an image, not both");
  if (image === "") throw new InvalidArgumentError("a snapshot parent needs its image's name");
  if (!CHAIN_ID.test(parent)) throw new InvalidArgumentError(`snapshot parent ${JSON.stringify(parent)} is not a chain ID (sha256:<64 hex>)`);
  return { image, parent };
}

function checkSpec(spec: Uint8Array): void {
  try {
    const parsed = JSON.parse(new TextDecoder().decode(spec)) as unknown;
    if (typeof parsed !== "object" || parsed === null) throw new Error("not an object");
  } catch (err) {
    throw new InvalidArgumentError(`the OCI spec is not valid JSON: ${errorMessage(err)}`);
  }
}

/** An exec's own user (docker exec -u, numeric as the OCI process has it); none keeps the container's. */
function execUser(user: unknown): { user?: { uid: number; gid: number } } {
  if (user === undefined || user === null) return {};
  const u = user as { uid?: unknown; gid?: unknown };
  const id = (v: unknown) => typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
  if (typeof user !== "object" || !id(u.uid) || !id(u.gid)) throw new InvalidArgumentError(`exec user ${JSON.stringify(user)} must be {uid, gid} numbers`);
  return { user: { uid: u.uid as number, gid: u.gid as number } };
}

/** A container's spec for inspect: its bundle's config.json, or the saved one when it has no bundle. */
function specOf(bundlePath: string, saved: string | undefined): Uint8Array {
  try {
    return new TextEncoder().encode(JSON.stringify(readBundleSpec(bundlePath)));
  } catch {
    return new TextEncoder().encode(saved ?? "");
  }
}

export function bunkerService(m: TaskManager, o: ServiceOptions): ServiceImpl<typeof Bunker> {
  return {
    async create(req) {
      const namespace = ns(req.namespace);
      validateIdentifier(req.id, "container id");
      const image = checkImage(req.image, req.snapshotParent, req.rootfs);
      const rootfs = image ? undefined : checkRootfs(req.rootfs);
      checkSpec(req.spec);
      // a detached container (no stdio of the caller's) keeps its output, docker's json-file by default
      const detached = req.stdin === "" && req.stdout === "" && req.stderr === "";
      if (req.logPath !== "" && !isAbsolute(req.logPath)) throw new InvalidArgumentError(`log path ${JSON.stringify(req.logPath)} must be absolute`);
      if (!detached && (req.logPath !== "" || req.logDriver !== "")) throw new InvalidArgumentError("a log driver or log file applies to a detached container (no stdio)");
      const restart = parseRestartPolicy(req.restartPolicy);
      const t = await m.create(namespace, req.id, {
        ...(restart.name !== "no" ? { restart } : {}),
        runtime: req.runtime || DEFAULT_RUNTIME,
        spec: req.spec,
        rootfs: rootfs ? [create(MountSchema, { type: "bind", source: rootfs, options: ["rbind", "rw"] })] : [],
        ...(image ? { image } : {}),
        ...(req.network !== "" ? { network: networkRequest(req) } : {}),
        ...(req.stopSignal !== "" ? { stopSignal: req.stopSignal } : {}),
        ...(req.stopTimeout > 0 ? { stopTimeout: req.stopTimeout } : {}),
        stdin: req.stdin,
        stdout: req.stdout,
        stderr: req.stderr,
        terminal: req.terminal,
        ...(req.runtimeOptions ? { options: req.runtimeOptions } : {}),
        labels: req.labels,
        ...(detached ? { log: { driver: req.logDriver, options: req.logOptions, ...(req.logPath !== "" ? { path: req.logPath } : {}) } } : {}),
      });
      return { pid: t.pid };
    },

    async start(req) {
      const t = await m.task(ns(req.namespace), req.id);
      return { pid: await t.start(req.execId) };
    },

    async wait(req, ctx) {
      const t = await m.task(ns(req.namespace), req.id);
      const r = await t.wait(req.execId, ctx.signal);
      return { exitStatus: r.exitStatus, ...(r.exitedAt ? { exitedAt: timestampFromDate(r.exitedAt) } : {}) };
    },

    async closeStdin(req) {
      const t = await m.task(ns(req.namespace), req.id);
      await t.closeStdin(req.execId);
    },

    async resizePty(req) {
      const t = await m.task(ns(req.namespace), req.id);
      // a zero size is what a client without a terminal would send: refused, not passed to the pty
      if (req.width === 0 || req.height === 0) throw new InvalidArgumentError(`a terminal size needs columns and rows (got ${req.width}x${req.height})`);
      if (req.width > 0xffff || req.height > 0xffff) throw new InvalidArgumentError(`terminal size ${req.width}x${req.height} is out of range`);
      await t.resizePty(req.execId, req.width, req.height);
    },

    async kill(req) {
      const t = await m.task(ns(req.namespace), req.id);
      // a user's stop or kill holds the restart policy (docker's HasBeenManuallyStopped), set before
      // the signal so that the exit it causes is never taken for a crash
      if (req.execId === "") m.noteUserStop(t.namespace, t.id);
      await t.kill(req.signal || 15, req.all, req.execId);
    },

    async delete(req) {
      // rm of a container whose teardown a crash cut short finishes it (its exit is unknown: 255)
      if (req.execId === "" && (await m.resumeTeardown(ns(req.namespace), req.id))) return { pid: 0, exitStatus: 255 };
      const t = await m.task(ns(req.namespace), req.id);
      if (req.execId !== "") {
        const r = await t.deleteProcess(req.execId);
        return { pid: r.pid, exitStatus: r.exitStatus, exitedAt: timestampFromDate(r.exitedAt) };
      }
      return await t.remove(req.force);
    },

    async exec(req) {
      const namespace = ns(req.namespace);
      validateIdentifier(req.execId, "exec id");
      const t = await m.task(namespace, req.id);
      let wanted: Partial<OciSpec["process"]>;
      try {
        wanted = JSON.parse(new TextDecoder().decode(req.process)) as Partial<OciSpec["process"]>;
      } catch (err) {
        throw new InvalidArgumentError(`exec process is not valid JSON: ${errorMessage(err)}`);
      }
      // built from the container's own spec, and only by a task that runs execs (not a foreground run or an orphan)
      const spec = () => {
        const base = readBundleSpec(t.bundlePath) as unknown as OciSpec;
        const proc = { ...execProcess(base, wanted.args ?? [], req.terminal, wanted.env ?? []), ...(wanted.cwd ? { cwd: wanted.cwd } : {}), ...execUser(wanted.user) };
        return create(AnySchema, { typeUrl: PROCESS_TYPE_URL, value: new TextEncoder().encode(JSON.stringify(proc)) });
      };
      await t.exec(req.execId, spec, { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal });
    },

    async pause(req) {
      await (await m.task(ns(req.namespace), req.id)).pause();
    },

    async resume(req) {
      await (await m.task(ns(req.namespace), req.id)).resume();
    },

    async stats(req) {
      const stats = await (await m.task(ns(req.namespace), req.id)).stats();
      return stats ? { stats } : {};
    },

    async top(req) {
      return { pids: await (await m.task(ns(req.namespace), req.id)).pids() };
    },

    async list(req) {
      const namespace = req.namespace === "" ? undefined : ns(req.namespace);
      const tasks = (await m.list(namespace, { load: o.embedded })).filter((t) => req.id === "" || t.id === req.id);
      const infos: TaskInfo[] = await Promise.all(
        tasks.map(async (t) => {
          const st = await t.status(STATE_TIMEOUT_MS);
          const saved = m.saved(t.namespace, t.id);
          const created = t.meta?.created || undefined;
          const started = saved?.state.startedAt;
          return create(TaskInfoSchema, {
            restartPolicy: saved ? formatRestartPolicy(saved.config.restart) : "",
            restartCount: saved?.state.restartCount ?? 0,
            ...(created ? { createdAt: timestampFromDate(new Date(created)) } : {}),
            ...(started ? { startedAt: timestampFromDate(new Date(started)) } : {}),
            ...(req.withSpec ? { spec: specOf(t.bundlePath, saved?.config.spec) } : {}),
            namespace: t.namespace,
            id: t.id,
            runtime: t.meta?.runtime ?? "",
            labels: t.meta?.labels ?? {},
            logPath: t.meta?.logPath ?? "",
            logDriver: t.meta?.logDriver ?? "",
            image: t.meta?.image ?? "",
            network: t.meta?.network?.network ?? "",
            ips: t.meta?.network?.ips ?? [],
            ports: t.meta?.network?.ports ?? [],
            stopSignal: t.meta?.stopSignal ?? "",
            stopTimeout: t.meta?.stopTimeout ?? 0,
            bundle: t.bundlePath,
            status: st.status,
            pid: st.pid,
            exitStatus: st.exitStatus,
            ...(st.exitedAt ? { exitedAt: timestampFromDate(st.exitedAt) } : {}),
          });
        }),
      );
      infos.sort((a, b) => (a.namespace + "/" + a.id < b.namespace + "/" + b.id ? -1 : 1));
      if (req.id !== "" && infos.length === 0) throw new NotFoundError(`task ${req.id} not found`);
      return { tasks: infos };
    },

    async events(req, ctx) {
      if (o.embedded) throw new NotImplementedError("events need a running daemon (bunker daemon)");
      const filter = { ...(req.namespace ? { namespace: req.namespace } : {}), topics: req.topics };
      await m.events.poll(req.after, filter, Math.min(req.timeoutMs, 60_000), ctx.signal);
      // Read the log and its head in one synchronous step, so `last` never skips an event.
      const found = m.events.since(req.after, filter);
      return {
        events: found.map((e) => ({ seq: e.seq, timestamp: { seconds: BigInt(Math.floor(e.timestamp.getTime() / 1000)), nanos: (e.timestamp.getTime() % 1000) * 1e6 }, namespace: e.namespace, topic: e.topic, event: e.event })),
        last: m.events.last,
      };
    },

    version() {
      return { version: VERSION, revision: "" };
    },
  };
}
