// The bunker.v1.Bunker service on top of the task manager. `bunker daemon` serves it over ttrpc;
// the embedded CLI calls the very same handlers in-process, so both paths behave alike.
import { create } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { existsSync, readFileSync, statSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, NotImplementedError, UnavailableError, errorMessage } from "../errdefs.ts";
import { Bunker, type TaskInfo, TaskInfoSchema } from "../gen/bunker/v1/api_pb.ts";
import { Status } from "../gen/containerd/types/task/task_pb.ts";
import { MountSchema } from "../gen/containerd/types/mount_pb.ts";
import { validateIdentifier, validateNamespace } from "../identifiers.ts";
import type { ServiceImpl } from "../ttrpc/index.ts";
import type { TaskManager } from "../runtime/manager.ts";
import { execProcess, type OciSpec } from "../oci/spec.ts";
import { killForeground, type LiveForeground } from "../runtime/foreground.ts";
import { readMeta } from "../runtime/meta.ts";
import { pidAlive } from "../proc.ts";
import { VERSION } from "../version.ts";

/** The runtime of a CreateRequest that names none: bunker's own shim. */
import { BUNKER_RUNTIME } from "../contract/runtime.ts";
import { CONFIG_FILE } from "../contract/bundle.ts";
export const DEFAULT_RUNTIME = BUNKER_RUNTIME;
/** containerd's typeurl name for an OCI process (its value is JSON). */
export const PROCESS_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process";
const STATE_TIMEOUT_MS = 2_000;
/** How long rm -f waits for a foreground container's CLI to remove it after SIGKILL. */
const FOREGROUND_GONE_MS = 10_000;

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

function checkSpec(spec: Uint8Array): void {
  try {
    const parsed = JSON.parse(new TextDecoder().decode(spec)) as unknown;
    if (typeof parsed !== "object" || parsed === null) throw new Error("not an object");
  } catch (err) {
    throw new InvalidArgumentError(`the OCI spec is not valid JSON: ${errorMessage(err)}`);
  }
}

function isRunning(s: Status): boolean {
  return s === Status.RUNNING || s === Status.PAUSED || s === Status.PAUSING;
}

/** rm of a foreground container: only forced, and done by its own CLI once runc reports the kill. */
async function removeForeground(fg: LiveForeground, force: boolean): Promise<{ pid: number; exitStatus: number }> {
  if (!force) throw new FailedPreconditionError(`task ${fg.id} is running: stop it first, or use rm -f`);
  await killForeground(fg.record, fg.id, 9, true);
  const deadline = Date.now() + FOREGROUND_GONE_MS;
  while (existsSync(fg.bundlePath)) {
    if (Date.now() > deadline) throw new UnavailableError(`task ${fg.id} was killed but bunker pid ${fg.record.owner} has not removed it yet`);
    await Bun.sleep(20);
  }
  return { pid: fg.pid, exitStatus: 137 };
}

export function bunkerService(m: TaskManager, o: ServiceOptions): ServiceImpl<typeof Bunker> {
  return {
    async create(req) {
      const namespace = ns(req.namespace);
      validateIdentifier(req.id, "container id");
      const rootfs = checkRootfs(req.rootfs);
      checkSpec(req.spec);
      let { stdout, stderr } = req;
      if (req.logPath !== "") {
        if (!isAbsolute(req.logPath)) throw new InvalidArgumentError(`log path ${JSON.stringify(req.logPath)} must be absolute`);
        // The shim appends both streams to the file (containerd's file:// stdio), so the log
        // outlives this process and the daemon.
        stdout = stderr = `file://${req.logPath}`;
      }
      const t = await m.create(namespace, req.id, {
        runtime: req.runtime || DEFAULT_RUNTIME,
        spec: req.spec,
        rootfs: [create(MountSchema, { type: "bind", source: rootfs, options: ["rbind", "rw"] })],
        stdin: req.stdin,
        stdout,
        stderr,
        terminal: req.terminal,
        ...(req.runtimeOptions ? { options: req.runtimeOptions } : {}),
        labels: req.labels,
        ...(req.logPath !== "" ? { logPath: req.logPath } : {}),
      });
      return { pid: t.pid };
    },

    async start(req) {
      const t = await m.lookup(ns(req.namespace), req.id);
      return { pid: await t.start(req.execId) };
    },

    async wait(req, ctx) {
      const t = await m.lookup(ns(req.namespace), req.id);
      const r = await t.wait(req.execId, ctx.signal);
      return { exitStatus: r.exitStatus, exitedAt: r.exitedAt };
    },

    async kill(req) {
      const fg = req.execId === "" ? m.liveForeground(ns(req.namespace), req.id) : undefined;
      if (fg) return void (await killForeground(fg.record, req.id, req.signal || 15, req.all));
      const t = await m.lookup(ns(req.namespace), req.id);
      await t.kill(req.signal || 15, req.all, req.execId);
    },

    async delete(req) {
      const namespace = ns(req.namespace);
      if (req.execId !== "") {
        const t = await m.lookup(namespace, req.id);
        const r = await t.deleteProcess(req.execId);
        return { pid: r.pid, exitStatus: r.exitStatus, exitedAt: r.exitedAt };
      }
      const fg = m.liveForeground(namespace, req.id);
      if (fg) return await removeForeground(fg, req.force);
      let t;
      try {
        t = await m.lookup(namespace, req.id);
      } catch (err) {
        if (!(err instanceof UnavailableError)) throw err;
        const exit = await m.cleanupDead(namespace, req.id);
        return { pid: exit.pid, exitStatus: exit.exitStatus };
      }
      const st = await t.state();
      if (isRunning(st.status)) {
        if (!req.force) throw new FailedPreconditionError(`task ${req.id} is running: stop it first, or use rm -f`);
        const waiting = t.wait();
        await t.kill(9, true);
        await waiting;
      }
      const exit = await m.deleteTask(namespace, req.id);
      return { pid: exit.pid, exitStatus: exit.exitStatus };
    },

    async exec(req) {
      const namespace = ns(req.namespace);
      validateIdentifier(req.execId, "exec id");
      const t = await m.lookup(namespace, req.id);
      const base = JSON.parse(readFileSync(join(t.bundle.path, CONFIG_FILE), "utf8")) as OciSpec;
      let wanted: Partial<OciSpec["process"]>;
      try {
        wanted = JSON.parse(new TextDecoder().decode(req.process)) as Partial<OciSpec["process"]>;
      } catch (err) {
        throw new InvalidArgumentError(`exec process is not valid JSON: ${errorMessage(err)}`);
      }
      const proc = { ...execProcess(base, wanted.args ?? [], req.terminal, wanted.env ?? []), ...(wanted.cwd ? { cwd: wanted.cwd } : {}) };
      const spec = create(AnySchema, { typeUrl: PROCESS_TYPE_URL, value: new TextEncoder().encode(JSON.stringify(proc)) });
      await t.exec(req.execId, spec, { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal });
    },

    async list(req) {
      const namespace = req.namespace === "" ? undefined : ns(req.namespace);
      if (o.embedded) await m.loadAll(namespace);
      const tasks = m.list(namespace).filter((t) => req.id === "" || t.id === req.id);
      const infos: TaskInfo[] = await Promise.all(
        tasks.map(async (t) => {
          const info = create(TaskInfoSchema, {
            namespace: t.namespace,
            id: t.id,
            runtime: t.meta.runtime,
            labels: t.meta.labels,
            logPath: t.meta.logPath ?? "",
            bundle: t.bundle.path,
            status: Status.UNKNOWN,
          });
          try {
            const st = await t.state("", STATE_TIMEOUT_MS);
            info.pid = st.pid;
            info.status = st.status;
            info.exitStatus = st.exitStatus;
            if (st.status === Status.STOPPED) info.exitedAt = st.exitedAt;
          } catch {
            // A shim that does not answer is listed as UNKNOWN rather than hidden.
          }
          return info;
        }),
      );
      for (const f of m.foreground(namespace)) {
        if (req.id !== "" && f.id !== req.id) continue;
        const meta = readMeta({ path: f.bundlePath });
        const status = f.pid > 0 && pidAlive(f.pid) ? Status.RUNNING : Status.CREATED;
        infos.push(create(TaskInfoSchema, { namespace: f.namespace, id: f.id, runtime: meta?.runtime ?? "", bundle: f.bundlePath, status, pid: f.pid, labels: meta?.labels ?? {} }));
      }
      for (const [, u] of m.unreachable) {
        if ((namespace && u.bundle.namespace !== namespace) || (req.id !== "" && u.bundle.id !== req.id)) continue;
        infos.push(create(TaskInfoSchema, { namespace: u.bundle.namespace, id: u.bundle.id, runtime: u.meta?.runtime ?? "", bundle: u.bundle.path, status: Status.UNKNOWN, labels: u.meta?.labels ?? {} }));
      }
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
