// Restart policies, measured (as root):
//   1. reboot: N detached `--restart always` containers under a daemon; then what a reboot does
//      (every process of ours SIGKILLed, --state unmounted and emptied); start the daemon again and
//      time until all N run again (from the daemon's spawn, and from when it answers)
//   2. crash loop: one `--restart always` container whose command exits 1 at once; the CPU the
//      daemon and its shim use (their own time plus their reaped children's: runc), as a share of
//      one core, and how many restarts the back-off allowed, over its first and its second window
// --state is a tmpfs, as /run is on a host (this machine's /run is on its ext4 disk, where creating
// a file or a dir takes 3-5 ms under the other tenants' load, measured with a loop of
// writeFileSync/mkdirSync: that, not bunker, was most of a restore here); --root stays on the disk.
// Usage: bun bench/restart.ts [containers=100] [loopSeconds=60]. Prints a table and one JSON line.
// containers=0 skips the reboot half (and its floor): the crash loop alone.
import { mkdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BunkerEnv } from "../tests/support/cli-harness.ts";
import { procStatFields } from "../src/proc.ts";

const N = Number(process.argv[2] ?? 100);
const LOOP_SECONDS = Number(process.argv[3] ?? 60);
const TICKS = 100; // USER_HZ
/** As many at a time as the daemon's restore brings back (src/runtime/restarts.ts). */
const RESTORE_CONCURRENCY = 16;

async function ok(env: BunkerEnv, ...args: string[]): Promise<string> {
  const r = await env.run(args, { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`bunker ${args.join(" ")}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

async function running(env: BunkerEnv): Promise<number> {
  return (await ok(env, "ps")).split("\n").filter((l) => / RUNNING /.test(l)).length;
}

/** A fresh tmpfs on --state: what a boot gives /run. */
function mountStateTmpfs(env: BunkerEnv): void {
  mkdirSync(env.state, { recursive: true });
  const r = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "mode=0711", "tmpfs", env.state]);
  if (r.exitCode !== 0) throw new Error(`mount tmpfs on ${env.state}: ${r.stderr.toString()}`);
}

/** Every mount at or under --state, deepest first (the tmpfs itself last). */
function unmountState(env: BunkerEnv): void {
  const r = Bun.spawnSync(["bash", "-c", `for m in $(grep -o ' ${env.state}\\(/[^ ]*\\)\\? ' /proc/self/mountinfo | sort -r); do umount -l $m || exit 1; done`]);
  if (r.exitCode !== 0) throw new Error(`unmounting ${env.state}: ${r.stderr.toString()}`);
}

async function reboot(env: BunkerEnv): Promise<{ fromSpawnMs: number; fromReadyMs: number; daemonRestoreMs: number; cpu: { daemon: number; shims: number; runc: number } }> {
  let d = await env.startDaemon();
  const batch = 10;
  for (let i = 0; i < N; i += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, N - i) }, (_, j) => ok(env, "run", "-d", "--restart", "always", "--rootfs", env.rootfs, `rb${i + j}`, "sleep", "100000")));
  }
  if ((await running(env)) !== N) throw new Error("not every container runs before the reboot");
  await env.killEverything(d);
  unmountState(env);
  mountStateTmpfs(env);
  const t0 = performance.now();
  d = await env.startDaemon();
  const ready = performance.now();
  // polled 4 times a second: a `ps` is a CLI start and N state calls, which would compete with the restore
  while ((await running(env)) < N) {
    if (performance.now() - t0 > 60_000) throw new Error("the containers did not all come back within 60 s");
    await Bun.sleep(250);
  }
  const done = performance.now();
  // where the restore's CPU went: the daemon's own, the shims' own, and what the shims reaped (runc)
  const shimPids = env.shims().map((s) => s.pid);
  const cpu = { daemon: ownSeconds(d.proc.pid), shims: shimPids.reduce((a, p) => a + ownSeconds(p), 0), runc: shimPids.reduce((a, p) => a + childSeconds(p), 0) };
  // the daemon's own figure: from its start to the last container started ("containers restored")
  const restored = d.log().split("\n").flatMap((l) => {
    try {
      const e = JSON.parse(l) as { msg?: string; ms?: number };
      return e.msg === "containers restored" && typeof e.ms === "number" ? [e.ms] : [];
    } catch {
      return [];
    }
  })[0];
  await ok(env, "rm", "-f", ...Array.from({ length: N }, (_, i) => `rb${i}`));
  d.proc.kill("SIGTERM");
  await d.proc.exited;
  return { fromSpawnMs: done - t0, fromReadyMs: done - ready, daemonRestoreMs: restored ?? NaN, cpu };
}

/**
 * The floor under a restore: the same N containers started by `runc run --detach` alone, as many at
 * a time as the daemon restores, on the same rootfs (read-only, shared) with runc's state on the
 * same tmpfs. Nothing of bunker runs: what is left of the restore's time above this is ours.
 */
async function runcFloor(env: BunkerEnv): Promise<number> {
  const dir = join(env.state, "runc-floor");
  const root = join(dir, "runc");
  const spec = Bun.spawnSync(["runc", "spec", "--bundle", env.dir], { stderr: "pipe" });
  if (!spec.success) throw new Error(`runc spec: ${spec.stderr.toString()}`);
  const base = JSON.parse(readFileSync(join(env.dir, "config.json"), "utf8")) as { process: { terminal: boolean; args: string[] }; root: { path: string; readonly: boolean }; linux: { cgroupsPath?: string } };
  rmSync(join(env.dir, "config.json"));
  const ids = Array.from({ length: N }, (_, i) => `floor${i}`);
  for (const id of ids) {
    mkdirSync(join(dir, id), { recursive: true });
    const config = { ...base, process: { ...base.process, terminal: false, args: ["sleep", "100000"] }, root: { path: env.rootfs, readonly: true }, linux: { ...base.linux, cgroupsPath: `/bunker-bench/${id}` } };
    writeFileSync(join(dir, id, "config.json"), JSON.stringify(config));
  }
  const queue = [...ids];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: RESTORE_CONCURRENCY }, async () => {
      for (let id = queue.shift(); id; id = queue.shift()) {
        const p = Bun.spawn(["runc", "--root", root, "run", "--detach", "--bundle", join(dir, id), id], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
        if ((await p.exited) !== 0) throw new Error(`runc run ${id}: ${await new Response(p.stderr).text()}`);
      }
    }),
  );
  const ms = performance.now() - t0;
  for (const id of ids) Bun.spawnSync(["runc", "--root", root, "delete", "--force", id], { stderr: "ignore" });
  for (const id of ids) for (const h of ["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd", "unified", ""]) rmdirQuiet(join("/sys/fs/cgroup", h, "bunker-bench", id));
  for (const h of ["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd", "unified", ""]) rmdirQuiet(join("/sys/fs/cgroup", h, "bunker-bench"));
  rmSync(dir, { recursive: true, force: true });
  return ms;
}

/**
 * The crash loop's floor: the CPU that `restarts` lifecycles of the same container cost in runc
 * alone (`runc run` of `sh -c "exit 1"`: create, start, the container, delete), as a share of one
 * core over the window. This bench's own children: cutime + cstime of this process, before and after.
 */
async function runcLoopFloorPercent(env: BunkerEnv, restarts: number, seconds: number): Promise<number> {
  const dir = join(env.state, "runc-loop");
  mkdirSync(dir, { recursive: true });
  const spec = Bun.spawnSync(["runc", "spec", "--bundle", dir], { stderr: "pipe" });
  if (!spec.success) throw new Error(`runc spec: ${spec.stderr.toString()}`);
  const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as { process: { terminal: boolean; args: string[] }; root: { path: string; readonly: boolean }; linux: { cgroupsPath?: string } };
  config.process = { ...config.process, terminal: false, args: ["sh", "-c", "exit 1"] };
  config.root = { path: env.rootfs, readonly: true };
  config.linux.cgroupsPath = "/bunker-bench/loop";
  writeFileSync(join(dir, "config.json"), JSON.stringify(config));
  const before = childSeconds(process.pid);
  for (let i = 0; i < restarts; i++) {
    const p = Bun.spawn(["runc", "--root", join(dir, "runc"), "run", "--bundle", dir, "loopfloor"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
    await p.exited;
  }
  const used = childSeconds(process.pid) - before;
  for (const h of ["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd", "unified", ""]) {
    rmdirQuiet(join("/sys/fs/cgroup", h, "bunker-bench", "loop"));
    rmdirQuiet(join("/sys/fs/cgroup", h, "bunker-bench"));
  }
  rmSync(dir, { recursive: true, force: true });
  return (100 * used) / seconds;
}

function rmdirQuiet(path: string): void {
  try {
    rmdirSync(path);
  } catch {
    // not there (another hierarchy), or not empty yet
  }
}

/** utime + stime of a process, in seconds (fields after the comm: state is [0], utime [11], stime [12]). */
function ownSeconds(pid: number): number {
  const f = procStatFields(pid);
  return f ? (Number(f[11]) + Number(f[12])) / TICKS : 0;
}

/** cutime + cstime: what a process's reaped children used, in seconds. */
function childSeconds(pid: number): number {
  const f = procStatFields(pid);
  return f ? (Number(f[13]) + Number(f[14])) / TICKS : 0;
}

interface LoopWindow {
  cpuPercent: number;
  restarts: number;
  seconds: number;
  /** Seconds of CPU in the window: the daemon's own, the shims' own, and what the shims reaped (runc and the container). */
  cpu: { daemon: number; shims: number; runc: number };
}

/** Two windows: the first minute (the back-off climbing from 100 ms) and the next (near its one-minute cap). */
async function crashLoop(env: BunkerEnv): Promise<LoopWindow[]> {
  const d = await env.startDaemon();
  await ok(env, "run", "-d", "--restart", "always", "--rootfs", env.rootfs, "loop", "sh", "-c", "exit 1");
  const procs = () => [d.proc.pid, ...env.shims().map((s) => s.pid)];
  // a shim may exit and another start: each process's CPU is counted from when it was first seen
  // (the daemon's from the window's start), its own time plus its reaped children's (runc)
  type Split = { own: number; children: number };
  const seen = new Map<number, { first: Split; last: Split }>();
  const sample = () => {
    for (const pid of procs()) {
      const s = { own: ownSeconds(pid), children: childSeconds(pid) };
      const e = seen.get(pid);
      if (e) e.last = s;
      else seen.set(pid, { first: pid === d.proc.pid ? s : { own: 0, children: 0 }, last: s });
    }
  };
  const restartCount = async () => (JSON.parse(await ok(env, "inspect", "loop")) as { RestartCount: number }[])[0]!.RestartCount;
  const windows: LoopWindow[] = [];
  for (let w = 0; w < 2; w++) {
    seen.clear();
    sample();
    for (const e of seen.values()) e.first = e.last; // this window only
    const before = await restartCount();
    const t0 = performance.now();
    while (performance.now() - t0 < LOOP_SECONDS * 1000) {
      await Bun.sleep(50);
      sample();
    }
    const seconds = (performance.now() - t0) / 1000;
    const cpu = { daemon: 0, shims: 0, runc: 0 };
    for (const [pid, e] of seen) {
      const own = e.last.own - e.first.own;
      const children = e.last.children - e.first.children;
      if (pid === d.proc.pid) cpu.daemon += own + children;
      else {
        cpu.shims += own;
        cpu.runc += children;
      }
    }
    windows.push({ cpuPercent: (100 * (cpu.daemon + cpu.shims + cpu.runc)) / seconds, restarts: (await restartCount()) - before, seconds, cpu });
  }
  await ok(env, "rm", "-f", "loop");
  d.proc.kill("SIGTERM");
  await d.proc.exited;
  return windows;
}

function perRestartMs(seconds: number, restarts: number): string {
  return restarts > 0 ? ((1000 * seconds) / restarts).toFixed(0) : "-";
}

const env = await BunkerEnv.create("bunker-bench-restart-");
mountStateTmpfs(env);
try {
  const floorMs = N > 0 ? await runcFloor(env) : NaN;
  const r = N > 0 ? await reboot(env) : undefined;
  const loop = await crashLoop(env);
  if (r) console.log(`| ${N} --restart always containers running again after a simulated reboot | ${r.daemonRestoreMs.toFixed(0)} ms in the daemon's log (start to last container started); seen by ps polled at 4 Hz: ${r.fromSpawnMs.toFixed(0)} ms from the daemon's spawn; CPU: daemon ${r.cpu.daemon.toFixed(2)} s, shims ${r.cpu.shims.toFixed(2)} s, their reaped children (runc) ${r.cpu.runc.toFixed(2)} s | ${N} \`runc run --detach\` alone, ${RESTORE_CONCURRENCY} at a time: ${floorMs.toFixed(0)} ms | ${(r.daemonRestoreMs / floorMs).toFixed(2)}x (goal 2000 ms) |`);
  for (const [i, w] of loop.entries()) {
    const floor = await runcLoopFloorPercent(env, w.restarts, w.seconds);
    console.log(`| a crash-looping --restart always container, ${i === 0 ? "first" : "second"} ${w.seconds.toFixed(0)} s | ${w.cpuPercent.toFixed(2)}% of a core (daemon + shim + runc), ${w.restarts} restarts; per restart: daemon ${perRestartMs(w.cpu.daemon, w.restarts)} ms, shim ${perRestartMs(w.cpu.shims, w.restarts)} ms, runc and the container ${perRestartMs(w.cpu.runc, w.restarts)} ms | the same ${w.restarts} lifecycles by \`runc run\` alone: ${floor.toFixed(2)}% | goal < 1% |`);
  }
  console.log(JSON.stringify({ containers: N, runcFloorMs: floorMs, reboot: r, crashLoop: loop }));
} finally {
  await env.dispose();
}
