// Where does the time of one `ctr run --rm --rootfs R id /bin/true` go? Side by side on one private
// containerd 1.6: bunker (io.containerd.bunker.v1, the compiled shim) and io.containerd.runc.v2.
// bench/shim.ts gives only the wall time; to say whether "bunker <= 0.8x runc.v2" is reachable we
// need to split it into what containerd/ctr and runc cost (any shim pays those) and what the shim
// adds. Kernel process events (exec/fork/exit, system-wide via perf) give those boundaries without
// instrumenting containerd, runc or either shim, and cost little enough not to distort them.
// Run as root: bun bench/lifecycle-breakdown.ts [runs=15]. Prints a table and one JSON line.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { startContainerd } from "../tests/support/containerd.ts";
import { allProcs, cmdline } from "../tests/support/procs.ts";
import { copyRootfs } from "../tests/support/rootfs.ts";
import { endShims, SHIM_BINARY, shimBinDir, shimPath } from "../tests/support/shim-env.ts";

const RUNS = Number(process.argv[2] ?? 15);
const RUNTIMES = { bunker: "io.containerd.bunker.v1", runc: "io.containerd.runc.v2" } as const;
type Name = keyof typeof RUNTIMES;
const NS = "lbench";
const PHASES = [
  ["ctr+containerd until shim start exec", "toShimStart"],
  ["shim start action", "shimStart"],
  ["shim work until runc create exec", "toCreate"],
  ["runc create", "runcCreate"],
  ["gap until runc start exec", "toStart"],
  ["runc start", "runcStart"],
  ["container /bin/true", "container"],
  ["gap until runc delete exec", "toDelete"],
  ["runc delete", "runcDelete"],
  ["gap until shim delete action exec", "toShimDelete"],
  ["shim delete action", "shimDelete"],
  ["tail until ctr exits", "tail"],
] as const;
type Phase = (typeof PHASES)[number][1];
// What any shim pays: ctr/containerd before the shim is involved and after it is gone, and runc's
// own work plus the container itself. Everything else is the shim (and the RPCs it answers).
const FLOOR: Phase[] = ["toShimStart", "runcCreate", "runcStart", "container", "runcDelete", "tail"];
type Breakdown = Record<Phase | "total", number> & { runcExecs: number; serveSpawned: boolean };

if (process.getuid?.() !== 0) {
  console.error("lifecycle-breakdown: skipped, needs root (containerd, runc, perf -a)");
  process.exit(1);
}
if (!Bun.which("perf")) {
  console.error("lifecycle-breakdown: skipped, perf is not installed (apt-get install linux-perf)");
  process.exit(1);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? Number.NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

interface Proc {
  pid: number;
  parent: number | undefined;
  file: string;
  exec: number; // ms
  exit: number | undefined; // ms, when its thread group died
}

/**
 * The processes of one run that descend from `roots` (our containerd, this bench and the shim
 * servers alive before the run), from `perf script` lines such as
 *   `runc 4242/4242 1234.567890: sched:sched_process_exec: filename=/usr/sbin/runc pid=4242 old_pid=4242`.
 * Following forks from known roots, rather than matching names, keeps the machine's other
 * containerds, runcs and /bin/trues out.
 */
function parseRun(text: string, roots: number[]): Proc[] {
  const ours = new Set(roots);
  const parent = new Map<number, number>();
  const procs: Proc[] = [];
  const latest = new Map<number, Proc>(); // pid -> its last exec, which its exit belongs to
  for (const line of text.split("\n")) {
    const m = /^\s*.*?\s(\d+)\/(\d+)\s+([\d.]+):\s+sched:(\w+):\s+(.*)$/.exec(line);
    if (!m) continue;
    const tgid = Number(m[1]);
    const ms = Number(m[3]) * 1000;
    const f = Object.fromEntries([...m[5]!.matchAll(/(\w+)=(\S+)/g)].map((x) => [x[1], x[2]]));
    if (m[4] === "sched_process_fork") {
      if (!ours.has(tgid)) continue;
      // threads are forks too: harmless, a thread never execs under its own tid
      ours.add(Number(f.child_pid));
      parent.set(Number(f.child_pid), tgid);
    } else if (m[4] === "sched_process_exec" && ours.has(tgid)) {
      const p: Proc = { pid: tgid, parent: parent.get(tgid), file: f.filename ?? "", exec: ms, exit: undefined };
      procs.push(p);
      latest.set(tgid, p);
    } else if (m[4] === "sched_process_exit" && f.group_dead === "true") {
      const p = latest.get(tgid);
      if (p) p.exit = ms;
    }
  }
  return procs;
}

function breakdown(procs: Proc[], ctdPid: number): Breakdown {
  const need = <T>(what: string, v: T | undefined): T => {
    if (v === undefined) throw new Error(`no ${what} in the perf events of this run`);
    return v;
  };
  const ctr = need("ctr exec", procs.find((p) => basename(p.file) === "ctr" && p.parent === process.pid));
  const shims = procs.filter((p) => basename(p.file).startsWith("containerd-shim-"));
  // containerd execs the shim binary for `start` and, after the shim is gone, for `delete`;
  // runc.v2's start re-execs itself as the serve process (so does ours when no server is left).
  const actions = shims.filter((p) => p.parent === ctdPid);
  const start = need("shim start exec", actions[0]);
  const del = need("shim delete exec", actions.length > 1 ? actions.at(-1) : undefined);
  const serve = shims.find((p) => p.parent === start.pid);
  const byPid = new Map(procs.map((p) => [p.pid, p]));
  // runc's own re-exec (runc init) has a runc parent; the three commands have a shim parent
  const runcs = procs.filter((p) => basename(p.file) === "runc" && basename(byPid.get(p.parent ?? -1)?.file ?? "") !== "runc");
  const container = need("container exec", procs.find((p) => p.file === "/bin/true" && p.exec > start.exec));
  const create = need("runc create", runcs.find((p) => p.exec > start.exec));
  const runcStart = need("runc start", runcs.filter((p) => p.exec < container.exec).at(-1));
  // the delete action may run `runc delete` again (runc.v2 does): the task's delete comes first
  const runcDelete = need("runc delete", runcs.filter((p) => p.exec > container.exec && p.exec < del.exec).at(-1));
  const end = (p: Proc) => need(`exit of ${p.file} ${p.pid}`, p.exit);
  const startEnd = Math.max(end(start), serve?.exec ?? 0);
  return {
    toShimStart: start.exec - ctr.exec,
    shimStart: startEnd - start.exec,
    toCreate: create.exec - startEnd,
    runcCreate: end(create) - create.exec,
    toStart: runcStart.exec - end(create),
    runcStart: end(runcStart) - runcStart.exec,
    container: end(container) - container.exec,
    toDelete: runcDelete.exec - Math.max(end(container), end(runcStart)),
    runcDelete: end(runcDelete) - runcDelete.exec,
    toShimDelete: del.exec - end(runcDelete),
    shimDelete: end(del) - del.exec,
    tail: end(ctr) - end(del),
    total: end(ctr) - ctr.exec,
    runcExecs: runcs.filter((p) => p.exec > start.exec).length,
    serveSpawned: serve !== undefined,
  };
}

/** Median wall time (ms) of spawning argv until it exits, 21 times. */
function startup(argv: string[]): number {
  const times: number[] = [];
  for (let i = 0; i < 21; i++) {
    const t0 = performance.now();
    const r = Bun.spawnSync(argv, { stdout: "ignore", stderr: "ignore" });
    if (!r.success) throw new Error(`${argv.join(" ")} failed: ${r.exitCode}`);
    times.push(performance.now() - t0);
  }
  return median(times);
}

/** A trivial program compiled as our shim is: the least any Bun process start costs here. */
function trivialBun(dir: string): string {
  writeFileSync(join(dir, "exit.ts"), "process.exit(0);\n");
  const out = join(dir, "exit");
  const r = Bun.spawnSync([process.execPath, "build", "--compile", "--minify", "--bytecode", join(dir, "exit.ts"), "--outfile", out]);
  if (!r.success) throw new Error(`bun build --compile: ${r.stderr.toString()}`);
  return out;
}

const tmp = mkdtempSync("/tmp/bunker-lifecycle-");
const ctd = await startContainerd({ path: await shimPath() });
let perf: ReturnType<typeof Bun.spawn> | undefined;
try {
  const rootfs = await copyRootfs(join(ctd.dir, "rootfs"));
  const run = async (name: Name, id: string) => {
    const r = await ctd.ctr(["-n", NS, "run", "--rm", "--runtime", RUNTIMES[name], "--rootfs", rootfs, id, "/bin/true"], { timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(`ctr run ${name}: ${r.code} ${r.stderr}`);
  };
  for (let i = 0; i < 3; i++) for (const name of Object.keys(RUNTIMES) as Name[]) await run(name, `lbw-${name}-${process.pid}-${i}`);

  // Record every run first and parse afterwards: parsing between runs would stretch the gaps
  // past the bunker shim's 5 s linger and turn some runs into cold starts of a new server.
  const recorded: { name: Name; file: string; roots: number[] }[] = [];
  for (let i = 0; i < RUNS; i++) {
    for (const name of Object.keys(RUNTIMES) as Name[]) {
      const file = join(tmp, `${name}-${i}.data`);
      // shim servers alive now (ours lingers between runs) are roots: their runc children count
      const roots = [process.pid, ctd.pid, ...allProcs().filter((p) => cmdline(p.pid).includes(` -address ${ctd.address} `)).map((p) => p.pid)];
      perf = Bun.spawn(["perf", "record", "-q", "-e", "sched:sched_process_exec,sched:sched_process_exit,sched:sched_process_fork", "-a", "-o", file], {
        stdout: "ignore",
        stderr: "inherit",
      });
      await Bun.sleep(1000); // perf -a needs a moment before it records
      await run(name, `lb-${name}-${process.pid}-${i}`);
      await Bun.sleep(300); // the shim's delete action may still be exiting
      process.kill(perf.pid, "SIGINT");
      await perf.exited;
      perf = undefined;
      recorded.push({ name, file, roots });
    }
  }
  const results: Record<Name, Breakdown[]> = { bunker: [], runc: [] };
  for (const { name, file, roots } of recorded) {
    const script = Bun.spawnSync(["perf", "script", "-i", file, "-F", "comm,pid,tid,time,event,trace"], { stderr: "ignore" });
    const procs = parseRun(script.stdout.toString(), roots);
    // LB_DEBUG=1 lists the processes each run was split by, to check the attribution by eye
    if (process.env.LB_DEBUG) for (const p of procs) console.error(name, p.pid, p.parent, p.file, p.exec.toFixed(1), p.exit?.toFixed(1));
    results[name].push(breakdown(procs, ctd.pid));
    rmSync(file, { force: true });
  }

  const starts = {
    trivialBun: startup([trivialBun(tmp)]),
    bunkerShimV: startup([join(await shimBinDir(), SHIM_BINARY), "-v"]),
    runcShimV: startup([Bun.which("containerd-shim-runc-v2") ?? "containerd-shim-runc-v2", "-v"]),
  };

  const keys = [...PHASES.map((p) => p[1]), "total"] as const;
  const med = Object.fromEntries(
    (Object.keys(RUNTIMES) as Name[]).map((n) => [n, Object.fromEntries(keys.map((k) => [k, median(results[n].map((b) => b[k]))]))]),
  ) as Record<Name, Record<Phase | "total", number>>;
  const ms = (x: number) => x.toFixed(1).padStart(8);
  console.log(`ctr run --rm /bin/true: ${RUNS} interleaved runs, median per phase (ms; phases are medians, so they need not add up)`);
  console.log(`  ${"phase".padEnd(40)} ${"bunker".padStart(8)} ${"runc.v2".padStart(8)} ${"delta".padStart(8)}`);
  for (const [label, k] of [...PHASES, ["total (ctr exec -> ctr exit)", "total"] as const]) {
    const mark = FLOOR.includes(k as Phase) ? "*" : " ";
    console.log(`${mark} ${label.padEnd(40)} ${ms(med.bunker[k])} ${ms(med.runc[k])} ${ms(med.bunker[k] - med.runc[k])}`);
  }
  console.log("  (* = paid by any shim: ctr/containerd outside the shim's phases, runc, the container)");
  const runcExecs = (n: Name) => [...new Set(results[n].map((b) => b.runcExecs))].join("/");
  const spawned = results.bunker.filter((b) => b.serveSpawned).length;
  console.log(`  runc commands per run: bunker ${runcExecs("bunker")}, runc.v2 ${runcExecs("runc")}; bunker runs whose start spawned a server: ${spawned}/${RUNS}`);

  // The floor takes each unavoidable phase at the better of the two runtimes' medians.
  const floor = FLOOR.reduce((s, k) => s + Math.min(med.bunker[k], med.runc[k]), 0);
  const target = 0.8 * med.runc.total;
  const shimPart = (n: Name) => med[n].total - FLOOR.reduce((s, k) => s + med[n][k], 0);
  console.log(
    `floor: ${floor.toFixed(1)} ms unavoidable; 0.8x runc.v2 = ${target.toFixed(1)} ms leaves ${(target - floor).toFixed(1)} ms for everything the shim does` +
      ` (now: bunker ${shimPart("bunker").toFixed(1)} ms, runc.v2 ${shimPart("runc").toFixed(1)} ms;` +
      ` ratio ${(med.bunker.total / med.runc.total).toFixed(2)}x, bunker ${(med.bunker.total - target).toFixed(1)} ms over the target)`,
  );
  console.log(
    `process start (median of 21): trivial compiled Bun ${starts.trivialBun.toFixed(1)} ms, containerd-shim-bunker-v1 -v ${starts.bunkerShimV.toFixed(1)} ms, containerd-shim-runc-v2 -v ${starts.runcShimV.toFixed(1)} ms;` +
      ` bunker's start+delete actions are two Bun starts >= ${(2 * starts.trivialBun).toFixed(1)} ms`,
  );
  console.log(JSON.stringify({ bench: "lifecycle-breakdown", runs: RUNS, medianMs: med, floorMs: floor, targetMs: target, shimBudgetMs: target - floor, startupMs: starts }));
} finally {
  if (perf) {
    process.kill(perf.pid, "SIGINT");
    await perf.exited;
  }
  await endShims(ctd).catch(() => undefined);
  await ctd.stop();
  rmSync(tmp, { recursive: true, force: true });
}
