// Soak: N full lifecycles through `bunker daemon` and our grouped shim, a few at a time, while one
// long-lived container keeps the same shim process up. The lifecycles are mixed: most create,
// start, print, exit and delete; every 3rd also execs a process in the running container (its
// exit code and output checked) before SIGTERM ends the init; every 5th runs `sleep 1000` and is
// SIGKILLed (exit 137).
// At the end: the shim's and the daemon's fd counts are back to their baseline, the shim's RSS
// growth is bounded, and no runc state, bundle, mount, socket, zombie or log file is left.
// N = BUNKER_SOAK (default 100; the README's figure is BUNKER_SOAK=1000).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { describeWith } from "../support/require.ts";
import { BUNKER_RUNTIME, until } from "../support/cli-harness.ts";
import { CrashEnv, createTask, fdCount, leaks, NO_LEAKS, rssKiB } from "../support/crash-harness.ts";

const N = Number(process.env.BUNKER_SOAK ?? "100");
const PARALLEL = 4;
const WARMUP = 20;
/** Allowed RSS growth of the shim after warm-up (JIT, allocator arenas settle; a leak grows with N). */
const RSS_GROWTH_KIB = 24 * 1024;

describeWith(["root", "bin:runc", "bin:containerd-shim-runc-v2"], `soak: ${N} lifecycles through bunker daemon and our shim`, () => {
  let env: CrashEnv;
  beforeAll(async () => {
    env = await CrashEnv.make("bunker-soak-");
  }, 60_000);
  afterAll(async () => {
    await env?.dispose();
  }, 60_000);

  test(`${N} lifecycles: fds back to baseline, RSS bounded, nothing left`, async () => {
    const ns = env.namespace;
    const daemon = await env.startDaemon();
    const { api, client } = await env.api();
    await createTask(env, api, ns, "keeper", { runtime: BUNKER_RUNTIME, args: ["sleep", "100000"] });
    await api.start({ namespace: ns, id: "keeper" });
    const shims = env.shims().filter((s) => s.state !== "Z");
    expect(shims.length).toBe(1);
    const shim = shims[0]!;

    const counts = { plain: 0, exec: 0, killed: 0 };
    const lines = (file: string) => readFileSync(file, "utf8").split("\n").filter(Boolean).sort();
    /** Runs an exec in a running task; returns its exit status after checking its output. */
    const execIn = async (id: string, i: number): Promise<number> => {
      const execId = `e${i}`;
      const log = join(env.dir, `${id}-${execId}.log`);
      // waits for the init's marker, so the init's TERM trap is set before the test signals it
      const script = `while [ ! -e /dev/shm/up ]; do :; done; echo exec ${i}; exit ${i % 5}`;
      const proc = new TextEncoder().encode(JSON.stringify({ args: ["sh", "-c", script] }));
      await api.exec({ namespace: ns, id, execId, process: proc, stdout: `file://${log}`, stderr: `file://${log}` });
      const waiting = api.wait({ namespace: ns, id, execId });
      await api.start({ namespace: ns, id, execId });
      const code = (await waiting).exitStatus;
      expect((await api.delete({ namespace: ns, id, execId })).exitStatus).toBe(code);
      expect(lines(log)).toEqual([`exec ${i}`]);
      rmSync(log);
      return code;
    };
    const lifecycle = async (i: number): Promise<void> => {
      const id = `s${i}`;
      const log = join(env.dir, `${id}.log`);
      const kind = i % 5 === 0 ? "killed" : i % 3 === 0 ? "exec" : "plain";
      const args = {
        plain: ["sh", "-c", `echo out ${i}; echo err ${i} >&2; exit ${i % 7}`],
        exec: ["sh", "-c", `trap 'exit ${i % 7}' TERM; echo out ${i}; echo err ${i} >&2; : > /dev/shm/up; sleep 1000 & wait`],
        killed: ["sleep", "1000"],
      }[kind];
      const want = kind === "killed" ? 137 : i % 7;
      await createTask(env, api, ns, id, { runtime: BUNKER_RUNTIME, args, logPath: log });
      const waiting = api.wait({ namespace: ns, id });
      await api.start({ namespace: ns, id });
      if (kind === "exec") {
        expect(await execIn(id, i)).toBe(i % 5);
        await api.kill({ namespace: ns, id, signal: 15 });
      } else if (kind === "killed") {
        await api.kill({ namespace: ns, id, signal: 9 });
      }
      expect((await waiting).exitStatus).toBe(want);
      const r = await api.delete({ namespace: ns, id });
      expect(r.exitStatus).toBe(want);
      // the shim drains the copy before it reports the exit: both lines are there
      expect(lines(log)).toEqual(kind === "killed" ? [] : [`err ${i}`, `out ${i}`]);
      rmSync(log);
      counts[kind]++;
    };
    const done = () => counts.plain + counts.exec + counts.killed;
    const batch = async (from: number, to: number) => {
      for (let i = from; i < to; i += PARALLEL) await Promise.all(Array.from({ length: Math.min(PARALLEL, to - i) }, (_, k) => lifecycle(i + k)));
    };
    const settle = () => until(() => (env.shims().length === 1 ? true : false), 10_000, "one shim");

    const t0 = performance.now();
    await batch(0, WARMUP);
    await settle();
    const before = { rss: rssKiB(shim.pid), shimFds: fdCount(shim.pid), daemonFds: fdCount(daemon.proc.pid) };
    await batch(WARMUP, N);
    // fds close asynchronously after the last Delete (pipes drained, runc children reaped)
    let after = { rss: 0, shimFds: 0, daemonFds: 0 };
    await until(() => {
      after = { rss: rssKiB(shim.pid), shimFds: fdCount(shim.pid), daemonFds: fdCount(daemon.proc.pid) };
      return after.shimFds <= before.shimFds && after.daemonFds <= before.daemonFds;
    }, 10_000, "fds back to baseline").catch(() => undefined);
    const seconds = (performance.now() - t0) / 1000;
    console.log(
      `soak: ${done()} lifecycles (${counts.plain} exit, ${counts.exec} exec, ${counts.killed} SIGKILL) in ${seconds.toFixed(1)} s (${PARALLEL} at a time); shim pid ${shim.pid} RSS ${(before.rss / 1024).toFixed(1)} -> ${(after.rss / 1024).toFixed(1)} MiB, ` +
        `shim fds ${before.shimFds} -> ${after.shimFds}, daemon fds ${before.daemonFds} -> ${after.daemonFds}`,
    );
    expect(done()).toBe(N);
    expect(env.shims().map((s) => s.pid)).toEqual([shim.pid]);
    expect(after.shimFds).toBeLessThanOrEqual(before.shimFds);
    expect(after.daemonFds).toBeLessThanOrEqual(before.daemonFds);
    expect(after.rss - before.rss).toBeLessThan(RSS_GROWTH_KIB);

    await api.delete({ namespace: ns, id: "keeper", force: true });
    const ids = ["keeper", ...Array.from({ length: N }, (_, i) => `s${i}`)];
    expect(await leaks(env, ns, ids, { parents: [daemon.proc.pid] })).toEqual(NO_LEAKS);
    const logs = Array.from({ length: N }, (_, i) => [join(env.dir, `s${i}.log`), join(env.dir, `s${i}-e${i}.log`)]).flat();
    expect(logs.filter((f) => existsSync(f))).toEqual([]);
    client.close();
  }, 600_000);
});
