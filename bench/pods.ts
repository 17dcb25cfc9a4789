// Pods as Kubernetes runs them, through containerd's CRI plugin (issue #19), bunker's shim against
// io.containerd.runc.v2 side by side in one containerd (two RuntimeClass handlers):
//   1. pod start: RunPodSandbox + CreateContainer + StartContainer of one busybox container, what
//      kubelet does for a new pod; interleaved rounds, medians and the ratio (also for the handler
//      bunker-shared below, whose pods join a running shim instead of starting one, and for the
//      handler bunker-spare, spare = true: a warm spare serve process takes each new pod's socket);
//   2. shim memory with one shim per pod (CRI groups a pod's containers by its sandbox id): N
//      sleeping pods per handler, PSS/RSS/anonymous of every shim process (smaps_rollup), totals;
//      and the same pods under the handler bunker-shared (option group = "namespace": all of its
//      pods in one shim process), the design that meets Go's memory, at one failure domain.
// A private containerd (tests/support/cri), host-network pods, images built offline; everything is
// removed through CRI and the harness ends what is left by pid.
// Usage: bun bench/pods.ts [rounds=20] [pods=20,100] [containerd line: 1.6|1.7|2.1, default the system's]
import { readFileSync } from "node:fs";
import { startCriEnv, type CriEnv, type Handler } from "../tests/support/cri/containerd-cri.ts";
import { runPod, shimProcesses, startContainer } from "../tests/support/cri/pods.ts";
import { removePod } from "../tests/support/cri/inspect.ts";
import { cachedBuilds } from "../tests/support/containerd-versions.ts";
import { killSame, waitGone } from "../tests/support/procs.ts";
import { spareServers } from "../tests/support/shim-env.ts";

const ROUNDS = Number(process.argv[2] ?? 20);
const POD_COUNTS = (process.argv[3] ?? "20,100").split(",").map(Number);
const LINE = process.argv[4];
const SETTLE_MS = 300;
const HANDLERS = ["bunker", "runc", "bunker-shared", "bunker-spare"] as const;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** RunPodSandbox + CreateContainer + StartContainer, in ms; the pod is removed afterwards (not timed). */
async function podStart(env: CriEnv, handler: Handler, i: number): Promise<number> {
  const t0 = performance.now();
  const pod = await runPod(env, `start-${handler}-${i}`, { handler });
  await startContainer(env, pod, "app", "sleep 100000");
  const ms = performance.now() - t0;
  await removePod(env, pod.id);
  // untimed: what a pod leaves working in the background (its shim exiting, bunker-spare's next
  // spare loading) must not be charged to the handler that comes next in the rotation
  await Bun.sleep(SETTLE_MS);
  return ms;
}

interface Mem {
  shims: number;
  pssKiB: number;
  rssKiB: number;
  anonKiB: number;
}

function smapsRollup(pid: number): { pss: number; rss: number; anon: number } {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? 0);
  return { pss: kib("Pss"), rss: kib("Rss"), anon: kib("Anonymous") };
}

/** N sleeping pods (one container each) under a handler, the shims' memory, then every pod removed. */
async function podMemory(env: CriEnv, handler: Handler, n: number): Promise<Mem> {
  const pods = [];
  for (let i = 0; i < n; i++) {
    const pod = await runPod(env, `mem-${handler}-${i}`, { handler });
    await startContainer(env, pod, "app", "sleep 100000");
    pods.push(pod);
  }
  await Bun.sleep(3000); // past the shims' start-up and their collection after it
  const shims = shimProcesses(env, handler);
  const mem = shims.map((s) => smapsRollup(s.pid));
  const total = { shims: shims.length, pssKiB: 0, rssKiB: 0, anonKiB: 0 };
  for (const m of mem) {
    total.pssKiB += m.pss;
    total.rssKiB += m.rss;
    total.anonKiB += m.anon;
  }
  for (const pod of pods) await removePod(env, pod.id);
  return total;
}

const build = LINE ? cachedBuilds().find((b) => b.line === LINE) : undefined;
if (LINE && !build) throw new Error(`no containerd ${LINE} here (scripts/containerd-versions.sh)`);
const env = await startCriEnv({ defaultHandler: "runc", build });
try {
  const times: Record<Handler, number[]> = { bunker: [], runc: [], "bunker-shared": [], "bunker-spare": [] };
  for (const h of HANDLERS) await podStart(env, h, -1); // warm each: images unpacked once, page cache
  // a node's other pods: under bunker-shared a new pod joins their running shim (the harness's
  // shims exit with their last container, BUNKER_SHIM_LINGER_MS=0, so without one every pod would start it)
  const resident = await runPod(env, "resident", { handler: "bunker-shared" });
  await startContainer(env, resident, "app", "sleep 100000");
  for (let r = 0; r < ROUNDS; r++) {
    const order = HANDLERS.map((_, i) => HANDLERS[(i + r) % HANDLERS.length]!);
    for (const h of order) times[h].push(await podStart(env, h, r));
  }
  await removePod(env, resident.id);
  // bunker-spare's waiting spare would count as a "bunker" shim below: end it by pid
  const spares = spareServers(env.ctd);
  for (const p of spares) killSame(p, "SIGTERM");
  await waitGone(spares, 10_000);
  const mib = (kib: number) => (kib / 1024).toFixed(1);
  const [b, g, sh, sp] = [median(times.bunker), median(times.runc), median(times["bunker-shared"]), median(times["bunker-spare"])];
  console.log(`containerd ${build?.version ?? "(system)"}, ${ROUNDS} interleaved rounds`);
  console.log(`| pod start (RunPodSandbox + CreateContainer + StartContainer), median | bunker ${b.toFixed(1)} ms | runc.v2 ${g.toFixed(1)} ms | ${(b / g).toFixed(2)}x |`);
  console.log(`| the same under bunker-shared (group = "namespace": its pods join one running shim) | ${sh.toFixed(1)} ms | runc.v2 as above | ${(sh / g).toFixed(2)}x |`);
  console.log(`| the same under bunker-spare (spare = true: a warm spare serve process takes the pod) | ${sp.toFixed(1)} ms | runc.v2 as above | ${(sp / g).toFixed(2)}x |`);
  const memory: Record<number, Record<Exclude<Handler, "bunker-spare">, Mem>> = {};
  for (const n of POD_COUNTS) {
    const bm = await podMemory(env, "bunker", n);
    const gm = await podMemory(env, "runc", n);
    // last: its one shim lingers after its pods, and would count as a "bunker" shim before it goes
    const sm = await podMemory(env, "bunker-shared", n);
    memory[n] = { bunker: bm, runc: gm, "bunker-shared": sm };
    console.log(
      `| ${n} sleeping pods, one shim per pod | bunker ${bm.shims} shims: PSS ${mib(bm.pssKiB)} MiB (${mib(bm.pssKiB / bm.shims)} each), RSS ${mib(bm.rssKiB)}, anon ${mib(bm.anonKiB)} | runc.v2 ${gm.shims} shims: PSS ${mib(gm.pssKiB)} MiB (${mib(gm.pssKiB / gm.shims)} each), RSS ${mib(gm.rssKiB)}, anon ${mib(gm.anonKiB)} | PSS ${(bm.pssKiB / gm.pssKiB).toFixed(2)}x |`,
    );
    console.log(`| the same under bunker-shared (group = "namespace") | ${sm.shims} shim: PSS ${mib(sm.pssKiB)} MiB, RSS ${mib(sm.rssKiB)}, anon ${mib(sm.anonKiB)} | runc.v2 as above | PSS ${(sm.pssKiB / gm.pssKiB).toFixed(2)}x |`);
  }
  console.log(JSON.stringify({ containerd: build?.version ?? "system", rounds: ROUNDS, podStartMs: { bunker: b, runc: g, "bunker-shared": sh, "bunker-spare": sp }, memory }));
} finally {
  await env.stop();
}
