// Shared set-up for the crash, soak and concurrency tests: a `bunker daemon` driven over its ttrpc
// API (so a task can be created and not started), a runc wrapper that runs the real
// /usr/sbin/runc but first sleeps on one action for chosen container ids (to hold a task "during
// start" or "during delete" long enough to kill something), and the leak checks every test ends
// with: runc state, bundle and work dirs, mounts, shim sockets, zombies, container processes.
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Bunker, type TaskInfo } from "../../src/gen/bunker/v1/api_pb.ts";
import { OptionsSchema } from "../../src/gen/containerd/runc/v1/options_pb.ts";
import { Status } from "../../src/gen/containerd/types/task/task_pb.ts";
import { generateSpec } from "../../src/oci/spec.ts";
import { socketAddress, socketPath } from "../../src/contract/address.ts";
import { NAMESPACE_GROUP_KEY } from "../../src/contract/grouping.ts";
import { type Client, dial, packAny, type ServiceClient } from "../../src/ttrpc/index.ts";
import { allProcs, cmdline, isGone, type ProcInfo, procInfo } from "./procs.ts";
import { BunkerEnv, until } from "./cli-harness.ts";

export type Api = ServiceClient<typeof Bunker>;

/** BunkerEnv whose shims exit as soon as they hold nothing (no linger), so "no socket left" is checkable. */
export class CrashEnv extends BunkerEnv {
  static async make(prefix = "bunker-crash-"): Promise<CrashEnv> {
    const base = await BunkerEnv.create(prefix);
    return Object.setPrototypeOf(base, CrashEnv.prototype) as CrashEnv;
  }

  override spawnEnv(): Record<string, string> {
    return { ...super.spawnEnv(), BUNKER_SHIM_LINGER_MS: "0" };
  }

  /** A ttrpc client of the running daemon's bunker.v1 API. */
  async api(): Promise<{ api: Api; client: Client }> {
    const client = await dial(this.address, { connectTimeoutMs: 5_000 });
    return { api: client.service(Bunker), client };
  }
}

/** The slow-runc wrapper: `slow(action, id, seconds)` arms one slow call; `entered(action, id)` says it began. */
export class SlowRunc {
  readonly path: string;
  constructor(readonly dir: string) {
    this.path = join(dir, "runc-slow");
    // The id is runc's last argument for create/start/delete; the marker is consumed, so the
    // cleanup that follows (runc delete --force from the shim's delete action) is not slowed.
    writeFileSync(
      this.path,
      `#!/bin/sh
action=""
for a in "$@"; do
  case "$a" in create|start|delete) [ -z "$action" ] && action=$a ;; esac
  id=$a
done
m="${dir}/slow-$action-$id"
if [ -n "$action" ] && [ -e "$m" ]; then
  secs=$(cat "$m"); rm -f "$m"; : > "${dir}/in-$action-$id"; /bin/sleep "$secs"
fi
exec /usr/sbin/runc "$@"
`,
    );
    chmodSync(this.path, 0o755);
  }

  slow(action: "create" | "start" | "delete", id: string, seconds: number): void {
    rmSync(join(this.dir, `in-${action}-${id}`), { force: true });
    writeFileSync(join(this.dir, `slow-${action}-${id}`), String(seconds));
  }

  entered(action: "create" | "start" | "delete", id: string): boolean {
    return existsSync(join(this.dir, `in-${action}-${id}`));
  }

  /** Wrapper processes still sleeping (a killed shim orphans them; they finish on their own). */
  running(): ProcInfo[] {
    return allProcs().filter((p) => cmdline(p.pid).includes(this.path));
  }
}

/** runc Options naming a binary, as the CreateRequest's runtime_options. */
export function runcOptions(binaryName: string) {
  return packAny(OptionsSchema, create(OptionsSchema, { binaryName }));
}

export interface CreateArgs {
  runtime: string;
  args: string[];
  binaryName?: string;
  logPath?: string;
}

/** Create (not start) a task through the daemon. */
export async function createTask(env: BunkerEnv, api: Api, ns: string, id: string, a: CreateArgs): Promise<number> {
  const spec = generateSpec({ namespace: ns, id, args: a.args });
  const r = await api.create({
    namespace: ns,
    id,
    runtime: a.runtime,
    rootfs: env.rootfs,
    spec: new TextEncoder().encode(JSON.stringify(spec)),
    ...(a.binaryName ? { runtimeOptions: runcOptions(a.binaryName) } : {}),
    ...(a.logPath ? { logPath: a.logPath } : {}),
  });
  return r.pid;
}

export async function listTasks(api: Api, ns: string): Promise<Map<string, TaskInfo>> {
  const r = await api.list({ namespace: ns });
  return new Map(r.tasks.map((t) => [t.id, t]));
}

export const statusName = (s: Status): string => Status[s] ?? String(s);

/** The shim sockets a namespace's tasks could have: grouped (ours) or one per container (Go shim). */
export function shimSockets(env: BunkerEnv, ns: string, ids: string[]): string[] {
  return [NAMESPACE_GROUP_KEY, ...ids].map((g) => socketPath(socketAddress(env.address, ns, g)));
}

/** Mount points whose path lies under dir (mountinfo field 5, octal escapes undone). */
export function mountsUnder(dir: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => (l.split(" ")[4] ?? "").replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => p.startsWith(`${dir}/`) || p === dir);
}

/**
 * runc's containers in a namespace's root: under containerd both shims use /run/containerd/runc/<ns>;
 * under bunker's manager, <state>/runc/<ns> (src/runtime/runc-root.ts).
 */
export async function runcList(ns: string, base = "/run/containerd/runc"): Promise<string[]> {
  const root = `${base}/${ns}`;
  if (!existsSync(root)) return [];
  const r = await Bun.$`runc --root ${root} list -q`.quiet().nothrow();
  return r.stdout.toString().split("\n").filter(Boolean);
}

/** Zombies whose parent is one of the given processes. */
export function zombiesOf(parents: number[]): ProcInfo[] {
  const set = new Set(parents);
  return allProcs().filter((p) => p.state === "Z" && set.has(p.ppid));
}

export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

export function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : 0;
}

export interface LeakReport {
  runc: string[];
  dirs: string[];
  mounts: string[];
  sockets: string[];
  zombies: number[];
  alive: number[];
}

/**
 * What a namespace left behind, waiting (up to timeoutMs) for it to drain: slow-runc wrappers a
 * killed shim orphaned finish first, shims exit once empty.
 */
export async function leaks(
  env: BunkerEnv,
  ns: string,
  ids: string[],
  o: { containers?: ProcInfo[]; parents?: number[]; dirs?: string[]; slow?: SlowRunc; timeoutMs?: number } = {},
): Promise<LeakReport> {
  const check = async (): Promise<LeakReport> => ({
    runc: [...(await runcList(ns)), ...(await runcList(ns, `${env.state}/runc`))],
    dirs: [...ids.flatMap((id) => [join(env.state, ns, id), join(env.root, ns, id)]), ...(o.dirs ?? [])].filter((d) => existsSync(d)),
    mounts: mountsUnder(join(env.state, ns)),
    sockets: shimSockets(env, ns, ids).filter((s) => existsSync(s)),
    zombies: zombiesOf([process.pid, ...(o.parents ?? []), ...env.shims().map((s) => s.pid)]).map((p) => p.pid),
    alive: (o.containers ?? []).filter((p) => !isGone(p)).map((p) => p.pid),
  });
  const empty = (r: LeakReport) => Object.values(r).every((v: unknown[]) => v.length === 0);
  let last = await check();
  await until(
    async () => (o.slow?.running().length ?? 0) === 0 && empty((last = await check())),
    o.timeoutMs ?? 15_000,
    "nothing left behind",
  ).catch(() => undefined);
  return last;
}

export const NO_LEAKS: LeakReport = { runc: [], dirs: [], mounts: [], sockets: [], zombies: [], alive: [] };

/** The process of a container's init, by pid (with its start time, so a reused pid is not confused). */
export function containerProc(pid: number): ProcInfo | undefined {
  return pid > 0 ? procInfo(pid) : undefined;
}
