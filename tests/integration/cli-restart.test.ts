// A container's life after run, as docker users drive it with real runc: ps hides stopped containers
// (-a lists them until rm), start runs a stopped one again with the same config, restart is stop +
// start, restart policies with their back-off under a daemon, and a simulated reboot after which
// the daemon brings `always` and `unless-stopped` containers back and lists the rest as exited.
import { afterAll, beforeAll, beforeEach, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describeWith } from "../support/require.ts";
import { BunkerEnv, until } from "../support/cli-harness.ts";

describeWith(["root", "bin:runc"], "start, restart, restart policies and reboots", () => {
  let env: BunkerEnv;
  beforeAll(async () => {
    env = await BunkerEnv.create("bunker-restart-");
  }, 60_000);
  beforeEach(async () => {
    await env.run(["rm", "-f", ...(await env.run(["ps", "-a", "-q"])).stdout.split("\n").filter(Boolean)]);
  });
  afterAll(async () => {
    await env?.dispose();
  }, 60_000);

  const ok = async (...args: string[]): Promise<string> => {
    const r = await env.run(args);
    if (r.code !== 0) throw new Error(`bunker ${args.join(" ")}: exit ${r.code}: ${r.stderr}`);
    return r.stdout;
  };
  /** Lines a container appended to a file of the shared rootfs (one per run). */
  const runs = (file: string): number => (existsSync(join(env.rootfs, "tmp", file)) ? readFileSync(join(env.rootfs, "tmp", file), "utf8").split("\n").filter(Boolean).length : 0);
  const row = async (id: string): Promise<string> => (await ok("ps", "-a")).split("\n").find((l) => l.startsWith(`${id} `)) ?? "";

  test("ps lists running containers, -a the stopped ones too; start runs a stopped one again with its config; restart is stop + start", async () => {
    for (const daemon of [false, true]) {
      const d = daemon ? await env.startDaemon() : undefined;
      try {
        const id = daemon ? "s2" : "s1";
        await ok("run", "-d", "-e", "WHO=me", "--rootfs", env.rootfs, id, "sh", "-c", `echo $WHO >> /tmp/${id}; exit 4`);
        await until(async () => / STOPPED\s+4\b/.test(await row(id)), 10_000, `${id} to stop`);
        expect(await ok("ps", "-q")).not.toContain(id);
        expect(await ok("ps", "-a", "-q")).toContain(id);
        expect(await ok("start", id)).toBe(`${id}\n`);
        await until(async () => runs(id) === 2, 10_000, `${id} to run again`);
        expect(readFileSync(join(env.rootfs, "tmp", id), "utf8")).toBe("me\nme\n");
        await until(async () => / STOPPED\s+4\b/.test(await row(id)), 10_000, `${id} to stop again`);
        await ok("rm", id);
        // restart of a running container: a new init (another pid), the same command
        const r = daemon ? "r2" : "r1";
        await ok("run", "-d", "--rootfs", env.rootfs, r, "sh", "-c", `echo x >> /tmp/${r}; exec sleep 1000`);
        const pid1 = Number((await row(r)).split(/\s+/)[1]);
        expect(await ok("restart", "-t", "1", r)).toBe(`${r}\n`);
        const after = await row(r);
        expect(after).toMatch(/ RUNNING /);
        expect(Number(after.split(/\s+/)[1])).not.toBe(pid1);
        expect(runs(r)).toBe(2);
        // start of a running container changes nothing
        expect(await ok("start", r)).toBe(`${r}\n`);
        expect(await row(r)).toBe(after);
        await ok("rm", "-f", r);
        expect(await env.run(["start", "ghost"])).toMatchObject({ code: 1, stderr: expect.stringContaining("not found") });
      } finally {
        d?.proc.kill("SIGTERM");
        await d?.proc.exited;
      }
    }
    expect(env.leftovers()).toEqual([]);
  }, 120_000);

  test("restart policies under the daemon: always backs off from 100 ms, on-failure:N stops after N, a clean exit ends on-failure, stop holds always", async () => {
    const d = await env.startDaemon();
    try {
      const t0 = performance.now(); // before pa's first run: its fourth comes at least 700 ms later
      await ok("run", "-d", "--restart", "always", "--rootfs", env.rootfs, "pa", "sh", "-c", "echo r >> /tmp/pa; exit 1");
      await ok("run", "-d", "--restart", "on-failure:2", "--rootfs", env.rootfs, "pf", "sh", "-c", "echo r >> /tmp/pf; exit 2");
      await ok("run", "-d", "--restart", "on-failure", "--rootfs", env.rootfs, "p0", "sh", "-c", "echo r >> /tmp/p0; exit 0");
      // runs at 0, then restarts after 100, 200, 400, 800, 1600 ms (plus each run's own time, which a
      // loaded machine stretches: so the runs are waited for, and the back-off checked by the clock)
      await until(() => runs("pa") >= 4, 30_000, "pa's fourth run");
      expect(performance.now() - t0).toBeGreaterThanOrEqual(100 + 200 + 400);
      await until(() => runs("pf") === 3, 30_000, "pf's third run");
      await Bun.sleep(1_000); // on-failure:2 has stopped for good
      expect(runs("pf")).toBe(3);
      expect(runs("p0")).toBe(1);
      const [doc] = JSON.parse(await ok("inspect", "pf")) as { RestartCount: number; HostConfig: { RestartPolicy: { Name: string; MaximumRetryCount: number } } }[];
      expect(doc!.RestartCount).toBe(2);
      expect(doc!.HostConfig.RestartPolicy).toEqual({ Name: "on-failure", MaximumRetryCount: 2 });
      // a user's stop holds the policy, even between two runs
      await ok("stop", "-t", "1", "pa");
      const held = runs("pa");
      await Bun.sleep(4_000);
      expect(runs("pa")).toBe(held);
      expect(await row("pa")).toMatch(/ STOPPED /);
      await ok("rm", "-f", "pa", "pf", "p0");
    } finally {
      d.proc.kill("SIGTERM");
      await d.proc.exited;
    }
    expect(env.leftovers()).toEqual([]);
  }, 120_000);

  test("a reboot: every process killed, --state emptied; the daemon's start brings always and unless-stopped back, lists the rest exited, leaks nothing", async () => {
    let d = await env.startDaemon();
    await ok("run", "-d", "--restart", "always", "--rootfs", env.rootfs, "ba", "sleep", "1000");
    await ok("run", "-d", "--restart", "unless-stopped", "--rootfs", env.rootfs, "bu", "sleep", "1000");
    await ok("run", "-d", "--restart", "unless-stopped", "--rootfs", env.rootfs, "bs", "sleep", "1000");
    await ok("run", "-d", "--restart", "no", "--rootfs", env.rootfs, "bn", "sleep", "1000");
    await ok("stop", "-t", "0", "bs");
    // what a reboot does: every process of ours dies at once (daemon, shims, containers), /run is emptied
    await env.killEverything(d);
    await d.proc.exited;
    // unmount first (deepest first): rm must never reach into a bind-mounted rootfs
    const umounted = Bun.spawnSync(["bash", "-c", `for m in $(grep -o ' ${env.state}/[^ ]*' /proc/self/mountinfo | sort -r); do umount -l $m || exit 1; done; rm -rf ${env.state}`]);
    expect(umounted.exitCode).toBe(0);
    const t0 = performance.now();
    d = await env.startDaemon();
    try {
      await until(async () => /^ba\s+\d+\s+RUNNING/m.test(await ok("ps")) && /^bu\s+\d+\s+RUNNING/m.test(await ok("ps")), 10_000, "ba and bu to run again");
      const backMs = performance.now() - t0;
      expect(backMs).toBeLessThan(2_000 + d.readyMs);
      const all = await ok("ps", "-a");
      // 255 when no exit was seen; 137 when its shim saw the SIGKILL and the daemon recorded it before
      // they were killed in turn (the kills above are sequential: a reboot's order is no better)
      expect(all).toMatch(/^bn\s+-\s+STOPPED\s+(255|137)\b/m);
      expect(all).toMatch(/^bs\s+-\s+STOPPED\s+137\b/m);
      // the exited ones start again, as after any stop
      await ok("start", "bn");
      expect(await ok("ps")).toMatch(/^bn\s+\d+\s+RUNNING/m);
      await ok("rm", "-f", "ba", "bu", "bs", "bn");
    } finally {
      d.proc.kill("SIGTERM");
      await d.proc.exited;
    }
    expect(await ok("ps", "-a", "-q")).toBe("");
    expect(env.leftovers()).toEqual([]);
    expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(env.state);
  }, 120_000);
});
