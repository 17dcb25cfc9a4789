// What bridge networking costs one container (issue #17's budget: setup + teardown at most 60 ms on
// top of a `bunker run --rm`, where podman 4.3 adds ~310 ms): make a pinned netns, attach it to a
// bridge network, detach (which removes the netns), with and without a published port, median of
// N cycles each, inside a private network and mount namespace so the machine's own bridges and
// iptables rules are never touched. Two chains side by side, interleaved so that load from
// elsewhere hits both alike:
//   - bunker: the default network as bunker writes it (bridge + host-local, portmap only with -p,
//     per-network host rules, `lo` up inside unshare, the short detach; see networks.ts/attach.ts);
//   - nerdctl: nerdctl's per-container chain (bridge with ipMasq + host-local, portmap, firewall,
//     tuning, `lo` by the loopback plugin, DEL in reverse with the netns) on a network of its own.
// Every plugin exec is timed through the store's `onExec` hook, so the table also says where the
// time goes.
// Part 2: what that costs a whole `bunker run --rm busybox /bin/true` (the compiled CLI, the
// foreground path, an image loaded from scripts/busybox-image.ts): --net none against --net
// bridge, interleaved, in the same private namespace. (podman side by side is still to come: it
// is not installed here.)
// Run as root: bun bench/network.ts [runs=20]. Prints a table and one JSON line per part.
import * as fs from "node:fs";
import { join } from "node:path";
import { spawnTracked } from "../src/sys/children.ts";
import type { PluginExecEvent } from "../src/network/cni.ts";
import { bunkerBinDir } from "../tests/support/cli-harness.ts";

const RUNS = Number(process.argv[2] ?? 20);
const INNER = "BUNKER_NETWORK_BENCH_INNER";

if (process.getuid?.() !== 0) {
  console.error("network bench: skipped, needs root (unshare --net, bridges, iptables)");
  process.exit(0);
}

if (process.env[INNER] !== "1") {
  // Re-run this file in a private net+mount namespace: everything it makes dies with it.
  const proc = spawnTracked(["unshare", "--net", "--mount", "--propagation", "private", "--", process.execPath, import.meta.path, String(RUNS)], {
    stdin: "ignore", stdout: "inherit", stderr: "inherit", env: { ...process.env, [INNER]: "1" },
  });
  process.exit(await proc.exited);
}

const { attach, bridgeConflist, createNetns, detach, NetworkStore } = await import("../src/network/index.ts");

Bun.spawnSync(["ip", "link", "set", "lo", "up"]);
const tmp = fs.mkdtempSync("/tmp/bunker-network-bench-");
const pins = join(tmp, "state", "networks", "netns");
let events: PluginExecEvent[] = [];
const store = new NetworkStore(join(tmp, "root"), { onExec: (e) => events.push(e) });

// nerdctl's chain, as bunker wrote it before the per-network rules (a plain conflist: no host rules, the long detach).
const nerdctl = bridgeConflist("nerdctl", "bench1", "10.14.9.0/24", "10.14.9.1", store.ipamDir);
delete nerdctl.bunkerHostRules;
nerdctl.plugins[0]!.ipMasq = true;
nerdctl.plugins.push({ type: "firewall" }, { type: "tuning" });
fs.mkdirSync(store.dir, { recursive: true });
fs.writeFileSync(join(store.dir, "nerdctl.conflist"), JSON.stringify(nerdctl));

type Phase = "netns" | "attach" | "detach" | "total";
const PHASES: Phase[] = ["netns", "attach", "detach", "total"];
interface Sample {
  phases: Record<Phase, number>;
  /** "<plugin> <ADD|DEL>" -> ms (loopback's ADD is part of netns). */
  plugins: Record<string, number>;
  /** attach minus its plugin execs (ADDs run one after another): record files, port reservation, the host-setup check. */
  attachOutside: number;
}

const CHAINS = { bunker: { network: "bridge", ip: undefined }, nerdctl: { network: "nerdctl", ip: null } } as const;
const PORTS = { none: [], publish: [{ hostPort: 18080, containerPort: 80, protocol: "tcp" as const }] } as const;
type Variant = `${keyof typeof CHAINS} ${keyof typeof PORTS}`;
const VARIANTS = Object.keys(CHAINS).flatMap((c) => Object.keys(PORTS).map((p) => `${c} ${p}` as Variant));

let seq = 0;
async function cycle(variant: Variant): Promise<Sample> {
  const [chain, ports] = variant.split(" ") as [keyof typeof CHAINS, keyof typeof PORTS];
  const id = `bench-${++seq}`;
  const pin = join(pins, id);
  events = [];
  const t0 = performance.now();
  await createNetns(pin, { ...store.cni, ip: CHAINS[chain].ip });
  const t1 = performance.now();
  const netnsEvents = events.length;
  await attach(store, { containerId: id, netns: pin, network: CHAINS[chain].network, portMappings: PORTS[ports] });
  const t2 = performance.now();
  const adds = events.slice(netnsEvents).reduce((sum, e) => sum + e.ms, 0);
  await detach(store, id);
  const t3 = performance.now();
  const plugins: Record<string, number> = {};
  for (const e of events) plugins[`${e.type} ${e.command}`] = (plugins[`${e.type} ${e.command}`] ?? 0) + e.ms;
  return { phases: { netns: t1 - t0, attach: t2 - t1, detach: t3 - t2, total: t3 - t0 }, plugins, attachOutside: t2 - t1 - adds };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const round = (x: number): number => Math.round(x * 10) / 10;

try {
  // Warm-up: the first attach makes each bridge, the shared CNI chains and the network's rules.
  for (const v of VARIANTS) await cycle(v);
  const samples = Object.fromEntries(VARIANTS.map((v) => [v, [] as Sample[]])) as Record<Variant, Sample[]>;
  for (let i = 0; i < RUNS; i++) for (const v of VARIANTS) samples[v].push(await cycle(v));

  const summary: Record<string, Record<string, number>> = {};
  for (const v of VARIANTS) {
    const row: Record<string, number> = {};
    for (const p of PHASES) row[p] = round(median(samples[v].map((s) => s.phases[p])));
    row["total min"] = round(Math.min(...samples[v].map((s) => s.phases.total)));
    row["attach outside plugins"] = round(median(samples[v].map((s) => s.attachOutside)));
    for (const k of [...new Set(samples[v].flatMap((s) => Object.keys(s.plugins)))].sort()) row[k] = round(median(samples[v].map((s) => s.plugins[k] ?? 0)));
    summary[v] = row;
  }
  const rows = [...new Set(Object.values(summary).flatMap((r) => Object.keys(r)))];
  const fixed = [...PHASES, "total min", "attach outside plugins"];
  rows.sort((a, b) => (fixed.includes(a) ? fixed.indexOf(a) : 99) - (fixed.includes(b) ? fixed.indexOf(b) : 99) || a.localeCompare(b));
  console.log(`network: create netns + attach + detach (+ netns removal), median of ${RUNS} (ms), private netns`);
  console.log("(bunker runs a detach's plugin DELs at once, so its DEL rows overlap; nerdctl runs them one by one)");
  console.log(`${"".padEnd(24)}${VARIANTS.map((v) => v.padStart(17)).join("")}`);
  for (const k of rows) console.log(`${k.padEnd(24)}${VARIANTS.map((v) => String(summary[v]![k] ?? "-").padStart(17)).join("")}`);
  console.log(JSON.stringify({ bench: "network-attach", runs: RUNS, unit: "ms", median: summary }));
  await runPart(summary["bunker none"]!.total!);
} finally {
  // The pin dirs (and whatever a run left mounted) are mounts in this private mount namespace.
  const mounts = fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n").map((l) => l.split(" ")[4] ?? "").filter((m) => m.startsWith(`${tmp}/`));
  for (const m of mounts.sort((a, b) => b.length - a.length)) Bun.spawnSync(["umount", "-l", m]);
  fs.rmSync(tmp, { recursive: true, force: true });
}

/** Part 2: `bunker run --rm --net none|bridge busybox /bin/true`, median of RUNS each, interleaved. */
async function runPart(attachTotal: number): Promise<void> {
  const bin = await bunkerBinDir();
  const dir = join(tmp, "run");
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? "/usr/bin:/bin"}:/usr/sbin:/sbin` };
  const bunker = [join(bin, "bunker"), "--root", join(dir, "root"), "--state", join(dir, "state"), "--address", join(dir, "bunker.sock")];
  const archive = join(tmp, "busybox.tar");
  const built = Bun.spawnSync([process.execPath, join(import.meta.dir, "../scripts/busybox-image.ts"), archive], { stderr: "pipe" });
  if (built.exitCode !== 0) throw new Error(`busybox-image.ts: ${built.stderr.toString()}`);
  const timed = async (args: string[]): Promise<number> => {
    const t0 = performance.now();
    const proc = spawnTracked([...bunker, ...args], { env, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
    const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    if (code !== 0) throw new Error(`bunker ${args.join(" ")}: exit ${code}: ${stderr.trim()}`);
    return performance.now() - t0;
  };
  await timed(["load", "-q", "-i", archive]);
  const modes = ["none", "bridge"] as const;
  const times: Record<(typeof modes)[number], number[]> = { none: [], bridge: [] };
  for (let i = -1; i < RUNS; i++) {
    for (const m of modes) {
      const ms = await timed(["run", "--rm", "--net", m, "busybox", "/bin/true"]);
      if (i >= 0) times[m].push(ms); // the first round warms the image, the bridge and its rules
    }
  }
  const none = round(median(times.none));
  const bridge = round(median(times.bridge));
  const added = round(bridge - none);
  console.log(`\nbunker run --rm busybox /bin/true, median of ${RUNS} (ms), private netns`);
  console.log(`${"--net none".padEnd(24)}${String(none).padStart(10)}`);
  console.log(`${"--net bridge".padEnd(24)}${String(bridge).padStart(10)}`);
  console.log(`${"added by bridge".padEnd(24)}${String(added).padStart(10)}   (goal: <= 60; part 1's netns+attach+detach: ${attachTotal})`);
  console.log(JSON.stringify({ bench: "network-run", runs: RUNS, unit: "ms", median: { none, bridge, added } }));
}
