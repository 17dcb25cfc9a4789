// Shim benchmark, side by side on one private containerd 1.6: bunker (io.containerd.bunker.v1, the
// compiled shim) against Debian's io.containerd.runc.v2.
//   1. lifecycle: wall time of `ctr run --rm --rootfs R id /bin/true`, interleaved runs, median
//   2. memory: total RSS and PSS (/proc/PID/smaps_rollup) of every shim process with N sleeping
//      containers, N = 20 and 100
// Run as root: bun bench/shim.ts [runs=20] [sizes=20,100]. Prints a table and one JSON line.
// The shim is built from src/shims/bunker/bin.ts (compiled, bytecode) unless BUNKER_SHIM_BIN_DIR names a
// directory with a prebuilt containerd-shim-bunker-v1 (e.g. BUNKER_SHIM_BIN_DIR=dist).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startContainerd, type TestContainerd } from "../tests/support/containerd.ts";
import { ctrOk, inBatches, removeContainers } from "./ctr-batch.ts";
import { allProcs, cmdline } from "../tests/support/procs.ts";
import { copyRootfs } from "../tests/support/rootfs.ts";
import { endShims, shimPath, shimServers } from "../tests/support/shim-env.ts";

const RUNS = Number(process.argv[2] ?? 20);
const SIZES = (process.argv[3] ?? "20,100").split(",").map(Number);
const RUNTIMES = { bunker: "io.containerd.bunker.v1", runc: "io.containerd.runc.v2" } as const;
type Name = keyof typeof RUNTIMES;
const NS = "bench";
const KiB = 1024;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function shimPids(ctd: TestContainerd, name: Name): number[] {
  if (name === "bunker") return shimServers(ctd).map((p) => p.pid);
  return allProcs()
    .map((p) => p.pid)
    .filter((pid) => {
      const cmd = cmdline(pid);
      return cmd.includes("containerd-shim-runc-v2") && cmd.includes(` -address ${ctd.address}`);
    });
}

/** Rss and Pss in KiB from smaps_rollup. */
function memory(pid: number): { rss: number; pss: number } {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const field = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? 0);
  return { rss: field("Rss"), pss: field("Pss") };
}

const ctr = (ctd: TestContainerd, args: string[]): Promise<void> => ctrOk(ctd, NS, args);

async function lifecycle(ctd: TestContainerd, rootfs: string): Promise<Record<Name, number[]>> {
  const times: Record<Name, number[]> = { bunker: [], runc: [] };
  for (let i = -3; i < RUNS; i++) {
    for (const name of Object.keys(RUNTIMES) as Name[]) {
      const t0 = performance.now();
      await ctr(ctd, ["run", "--rm", "--runtime", RUNTIMES[name], "--rootfs", rootfs, `lc-${name}-${i + 3}`, "/bin/true"]);
      if (i >= 0) times[name].push(performance.now() - t0); // the first three are warm-up
    }
  }
  return times;
}


async function memoryWith(ctd: TestContainerd, rootfs: string, name: Name, n: number): Promise<{ procs: number; rss: number; pss: number }> {
  const ids = Array.from({ length: n }, (_, i) => `mem-${name}-${n}-${i}`);
  await inBatches(ids, 10, (id) => ctr(ctd, ["run", "-d", "--runtime", RUNTIMES[name], "--rootfs", rootfs, id, "/bin/sleep", "3600"]));
  await Bun.sleep(3000); // steady state: both kinds of shim collect garbage after a burst of creates
  const pids = shimPids(ctd, name);
  let rss = 0;
  let pss = 0;
  for (const pid of pids) {
    const m = memory(pid);
    rss += m.rss;
    pss += m.pss;
  }
  await removeContainers(ctd, NS, ids);
  return { procs: pids.length, rss, pss };
}

const ctd = await startContainerd({ path: await shimPath() });
try {
  const rootfs = await copyRootfs(join(ctd.dir, "rootfs"));
  const times = await lifecycle(ctd, rootfs);
  const med = { bunker: median(times.bunker), runc: median(times.runc) };
  const mem: Record<string, { procs: number; rss: number; pss: number }> = {};
  for (const n of SIZES) {
    for (const name of Object.keys(RUNTIMES) as Name[]) mem[`${name}@${n}`] = await memoryWith(ctd, rootfs, name, n);
  }
  const mib = (kib: number) => (kib / KiB).toFixed(1);
  console.log(`lifecycle: ctr run --rm /bin/true, ${RUNS} interleaved runs, median`);
  console.log(`  bunker  ${med.bunker.toFixed(1)} ms   runc.v2 ${med.runc.toFixed(1)} ms   ratio ${(med.bunker / med.runc).toFixed(2)}x (target <= 0.8x)`);
  console.log("memory: all shim processes, sleeping containers");
  for (const n of SIZES) {
    for (const name of Object.keys(RUNTIMES) as Name[]) {
      const m = mem[`${name}@${n}`]!;
      console.log(`  ${String(n).padStart(3)} containers  ${name.padEnd(6)}  ${String(m.procs).padStart(3)} procs  RSS ${mib(m.rss).padStart(7)} MiB  PSS ${mib(m.pss).padStart(7)} MiB`);
    }
  }
  console.log(JSON.stringify({ bench: "shim", runs: RUNS, lifecycleMs: med, ratio: med.bunker / med.runc, memoryKiB: mem }));
} finally {
  await endShims(ctd).catch(() => undefined);
  await ctd.stop();
}
