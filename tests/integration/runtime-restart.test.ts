// The manager across a daemon restart and a shim crash (containerd runtime/v2 manager.go's
// loadExistingTasks and cleanupAfterDeadShim), through `bunker daemon` and the CLI.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describeWith } from "../support/require.ts";
import { cmdline, killSame, waitGone } from "../support/procs.ts";
import { BunkerEnv, runtimes, until } from "../support/cli-harness.ts";

const N = 50;
const EXITING = 3;

function parsePs(out: string): Map<string, { status: string; exit: string }> {
  const m = new Map<string, { status: string; exit: string }>();
  for (const line of out.trim().split("\n").slice(1)) {
    const [id, , status, maybeExit] = line.split(/\s+/);
    if (id && status) m.set(id, { status, exit: maybeExit?.startsWith("io.") ? "" : (maybeExit ?? "") });
  }
  return m;
}

interface Ev {
  topic: string;
  namespace: string;
  event: { containerId?: string; exitStatus?: number };
}

function parseEvents(out: string): Ev[] {
  return out.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Ev);
}

async function inBatches<T>(items: T[], size: number, fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

for (const runtime of runtimes()) {
  describeWith(["root", "bin:runc", "bin:containerd-shim-runc-v2"], `bunker daemon restart (${runtime})`, () => {
    let env: BunkerEnv;
    const R = ["--runtime", runtime];
    beforeAll(async () => {
      env = await BunkerEnv.create();
    }, 60_000);
    afterAll(async () => {
      await env?.dispose([env.namespace, `${env.namespace}v`, `${env.namespace}w`]);
    }, 120_000);

    test(`kill -9 the daemon under ${N} tasks: all reload at once, exits while down are reported`, async () => {
      const victimNs = `${env.namespace}v`;
      const first = await env.startDaemon();
      const ids = Array.from({ length: N - 1 }, (_, i) => `t${i}`);
      const exiting = ids.slice(0, EXITING);
      await inBatches(ids, 10, async (id) => {
        const cmd = exiting.includes(id) ? ["sh", "-c", `while [ ! -e /tmp/go-${id} ]; do sleep 0.05; done; exit 3`] : ["sleep", "1000"];
        const r = await env.run(["run", "-d", ...R, "--rootfs", env.rootfs, id, ...cmd]);
        expect(r).toEqual({ code: 0, stdout: "", stderr: "" });
      });
      expect((await env.run(["-n", victimNs, "run", "-d", ...R, "--rootfs", env.rootfs, "victim", "sleep", "1000"])).code).toBe(0);
      const before = parsePs((await env.run(["ps", "-a"])).stdout);
      expect([...before.values()].filter((t) => t.status === "RUNNING").length).toBe(N - 1);

      first.proc.kill("SIGKILL");
      await first.proc.exited;
      // While the daemon is down: some tasks exit, and the victim's shim dies.
      for (const id of exiting) writeFileSync(join(env.rootfs, "tmp", `go-${id}`), "");
      const victimShims = env.shims().filter((s) => cmdline(s.pid).includes(`-namespace ${victimNs} `));
      expect(victimShims.length).toBe(1);
      killSame(victimShims[0]!, "SIGKILL");
      expect(await waitGone(victimShims, 5_000)).toEqual([]);
      // The embedded CLI lists what the shims report, without the daemon.
      await until(async () => {
        const ps = parsePs((await env.run(["ps", "-a"])).stdout);
        return exiting.every((id) => ps.get(id)?.status === "STOPPED");
      }, 20_000, "the triggered tasks to exit");

      const t0 = performance.now();
      const second = await env.startDaemon();
      const ps = parsePs((await env.run(["ps", "-a"])).stdout);
      const listedMs = performance.now() - t0;
      console.log(`restart (${runtime}): daemon answering after ${second.readyMs.toFixed(0)} ms, ${ps.size} tasks listed after ${listedMs.toFixed(0)} ms`);
      expect(ps.size).toBe(N - 1);
      for (const id of ids) expect(ps.get(id)).toEqual(exiting.includes(id) ? { status: "STOPPED", exit: "3" } : { status: "RUNNING", exit: "" });
      // The manager's reload (all namespaces and bundles in parallel) is what must stay under 1 s;
      // the wall time also counts starting processes on a possibly loaded machine.
      const ready = second.log().split("\n").find((l) => l.includes('"bunker daemon ready"'));
      const loadMs = (JSON.parse(ready ?? "{}") as { loadMs?: number }).loadMs;
      console.log(`restart (${runtime}): manager reload ${loadMs} ms`);
      expect(loadMs).toBeLessThan(1_000);
      expect(listedMs).toBeLessThan(3_000);

      // The dead shim's task was cleaned up at load and its exit published.
      const victimPs = await env.run(["-n", victimNs, "ps", "-a", "-q"]);
      expect(victimPs.stdout).toBe("");
      expect(existsSync(join(env.state, victimNs, "victim"))).toBe(false);
      const events = parseEvents((await env.run(["-n", victimNs, "events", "--since", "0", "--until", "0s"], { timeoutMs: 5_000 })).stdout);
      const exit = events.find((e) => e.topic === "/tasks/exit" && e.event.containerId === "victim");
      expect(exit).toBeDefined();
      expect([137, 255]).toContain(exit!.event.exitStatus ?? 0);
      expect(events.some((e) => e.topic === "/tasks/delete" && e.event.containerId === "victim")).toBe(true);

      await inBatches(ids, 10, async (id) => {
        expect((await env.run(["rm", "-f", id])).code).toBe(0);
      });
      expect(env.leftovers()).toEqual([]);
    }, 300_000);

    test("a shim killed with SIGKILL: its task gets TaskExit and is cleaned up", async () => {
      const ns = `${env.namespace}w`;
      expect((await env.run(["-n", ns, "run", "-d", ...R, "--rootfs", env.rootfs, "doomed", "sleep", "1000"])).code).toBe(0);
      const shims = env.shims().filter((s) => cmdline(s.pid).includes(`-namespace ${ns} `));
      expect(shims.length).toBe(1);
      killSame(shims[0]!, "SIGKILL");
      await until(async () => (await env.run(["-n", ns, "ps", "-a", "-q"])).stdout === "", 20_000, "the dead task to be dropped");
      await until(() => !existsSync(join(env.state, ns, "doomed")), 20_000, "the bundle to be removed");
      const events = parseEvents((await env.run(["-n", ns, "events", "--since", "0", "--until", "0s"], { timeoutMs: 5_000 })).stdout);
      const topics = events.filter((e) => e.event.containerId === "doomed").map((e) => e.topic);
      expect(topics.slice(-2)).toEqual(["/tasks/exit", "/tasks/delete"]);
      expect([137, 255]).toContain(events.find((e) => e.topic === "/tasks/exit")!.event.exitStatus ?? 0);
    }, 120_000);
  });
}
