// `bunker run` benchmark, side by side in one run (as root):
//   1. lifecycle: wall time of `bunker run --rm --rootfs R id /bin/true` (with no --runtime and no
//      daemon: the foreground path; embedded and through a daemon with each shim runtime), against
//      raw `runc run` of the same spec and rootfs, and podman 4.3's `run --rm --rootfs` when it is
//      installed (tests/support/podman.ts); interleaved runs, median, ratio to runc
//   2. reload: 100 detached tasks, kill -9 the daemon, start it again: time until it answers and
//      lists all 100, and the manager's own load time (from its log)
// Usage: bun bench/run.ts [runs=20] [tasks=100]. Prints a table and one JSON line.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { generateSpec } from "../src/oci/spec.ts";
import { COMPILE_FLAGS } from "../tests/support/compile.ts";
import { BunkerEnv, BUNKER_RUNTIME, RUNC_RUNTIME, runtimes } from "../tests/support/cli-harness.ts";
import { privatePodman } from "../tests/support/podman.ts";

const RUNS = Number(process.argv[2] ?? 20);
const TASKS = Number(process.argv[3] ?? 100);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function timed(cmd: string[], env: Record<string, string>): Promise<number> {
  const t0 = performance.now();
  const p = Bun.spawn(cmd, { env, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
  const ms = performance.now() - t0;
  if (code !== 0) throw new Error(`${cmd.join(" ")}: exit ${code}: ${err.trim()}`);
  return ms;
}

/** A compiled Bun program that only runs its arguments as a command and exits with its status. */
async function floorBinary(dir: string): Promise<string> {
  const src = join(dir, "floor.ts");
  writeFileSync(src, "async function main() {\n  const p = Bun.spawn(process.argv.slice(2), { stdio: [\"inherit\", \"inherit\", \"inherit\"] });\n  process.exit(await p.exited);\n}\nvoid main();\n");
  const out = join(dir, "floor");
  const build = Bun.spawnSync([process.execPath, "build", ...COMPILE_FLAGS, src, "--outfile", out], { stdout: "ignore", stderr: "pipe" });
  if (build.exitCode !== 0) throw new Error(`bun build --compile floor.ts: ${build.stderr.toString()}`);
  return out;
}

async function lifecycle(env: BunkerEnv): Promise<Record<string, number>> {
  // Raw runc on the same spec and rootfs: the spec's root points at the rootfs itself.
  const bundle = join(env.dir, "runc-bundle");
  mkdirSync(bundle);
  const spec = generateSpec({ namespace: env.namespace, id: "bench", args: ["/bin/true"] });
  writeFileSync(join(bundle, "config.json"), JSON.stringify({ ...spec, root: { path: env.rootfs, readonly: false } }));
  const runcRoot = join(env.dir, "runc-root");
  const e = env.spawnEnv();
  const floor = await floorBinary(env.dir);
  const cases: [string, (i: number) => string[]][] = [
    ["runc run", (i) => ["runc", "--root", runcRoot, "run", "--bundle", bundle, `raw${i}`]],
    // The least any compiled Bun CLI can cost: start, spawn the same `runc run`, wait, exit.
    ["floor: compiled Bun spawning runc run", (i) => [floor, "runc", "--root", runcRoot, "run", "--bundle", bundle, `fl${i}`]],
    // No --runtime and no daemon: the foreground path (runc run under the CLI, no shim).
    ["bunker run (default, foreground)", (i) => [env.bunker, ...env.globals(), "run", "--rm", "--rootfs", env.rootfs, `f${i}`, "/bin/true"]],
  ];
  // podman 4.3 on the same rootfs, no network (as the suite's BUNKER_NETWORK=none), when installed
  const podman = privatePodman(join(env.dir, "podman"), e);
  if (podman) cases.push(["podman run --rm --rootfs", () => [...podman.argv, "run", "--rm", "--network", "none", "--rootfs", env.rootfs, "/bin/true"]]);
  for (const rt of runtimes()) {
    const short = rt === BUNKER_RUNTIME ? "bunker" : "runc.v2";
    cases.push([`bunker run (${short}, embedded)`, (i) => [env.bunker, ...env.globals(), "run", "--rm", "--runtime", rt, "--rootfs", env.rootfs, `e${short.replace(".", "")}${i}`, "/bin/true"]]);
  }
  const samples = new Map<string, number[]>(cases.map(([n]) => [n, []]));
  for (let i = -2; i < RUNS; i++) {
    for (const [name, argv] of cases) {
      const ms = await timed(argv(i + 2), name.startsWith("podman") ? (podman!.env as Record<string, string>) : e);
      if (i >= 0) samples.get(name)!.push(ms); // two warm-up rounds
    }
  }
  const daemon = await env.startDaemon();
  const dcases = runtimes().map((rt): [string, (i: number) => string[]] => {
    const short = rt === BUNKER_RUNTIME ? "bunker" : "runc.v2";
    return [`bunker run (${short}, daemon)`, (i) => [env.bunker, ...env.globals(), "run", "--rm", "--runtime", rt, "--rootfs", env.rootfs, `d${short.replace(".", "")}${i}`, "/bin/true"]];
  });
  for (const [n] of dcases) samples.set(n, []);
  for (let i = -2; i < RUNS; i++) {
    for (const [name, argv] of [cases[0]!, ...dcases]) {
      const ms = await timed(argv(RUNS + i + 4), e);
      if (i >= 0) samples.get(name)!.push(ms);
    }
  }
  daemon.proc.kill("SIGTERM");
  await daemon.proc.exited;
  podman?.cleanup();
  const out: Record<string, number> = {};
  for (const [name, xs] of samples) out[name] = median(xs);
  return out;
}

async function reload(env: BunkerEnv, runtime: string): Promise<{ answerMs: number; listedMs: number; loadMs: number }> {
  const first = await env.startDaemon();
  const ids = Array.from({ length: TASKS }, (_, i) => `r${i}`);
  for (let i = 0; i < ids.length; i += 10) {
    await Promise.all(ids.slice(i, i + 10).map(async (id) => {
      const r = await env.run(["run", "-d", "--runtime", runtime, "--rootfs", env.rootfs, id, "sleep", "1000"]);
      if (r.code !== 0) throw new Error(`run -d ${id}: ${r.stderr}`);
    }));
  }
  first.proc.kill("SIGKILL");
  await first.proc.exited;
  const t0 = performance.now();
  const second = await env.startDaemon();
  const answerMs = performance.now() - t0;
  const ps = await env.run(["ps", "-q"]);
  const listedMs = performance.now() - t0;
  const listed = ps.stdout.split("\n").filter(Boolean).length;
  if (listed !== TASKS) throw new Error(`reload listed ${listed} of ${TASKS} tasks`);
  second.proc.kill("SIGTERM");
  await second.proc.exited;
  const log = second.log();
  const ready = log.split("\n").map((l) => { try { return JSON.parse(l) as { msg?: string; loadMs?: number }; } catch { return {}; } }).find((l) => l.msg === "bunker daemon ready");
  for (let i = 0; i < ids.length; i += 20) await env.run(["rm", "-f", ...ids.slice(i, i + 20)]);
  return { answerMs, listedMs, loadMs: ready?.loadMs ?? NaN };
}

if (process.getuid?.() !== 0) throw new Error("bench/run.ts needs root");
const env = await BunkerEnv.create("bunker-bench-");
try {
  const life = await lifecycle(env);
  const runc = life["runc run"]!;
  console.log(`\nlifecycle of /bin/true, median of ${RUNS} interleaved runs`);
  console.log(`${"".padEnd(34)}${"ms".padStart(8)}${"x runc".padStart(9)}`);
  for (const [name, ms] of Object.entries(life)) console.log(`${name.padEnd(34)}${ms.toFixed(1).padStart(8)}${(ms / runc).toFixed(2).padStart(9)}`);
  const reloads: Record<string, { answerMs: number; listedMs: number; loadMs: number }> = {};
  for (const rt of runtimes()) reloads[rt] = await reload(env, rt);
  console.log(`\nreload of ${TASKS} tasks after kill -9 of the daemon`);
  for (const [rt, r] of Object.entries(reloads)) {
    console.log(`${rt.padEnd(26)} manager load ${r.loadMs.toFixed(0)} ms, daemon answering ${r.answerMs.toFixed(0)} ms, all listed ${r.listedMs.toFixed(0)} ms`);
  }
  console.log(JSON.stringify({ bench: "run", runs: RUNS, tasks: TASKS, lifecycleMs: life, reload: reloads, runcRuntime: RUNC_RUNTIME }));
} finally {
  await env.dispose();
}
