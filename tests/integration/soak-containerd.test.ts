// Soak through real containerd 1.6 and our grouped shim (io.containerd.bunker.v1): N mixed
// lifecycles with `ctr`, a few at a time, while one long-lived container keeps the same shim
// process up. Most are `ctr run --rm` printing and exiting; every 3rd also runs `ctr task exec`
// in the running container (exit code and output checked) before SIGTERM ends the init; every 5th
// runs `sleep 1000` and is SIGKILLed (ctr run exits 137). At the end: the shim's and containerd's
// fd counts are back to their baseline, the shim's RSS growth is bounded, no zombie, and once the
// keeper is gone no runc state, bundle, mount, shim socket or shim process is left.
// N = BUNKER_SOAK (default 40).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { socketAddress, socketPath } from "../../src/contract/address.ts";
import type { TestContainerd } from "../support/containerd.ts";
import { describeWith } from "../support/require.ts";
import { until } from "../support/cli-harness.ts";
import { fdCount, mountsUnder, rssKiB, runcList, zombiesOf } from "../support/crash-harness.ts";
import { groupSocket, RUNTIME, shimServers, startEnv, stopEnv } from "../support/shim-env.ts";

const N = Number(process.env.BUNKER_SOAK ?? "40");
const PARALLEL = 4;
const WARMUP = 8;
/** Allowed RSS growth of the shim after warm-up (JIT, allocator arenas settle; a leak grows with N). */
const RSS_GROWTH_KIB = 24 * 1024;
const NS = `soak${process.pid}`;

describeWith(["root", "bin:runc", "bin:containerd", "bin:ctr"], `soak: ${N} lifecycles through containerd and our shim`, () => {
  let ctd: TestContainerd;
  let rootfs: string;
  const ctr = (args: string[], timeoutMs = 60_000) => ctd.ctr(["-n", NS, ...args], { timeoutMs });
  const runRm = (id: string, cmd: string[]) => ctr(["run", "--rm", "--runtime", RUNTIME, "--rootfs", rootfs, id, ...cmd]);
  const statuses = async (): Promise<Map<string, string>> => {
    const r = await ctr(["task", "ls"]);
    return new Map(r.stdout.split("\n").slice(1).map((l) => l.trim().split(/\s+/)).filter((f) => f.length >= 3).map((f) => [f[0]!, f[2]!]));
  };
  const running = (id: string) => until(async () => (await statuses()).get(id) === "RUNNING", 30_000, `${id} RUNNING`);
  /** Entries left under containerd's per-namespace dirs of the v2 runtime (bundles, work dirs). */
  const taskDirs = (): string[] =>
    [ctd.state, ctd.root].flatMap((base) => {
      const dir = join(base, "io.containerd.runtime.v2.task", NS);
      return existsSync(dir) ? readdirSync(dir).map((e) => join(dir, e)) : [];
    });

  beforeAll(async () => {
    ({ ctd, rootfs } = await startEnv());
  }, 120_000);
  afterAll(async () => {
    await stopEnv(ctd);
  }, 120_000);

  test(`${N} lifecycles: fds back to baseline, RSS bounded, nothing left`, async () => {
    expect((await ctr(["run", "-d", "--runtime", RUNTIME, "--rootfs", rootfs, "keeper", "/bin/sleep", "100000"])).code).toBe(0);
    const shims = shimServers(ctd).filter((s) => s.state !== "Z");
    expect(shims.length).toBe(1);
    const shim = shims[0]!;

    const counts = { plain: 0, exec: 0, killed: 0 };
    const done = () => counts.plain + counts.exec + counts.killed;
    const lifecycle = async (i: number): Promise<void> => {
      const id = `c${i}`;
      const kind = i % 5 === 0 ? "killed" : i % 3 === 0 ? "exec" : "plain";
      if (kind === "plain") {
        expect(await runRm(id, ["/bin/sh", "-c", `echo out ${i}; echo err ${i} >&2; exit ${i % 7}`])).toEqual({ code: i % 7, stdout: `out ${i}\n`, stderr: `err ${i}\n` });
      } else if (kind === "exec") {
        // the init sets its TERM trap, then leaves a marker the exec waits for
        const run = runRm(id, ["/bin/sh", "-c", `trap 'exit ${i % 7}' TERM; echo out ${i}; : > /dev/shm/up; sleep 1000 & wait`]);
        await running(id);
        const script = `while [ ! -e /dev/shm/up ]; do :; done; echo exec ${i}; exit ${i % 5}`;
        expect(await ctr(["task", "exec", "--exec-id", `e${i}`, id, "/bin/sh", "-c", script])).toEqual({ code: i % 5, stdout: `exec ${i}\n`, stderr: "" });
        expect((await ctr(["task", "kill", "-s", "SIGTERM", id])).code).toBe(0);
        expect(await run).toEqual({ code: i % 7, stdout: `out ${i}\n`, stderr: "" });
      } else {
        const run = runRm(id, ["/bin/sleep", "1000"]);
        await running(id);
        expect((await ctr(["task", "kill", "-s", "SIGKILL", id])).code).toBe(0);
        expect(await run).toEqual({ code: 137, stdout: "", stderr: "" });
      }
      counts[kind]++;
    };
    const batch = async (from: number, to: number) => {
      for (let i = from; i < to; i += PARALLEL) await Promise.all(Array.from({ length: Math.min(PARALLEL, to - i) }, (_, k) => lifecycle(i + k)));
    };
    const figures = () => ({ rss: rssKiB(shim.pid), shimFds: fdCount(shim.pid), ctdFds: fdCount(ctd.pid) });

    const t0 = performance.now();
    await batch(0, WARMUP);
    const before = figures();
    await batch(WARMUP, N);
    // fds close asynchronously after the last delete (pipes drained, runc children reaped, ctr's
    // grpc connections closed)
    let after = figures();
    await until(() => {
      after = figures();
      return after.shimFds <= before.shimFds && after.ctdFds <= before.ctdFds;
    }, 10_000, "fds back to baseline").catch(() => undefined);
    const seconds = (performance.now() - t0) / 1000;
    const zombies = zombiesOf([ctd.pid, shim.pid]).map((p) => p.pid);
    console.log(
      `soak (containerd): ${done()} lifecycles (${counts.plain} exit, ${counts.exec} exec, ${counts.killed} SIGKILL) in ${seconds.toFixed(1)} s (${PARALLEL} at a time); ` +
        `shim pid ${shim.pid} RSS ${(before.rss / 1024).toFixed(1)} -> ${(after.rss / 1024).toFixed(1)} MiB, ` +
        `shim fds ${before.shimFds} -> ${after.shimFds}, containerd fds ${before.ctdFds} -> ${after.ctdFds}, zombies ${zombies.length}`,
    );
    expect(done()).toBe(N);
    expect(shimServers(ctd).map((s) => s.pid)).toEqual([shim.pid]);
    expect(after.shimFds).toBeLessThanOrEqual(before.shimFds);
    expect(after.ctdFds).toBeLessThanOrEqual(before.ctdFds);
    expect(after.rss - before.rss).toBeLessThan(RSS_GROWTH_KIB);
    expect(zombies).toEqual([]);
    expect([...(await statuses()).keys()]).toEqual(["keeper"]);

    expect((await ctr(["task", "kill", "-s", "SIGKILL", "keeper"])).code).toBe(0);
    await until(async () => (await statuses()).get("keeper") === "STOPPED", 20_000, "keeper STOPPED");
    expect((await ctr(["task", "delete", "keeper"])).code).toBe(0);
    expect((await ctr(["container", "rm", "keeper"])).code).toBe(0);
    expect((await ctr(["container", "ls", "-q"])).stdout.trim()).toBe("");

    // the shim exits once it holds nothing (no linger): its socket and all task state go with it
    const ids = ["keeper", ...Array.from({ length: N }, (_, i) => `c${i}`)];
    const sockets = [groupSocket(ctd, NS), ...ids.map((id) => socketPath(socketAddress(ctd.address, NS, id)))];
    const check = async () => ({
      shims: shimServers(ctd).map((s) => s.pid),
      runc: await runcList(NS),
      dirs: taskDirs(),
      mounts: mountsUnder(join(ctd.state, "io.containerd.runtime.v2.task", NS)),
      sockets: sockets.filter((s) => existsSync(s)),
      zombies: zombiesOf([ctd.pid, shim.pid, process.pid]).map((p) => p.pid),
    });
    const none = { shims: [], runc: [], dirs: [], mounts: [], sockets: [], zombies: [] };
    let last = await check();
    await until(async () => JSON.stringify((last = await check())) === JSON.stringify(none), 15_000, "nothing left").catch(() => undefined);
    expect(last).toEqual(none);
  }, 600_000);
});
