// Crash at every step, with our task manager (`bunker daemon`) as the driver: kill -9 the daemon,
// or the shim(s), while one namespace holds a task at each stage of its life (created, during
// start, running, exited, during delete), restart what was killed, and check that the system
// converges: every task is listed with the right status and exit code or is gone, delete works,
// and no runc state, bundle, mount, shim socket, zombie or container process is left. Runs with
// our shim and Debian's containerd-shim-runc-v2.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Status } from "../../src/gen/containerd/types/task/task_pb.ts";
import { describeWith } from "../support/require.ts";
import { killSame, type ProcInfo, waitGone } from "../support/procs.ts";
import { runtimes, until } from "../support/cli-harness.ts";
import { type Api, containerProc, CrashEnv, createTask, leaks, listTasks, NO_LEAKS, SlowRunc, statusName } from "../support/crash-harness.ts";

const SLOW_S = 2;

/** The stages, with what each may converge to after the daemon restarts ("gone" = not listed). */
const AFTER_DAEMON: Record<string, string[]> = {
  created: ["CREATED"],
  starting: ["CREATED", "RUNNING"],
  running: ["RUNNING"],
  exited: ["STOPPED 3"],
  deleting: ["gone", "STOPPED 4"],
};
const STAGES = Object.keys(AFTER_DAEMON);

interface Staged {
  containers: ProcInfo[];
  /** RPCs left in flight (start, delete) when the victim is killed. */
  inflight: Promise<unknown>[];
}

/** One task at each stage, in namespace ns (one grouped shim for ours). */
async function stage(env: CrashEnv, api: Api, ns: string, runtime: string, slow: SlowRunc): Promise<Staged> {
  const base = { runtime, binaryName: slow.path };
  const containers: ProcInfo[] = [];
  const track = (pid: number) => {
    const p = containerProc(pid);
    if (p) containers.push(p);
  };
  track(await createTask(env, api, ns, "created", { ...base, args: ["sleep", "1000"] }));
  track(await createTask(env, api, ns, "running", { ...base, args: ["sleep", "1000"] }));
  await api.start({ namespace: ns, id: "running" });
  for (const [id, code] of [["exited", 3], ["deleting", 4]] as const) {
    track(await createTask(env, api, ns, id, { ...base, args: ["sh", "-c", `exit ${code}`] }));
    await api.start({ namespace: ns, id });
    expect((await api.wait({ namespace: ns, id })).exitStatus).toBe(code);
  }
  track(await createTask(env, api, ns, "starting", { ...base, args: ["sleep", "1000"] }));
  slow.slow("start", "starting", SLOW_S);
  slow.slow("delete", "deleting", SLOW_S);
  const inflight = [api.start({ namespace: ns, id: "starting" }), api.delete({ namespace: ns, id: "deleting" })].map((p) => p.catch((e: unknown) => e));
  await until(() => slow.entered("start", "starting") && slow.entered("delete", "deleting"), 20_000, "start and delete to be under way");
  return { containers, inflight };
}

/** Lists the namespace until every task is in an allowed state, then force-deletes what is left. */
async function converge(api: Api, ns: string, allowed: Record<string, string[]>): Promise<Record<string, string>> {
  let seen: Record<string, string> = {};
  const ok = () => STAGES.every((id) => allowed[id]!.includes(seen[id]!));
  await until(
    async () => {
      const tasks = await listTasks(api, ns);
      seen = Object.fromEntries(STAGES.map((id) => {
        const t = tasks.get(id);
        return [id, !t ? "gone" : t.status === Status.STOPPED ? `STOPPED ${t.exitStatus}` : statusName(t.status)];
      }));
      return ok();
    },
    20_000,
    "the tasks to converge",
  ).catch(() => undefined);
  expect(seen).toEqual(Object.fromEntries(STAGES.map((id) => [id, allowed[id]!.includes(seen[id]!) ? seen[id]! : allowed[id]!.join("|")])));
  for (const id of STAGES) if (seen[id] !== "gone") await api.delete({ namespace: ns, id, force: true });
  expect([...(await listTasks(api, ns)).keys()]).toEqual([]);
  return seen;
}

for (const runtime of runtimes()) {
  describeWith(["root", "bin:runc", "bin:containerd-shim-runc-v2"], `crash at every step, manager driven (${runtime})`, () => {
    let env: CrashEnv;
    beforeAll(async () => {
      env = await CrashEnv.make();
    }, 60_000);
    afterAll(async () => {
      await env?.dispose([`${env.namespace}d`, `${env.namespace}s`]);
    }, 60_000);

    test("kill -9 the daemon: tasks reload with their status and exit code; delete cleans all", async () => {
      const ns = `${env.namespace}d`;
      const slow = new SlowRunc(env.dir);
      const first = await env.startDaemon();
      let { api, client } = await env.api();
      const { containers, inflight } = await stage(env, api, ns, runtime, slow);
      first.proc.kill("SIGKILL");
      await first.proc.exited;
      client.close();
      await Promise.all(inflight);
      const second = await env.startDaemon();
      ({ api, client } = await env.api());
      const seen = await converge(api, ns, AFTER_DAEMON);
      console.log(`crash daemon (${runtime}): ${JSON.stringify(seen)}`);
      expect(await leaks(env, ns, STAGES, { containers, parents: [second.proc.pid], slow })).toEqual(NO_LEAKS);
      client.close();
      second.proc.kill("SIGKILL");
      await second.proc.exited;
    }, 120_000);

    test("kill -9 the shim: every task is reported exited or gone; delete cleans all", async () => {
      const ns = `${env.namespace}s`;
      const slow = new SlowRunc(env.dir);
      const daemon = await env.startDaemon();
      const { api, client } = await env.api();
      const { containers, inflight } = await stage(env, api, ns, runtime, slow);
      const shims = env.shims().filter((s) => s.state !== "Z");
      expect(shims.length).toBeGreaterThan(0);
      for (const s of shims) killSame(s, "SIGKILL");
      expect(await waitGone(shims, 5_000)).toEqual([]);
      await Promise.all(inflight);
      // The shim took the tasks' states with it: each is gone, or listed as stopped (killed).
      const dead = ["gone", "STOPPED 137", "STOPPED 255"];
      const allowed = Object.fromEntries(STAGES.map((id) => [id, id === "exited" ? [...dead, "STOPPED 3"] : dead]));
      const seen = await converge(api, ns, allowed);
      console.log(`crash shim (${runtime}): ${JSON.stringify(seen)}`);
      expect(await leaks(env, ns, STAGES, { containers, parents: [daemon.proc.pid], slow })).toEqual(NO_LEAKS);
      client.close();
      daemon.proc.kill("SIGKILL");
      await daemon.proc.exited;
    }, 120_000);
  });
}
