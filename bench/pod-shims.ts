// One shim per pod, as Kubernetes runs shims (issue #19): containerd's CRI plugin sets the
// annotation io.kubernetes.cri.sandbox-id on every container of a pod, and both runc.v2 and bunker
// give each distinct sandbox id its own shim process. Side by side on one private containerd 1.6:
//   1. memory: N sleeping "pods" (one container each, its own sandbox id), N from argv (20,100):
//      total and per-shim PSS, RSS and anonymous memory (/proc/PID/smaps_rollup) for
//      - bunker, one shim per pod (the Kubernetes grouping)
//      - io.containerd.runc.v2, one shim per pod (the reference)
//      - bunker with io.containerd.bunker.v1.group=namespace as well: every pod in one shim (the
//        trade-off bunker offers: one process for all pods, at the cost of one failure domain)
//   2. the shim binary's `start` and `delete` actions alone, each exec'd as containerd 1.6 execs
//      them (flags, bundle as cwd, TTRPC_ADDRESS), interleaved, median of RUNS: these are the
//      process starts a pod pays on containerd's critical path.
// The shim is dist/'s (bash scripts/build.sh, run first: it rebuilds only what changed) unless
// BUNKER_SHIM_BIN_DIR names another directory holding containerd-shim-bunker-v1.
// Run as root: bun bench/pod-shims.ts [sizes=20,100] [runs=20]. Prints a table and one JSON line.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { readAddress, removeSocket } from "../src/contract/address.ts";
import { BUNKER_GROUP_ANNOTATION, CRI_SANDBOX_ANNOTATION, GROUP_PER_NAMESPACE } from "../src/contract/grouping.ts";
import { startContainerd, type TestContainerd } from "../tests/support/containerd.ts";
import { ctrOk, inBatches, removeContainers } from "./ctr-batch.ts";
import { allProcs, cmdline, killSame, procInfo, waitGone } from "../tests/support/procs.ts";
import { copyRootfs } from "../tests/support/rootfs.ts";
import { SHIM_BINARY, shimBinDir, shimPath } from "../tests/support/shim-env.ts";

const SIZES = (process.argv[2] ?? "20,100").split(",").map(Number);
const RUNS = Number(process.argv[3] ?? 20);
const NS = "podbench";
const KiB = 1024;
const REPO = resolve(import.meta.dir, "..");

/** The three ways of serving pods compared; `annotations` are what each container carries. */
const CONFIGS = {
  bunker: { runtime: "io.containerd.bunker.v1", annotations: (pod: string) => ({ [CRI_SANDBOX_ANNOTATION]: pod }) },
  runc: { runtime: "io.containerd.runc.v2", annotations: (pod: string) => ({ [CRI_SANDBOX_ANNOTATION]: pod }) },
  "bunker-ns": {
    runtime: "io.containerd.bunker.v1",
    annotations: (pod: string) => ({ [CRI_SANDBOX_ANNOTATION]: pod, [BUNKER_GROUP_ANNOTATION]: GROUP_PER_NAMESPACE }),
  },
} as const;
type Config = keyof typeof CONFIGS;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

interface Mem {
  rss: number;
  pss: number;
  anon: number;
  pssAnon: number;
  pssFile: number;
}
const MEM_FIELDS: Array<[keyof Mem, string]> = [
  ["rss", "Rss"],
  ["pss", "Pss"],
  ["anon", "Anonymous"],
  ["pssAnon", "Pss_Anon"],
  ["pssFile", "Pss_File"],
];

/** KiB figures of one process from smaps_rollup. */
function memory(pid: number): Mem {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const m = {} as Mem;
  for (const [key, field] of MEM_FIELDS) m[key] = Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? 0);
  return m;
}

/** The shim processes serving our containerd: Go's get the socket as fd 3, bunker's `-socket`. */
function shimPids(ctd: TestContainerd, runtime: string): number[] {
  const go = runtime === CONFIGS.runc.runtime;
  return allProcs()
    .map((p) => p.pid)
    .filter((pid) => {
      const cmd = cmdline(pid);
      if (!cmd.includes(` -address ${ctd.address} `)) return false;
      return go ? cmd.includes("containerd-shim-runc-v2") && !/ (start|delete)$/.test(cmd) : cmd.includes(" -socket ");
    });
}

const ctr = (ctd: TestContainerd, args: string[]): Promise<void> => ctrOk(ctd, NS, args);


interface PodsResult {
  procs: number;
  total: Mem;
}

async function podsMemory(ctd: TestContainerd, rootfs: string, config: Config, n: number): Promise<PodsResult> {
  const { runtime, annotations } = CONFIGS[config];
  const ids = Array.from({ length: n }, (_, i) => `${config}-${n}-${i}`);
  await inBatches(ids, 10, async (id) => {
    const notes = Object.entries(annotations(`pod-${id}`)).flatMap(([k, v]) => ["--annotation", `${k}=${v}`]);
    await ctr(ctd, ["run", "-d", "--runtime", runtime, ...notes, "--rootfs", rootfs, id, "/bin/sleep", "3600"]);
  });
  await Bun.sleep(3000); // steady state: both kinds of shim collect garbage after a burst of creates
  const pids = shimPids(ctd, runtime);
  const total: Mem = { rss: 0, pss: 0, anon: 0, pssAnon: 0, pssFile: 0 };
  for (const pid of pids) {
    const m = memory(pid);
    for (const [k] of MEM_FIELDS) total[k] += m[k];
  }
  await removeContainers(ctd, NS, ids);
  await waitGone(pids.map((pid) => procInfo(pid)).filter((p) => p !== undefined), 15_000);
  return { procs: pids.length, total };
}

/** One exec of a shim binary's action, as containerd's shim.Command builds it; wall time in ms. */
async function action(ctd: TestContainerd, binary: string, id: string, bundle: string, act: "start" | "delete"): Promise<{ ms: number; out: string }> {
  const args = ["-namespace", NS, "-address", ctd.address, "-publish-binary", "/usr/bin/containerd", "-id", id];
  if (act === "delete") args.push("-bundle", bundle);
  const t0 = performance.now();
  const proc = Bun.spawn([binary, ...args, act], {
    cwd: bundle,
    env: { ...process.env, TTRPC_ADDRESS: ctd.ttrpcAddress, BUNKER_SHIM_LINGER_MS: "0" },
    stdin: "ignore", // containerd 1.6 passes stdin only when the runtime has options; ctr sets none
    stdout: "pipe",
    stderr: "pipe",
  });
  const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  const ms = performance.now() - t0;
  if (code !== 0) throw new Error(`${binary} ${act}: exit ${code}: ${err}`);
  return { ms, out };
}

/** Ends the serve process a start action left (the pod's shim) by pid, and its socket. */
async function endServer(ctd: TestContainerd, id: string, bundle: string): Promise<void> {
  const procs = allProcs().filter((p) => {
    const cmd = cmdline(p.pid);
    return cmd.includes(` -address ${ctd.address} `) && cmd.includes(` -id ${id} `);
  });
  for (const p of procs) killSame(p, "SIGKILL");
  await waitGone(procs, 5000);
  removeSocket(readAddress(bundle));
}

async function actions(ctd: TestContainerd, bunkerBinary: string): Promise<Record<"bunker" | "runc", { start: number[]; delete: number[] }>> {
  const binaries = { bunker: bunkerBinary, runc: "/usr/bin/containerd-shim-runc-v2" };
  const times = { bunker: { start: [] as number[], delete: [] as number[] }, runc: { start: [] as number[], delete: [] as number[] } };
  for (let i = -3; i < RUNS; i++) {
    for (const name of ["bunker", "runc"] as const) {
      const id = `act-${name}-${i + 3}`;
      const bundle = join(ctd.dir, "bundles", id);
      mkdirSync(bundle, { recursive: true });
      // what the shims read at start: the spec's annotations (for the group)
      writeFileSync(join(bundle, "config.json"), JSON.stringify({ ociVersion: "1.0.2", annotations: { [CRI_SANDBOX_ANNOTATION]: `pod-${id}` } }));
      // what runc.v2's Create leaves and its delete action insists on reading (the runc binary)
      writeFileSync(join(bundle, "runtime"), "runc");
      const start = await action(ctd, binaries[name], id, bundle, "start");
      if (!start.out.startsWith("unix://")) throw new Error(`${name} start answered ${JSON.stringify(start.out)}`);
      await endServer(ctd, id, bundle);
      const del = await action(ctd, binaries[name], id, bundle, "delete");
      if (i >= 0) {
        times[name].start.push(start.ms);
        times[name].delete.push(del.ms);
      }
    }
  }
  return times;
}

function buildDist(): void {
  if (process.env.BUNKER_SHIM_BIN_DIR) return;
  const r = Bun.spawnSync(["bash", join(REPO, "scripts/build.sh")], { stdout: "inherit", stderr: "inherit" });
  if (r.exitCode !== 0) throw new Error("scripts/build.sh failed");
  process.env.BUNKER_SHIM_BIN_DIR = join(REPO, "dist");
}

if (process.getuid?.() !== 0) {
  console.error("pod-shims: needs root (containerd, runc)");
  process.exit(1);
}
buildDist();
const ctd = await startContainerd({ path: await shimPath(), env: { BUNKER_SHIM_LINGER_MS: "0" } });
try {
  const rootfs = await copyRootfs(join(ctd.dir, "rootfs"));
  const mem: Record<string, PodsResult> = {};
  for (const n of SIZES) for (const config of Object.keys(CONFIGS) as Config[]) mem[`${config}@${n}`] = await podsMemory(ctd, rootfs, config, n);
  const times = await actions(ctd, join(await shimBinDir(), SHIM_BINARY));

  const mib = (kib: number, digits = 1) => (kib / KiB).toFixed(digits);
  console.log("memory: N sleeping pods (one container each), every shim process, smaps_rollup");
  console.log("   pods  config      procs   PSS MiB   RSS MiB  anon MiB | per shim: PSS    RSS   anon | PSS vs runc.v2");
  for (const n of SIZES) {
    const runc = mem[`runc@${n}`]!;
    for (const config of Object.keys(CONFIGS) as Config[]) {
      const { procs, total } = mem[`${config}@${n}`]!;
      const per = (k: keyof Mem) => mib(total[k] / Math.max(procs, 1), 2).padStart(6);
      console.log(
        `  ${String(n).padStart(5)}  ${config.padEnd(10)} ${String(procs).padStart(6)} ${mib(total.pss).padStart(9)} ${mib(total.rss).padStart(9)} ${mib(total.anon).padStart(9)} | ${per("pss")} ${per("rss")} ${per("anon")} | ${(total.pss / runc.total.pss).toFixed(2)}x`,
      );
    }
  }
  const med = (name: "bunker" | "runc", act: "start" | "delete") => median(times[name][act]);
  console.log(`shim actions, exec'd alone as containerd does, median of ${RUNS} interleaved`);
  for (const act of ["start", "delete"] as const) {
    console.log(`  ${act.padEnd(6)}  bunker ${med("bunker", act).toFixed(1).padStart(6)} ms   runc.v2 ${med("runc", act).toFixed(1).padStart(6)} ms   ratio ${(med("bunker", act) / med("runc", act)).toFixed(2)}x`);
  }
  const medians = Object.fromEntries((["bunker", "runc"] as const).map((name) => [name, { start: med(name, "start"), delete: med(name, "delete") }]));
  console.log(JSON.stringify({ bench: "pod-shims", runs: RUNS, memoryKiB: mem, actionMs: medians }));
} finally {
  await ctd.stop();
}
