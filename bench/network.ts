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
// Part 2: what that costs a whole `run --rm busybox /bin/true` (an image loaded from
// scripts/busybox-image.ts): bunker (the compiled CLI, the foreground path) and podman 4.3 (its
// default network is a CNI bridge: bridge + portmap + firewall + tuning), each with
// --net none and --net bridge, all four interleaved (the order rotates every round) in the same
// private namespace. podman is measured only if installed (`apt-get install -y podman`; the bench
// is not part of CI, so scripts/setup.sh does not install it). On this hybrid-cgroup host it runs
// with runc and the cgroupfs manager (crun fails here), set in a private containers.conf with
// `default_ulimits = []`, the CNI backend over /usr/lib/cni and an empty network config dir (so
// its built-in default `podman` network is used), and private --root/--runroot; its fixed paths
// (/run/netns, /var/lib/cni) get a tmpfs in the private mount namespace.
// Part 3: loopback HTTP throughput through a published port: busybox httpd in a container with
// `-p 18080:80` on the bridge against the same server on `--net host` (port 18081), and the bridge
// server at its own address (no DNAT, to tell the NAT rules from the veth/bridge path), a 1 MiB
// and a 1 KiB file (httpd closes every connection, so the small file measures the per-connection
// path), loaded from the namespace's host side by wrk (`apt-get install -y wrk`; without it a Bun
// fetch loop), 8 connections for 5 s, rounds interleaved. It ends with evidence of the path (the
// DNAT rule's counters, no listener on the host port, the MTUs, br_netfilter).
// Run as root: bun bench/network.ts [runs=20] [parts=1,2,3]. Prints a table and one JSON line per part.
import * as fs from "node:fs";
import { join } from "node:path";
import { spawnTracked } from "../src/sys/children.ts";
import type { PluginExecEvent } from "../src/network/cni.ts";
import { bunkerBinDir } from "../tests/support/cli-harness.ts";
import { privatePodman } from "../tests/support/podman.ts";

const RUNS = Number(process.argv[2] ?? 20);
const PARTS = new Set((process.argv[3] ?? "1,2,3").split(",").map(Number));
const INNER = "BUNKER_NETWORK_BENCH_INNER";

if (process.getuid?.() !== 0) {
  console.error("network bench: skipped, needs root (unshare --net, bridges, iptables)");
  process.exit(0);
}

if (process.env[INNER] !== "1") {
  // Re-run this file in a private net+mount namespace: everything it makes dies with it.
  const proc = spawnTracked(["unshare", "--net", "--mount", "--propagation", "private", "--", process.execPath, import.meta.path, ...process.argv.slice(2)], {
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
const round2 = (x: number): number => Math.round(x * 100) / 100;

interface Load {
  rps: number;
  mbps: number;
  errors: number;
}
const LOAD_SECONDS = 5;
const CONNECTIONS = 8;
let setup: Promise<RunSetup> | undefined;
const fixedMounts: string[] = [];
const madeDirs: string[] = [];
const podmanCleanups: (() => void)[] = [];
try {
  const attachTotal = PARTS.has(1) ? await attachPart() : undefined;
  if (PARTS.has(2)) await runPart(attachTotal);
  if (PARTS.has(3)) await throughputPart();
} finally {
  // The pin dirs (and whatever a run left mounted) are mounts in this private mount namespace.
  const mounts = fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n").map((l) => l.split(" ")[4] ?? "").filter((m) => m.startsWith(`${tmp}/`));
  for (const m of mounts.sort((a, b) => b.length - a.length)) Bun.spawnSync(["umount", "-l", m]);
  for (const m of fixedMounts) Bun.spawnSync(["umount", "-l", m]);
  for (const d of madeDirs) fs.rmSync(d, { recursive: true, force: true });
  // podman's cgroupfs parent (and its conmon group), if this run made it: rmdir only removes an empty group
  for (const cleanup of podmanCleanups) cleanup();
  fs.rmSync(tmp, { recursive: true, force: true });
}

/** Part 1: create netns + attach + detach, both chains, with and without -p; returns bunker's total without -p. */
async function attachPart(): Promise<number> {
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
  return summary["bunker none"]!.total!;
}

interface RunSetup {
  env: Record<string, string | undefined>;
  bunker: string[];
  archive: string;
}
/** The compiled bunker with a root of its own, and the busybox archive loaded into it. */
function runSetup(): Promise<RunSetup> {
  setup ??= (async () => {
    const bin = await bunkerBinDir();
    const dir = join(tmp, "run");
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? "/usr/bin:/bin"}:/usr/sbin:/sbin` };
    const bunker = [join(bin, "bunker"), "--root", join(dir, "root"), "--state", join(dir, "state"), "--address", join(dir, "bunker.sock")];
    const archive = join(tmp, "busybox.tar");
    const built = Bun.spawnSync([process.execPath, join(import.meta.dir, "../scripts/busybox-image.ts"), archive], { stderr: "pipe" });
    if (built.exitCode !== 0) throw new Error(`busybox-image.ts: ${built.stderr.toString()}`);
    const s = { env, bunker, archive };
    await timed(s.bunker, ["load", "-q", "-i", archive], env);
    return s;
  })();
  return setup;
}

/** bunker args, its stdout. */
async function runOut(s: RunSetup, args: string[]): Promise<string> {
  const r = Bun.spawnSync([...s.bunker, ...args], { env: s.env, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`bunker ${args.join(" ")}: exit ${r.exitCode}: ${r.stderr.toString().trim()}`);
  return r.stdout.toString();
}

/** Runs argv + args to the end; its wall time in ms, or an error with its stderr. */
async function timed(argv: string[], args: string[], env: Record<string, string | undefined>): Promise<number> {
  const t0 = performance.now();
  const proc = spawnTracked([...argv, ...args], { env, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`${argv[0]} ${args.join(" ")}: exit ${code}: ${stderr.trim()}`);
  return performance.now() - t0;
}

/** podman 4.3 made to run here, on a root of its own, with the same busybox archive loaded; undefined if not installed. */
async function podmanSetup(s: RunSetup): Promise<{ argv: string[]; env: Record<string, string | undefined> } | undefined> {
  if (!Bun.which("podman")) return undefined;
  const podman = privatePodman(join(tmp, "podman"), s.env, { cni: true })!;
  // podman pins its netns in /run/netns and host-local keeps podman's leases (and CNI its result
  // cache) in /var/lib/cni: fixed paths, so each gets a tmpfs that lives only in this namespace.
  for (const d of ["/run/netns", "/var/lib/cni"]) {
    if (!fs.existsSync(d)) {
      fs.mkdirSync(d, { recursive: true });
      madeDirs.push(d);
    }
    if (Bun.spawnSync(["mount", "-t", "tmpfs", "tmpfs", d]).exitCode !== 0) throw new Error(`mount tmpfs on ${d} failed`);
    fixedMounts.push(d);
  }
  podmanCleanups.push(podman.cleanup);
  await timed(podman.argv, ["load", "-q", "-i", s.archive], podman.env);
  return podman;
}

/** Part 2: `run --rm --net none|bridge busybox /bin/true`, bunker and podman, median of RUNS each, interleaved. */
async function runPart(attachTotal: number | undefined): Promise<void> {
  const s = await runSetup();
  const podman = await podmanSetup(s);
  type Variant = "bunker none" | "bunker bridge" | "podman none" | "podman bridge";
  const variants: Variant[] = ["bunker none", "bunker bridge", ...(podman ? (["podman none", "podman bridge"] as const) : [])];
  const runOnce = (v: Variant): Promise<number> => {
    const [tool, net] = v.split(" ") as ["bunker" | "podman", string];
    if (tool === "bunker") return timed(s.bunker, ["run", "--rm", "--net", net, "busybox", "/bin/true"], s.env);
    return timed(podman!.argv, ["run", "--rm", "--network", net, "busybox", "/bin/true"], podman!.env);
  };
  const times = Object.fromEntries(variants.map((v) => [v, [] as number[]])) as Record<Variant, number[]>;
  // round -1 warms the image, each bridge and its rules; the order rotates so no variant always follows another
  for (let i = -1; i < RUNS; i++) {
    for (let k = 0; k < variants.length; k++) {
      const v = variants[(k + Math.max(i, 0)) % variants.length]!;
      const ms = await runOnce(v);
      if (i >= 0) times[v].push(ms);
    }
  }
  const med = Object.fromEntries(variants.map((v) => [v, round(median(times[v]))])) as Record<Variant, number>;
  console.log(`\nrun --rm busybox /bin/true, median of ${RUNS} interleaved (ms), private netns${podman ? "" : " (podman not installed: bunker only)"}`);
  console.log(`${"".padEnd(16)}${"none".padStart(10)}${"bridge".padStart(10)}${"added".padStart(10)}${"min none".padStart(10)}${"min bridge".padStart(12)}`);
  const added: Record<string, number> = {};
  for (const tool of podman ? ["bunker", "podman"] : ["bunker"]) {
    const none = med[`${tool} none` as Variant];
    const bridge = med[`${tool} bridge` as Variant];
    added[tool] = round(bridge - none);
    const min = (v: string) => round(Math.min(...times[v as Variant]));
    console.log(`${tool.padEnd(16)}${String(none).padStart(10)}${String(bridge).padStart(10)}${String(added[tool]).padStart(10)}${String(min(`${tool} none`)).padStart(10)}${String(min(`${tool} bridge`)).padStart(12)}`);
  }
  console.log(`bunker's bridge adds ${added.bunker} ms (goal <= 60${attachTotal === undefined ? "" : `; part 1's netns+attach+detach: ${attachTotal}`})`);
  const ratios: Record<string, number> = {};
  if (podman) {
    ratios["bunker/podman none"] = round2(med["bunker none"] / med["podman none"]);
    ratios["bunker/podman bridge"] = round2(med["bunker bridge"] / med["podman bridge"]);
    ratios["bunker bridge/podman none"] = round2(med["bunker bridge"] / med["podman none"]);
    console.log(`podman's bridge adds ${added.podman} ms; ratios: ${Object.entries(ratios).map(([k, r]) => `${k} ${r}x`).join(", ")} (goal: bunker bridge/podman none < 1)`);
  }
  console.log(JSON.stringify({ bench: "network-run", runs: RUNS, unit: "ms", median: med, added, ratios }));
}



/** 8 connections for 5 s against url: wrk if installed, else a Bun fetch loop (which itself costs the 2 cores more). */
async function load(url: string): Promise<Load> {
  if (Bun.which("wrk")) {
    const proc = spawnTracked(["wrk", "-t2", `-c${CONNECTIONS}`, `-d${LOAD_SECONDS}s`, "--timeout", "5s", url], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    const rps = Number(out.match(/Requests\/sec:\s+([\d.]+)/)?.[1]);
    const [, amount, unit] = out.match(/Transfer\/sec:\s+([\d.]+)([KMG]?B)/) ?? [];
    if (code !== 0 || !(rps >= 0) || !amount) throw new Error(`wrk ${url}: exit ${code}: ${out.trim()}`);
    const scale: Record<string, number> = { B: 1 / 2 ** 20, KB: 1 / 1024, MB: 1, GB: 1024 };
    const errors = [...out.matchAll(/(?:Socket errors:.*|Non-2xx or 3xx responses: \d+)/g)].map((m) => m[0]);
    const errCount = errors.flatMap((e) => [...e.matchAll(/\d+/g)].map((n) => Number(n[0]))).reduce((a, b) => a + b, 0);
    return { rps, mbps: Number(amount) * scale[unit!]!, errors: errCount };
  }
  let requests = 0;
  let bytes = 0;
  let errors = 0;
  const end = performance.now() + LOAD_SECONDS * 1000;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
    while (performance.now() < end) {
      try {
        const res = await fetch(url);
        bytes += (await res.arrayBuffer()).byteLength;
        if (res.ok) requests++;
        else errors++;
      } catch {
        errors++;
      }
    }
  }));
  const s = (performance.now() - t0) / 1000;
  return { rps: requests / s, mbps: bytes / 2 ** 20 / s, errors };
}

/** Part 3: busybox httpd behind `-p 18080:80` on the bridge against the same server on --net host. */
async function throughputPart(): Promise<void> {
  const s = await runSetup();
  const serve = (port: number) => `mkdir -p /www && head -c 1048576 /dev/urandom > /www/1m && head -c 1024 /dev/urandom > /www/1k && exec httpd -f -p ${port} -h /www`;
  const servers = { bridge: { port: 18080, name: "bench-web-bridge" }, host: { port: 18081, name: "bench-web-host" } } as const;
  try {
    await timed(s.bunker, ["run", "-d", "--net", "bridge", "-p", "18080:80", "--name", servers.bridge.name, "busybox", "sh", "-c", serve(80)], s.env);
    await timed(s.bunker, ["run", "-d", "--net", "host", "--name", servers.host.name, "busybox", "sh", "-c", serve(servers.host.port)], s.env);
    for (const { port } of Object.values(servers)) {
      const deadline = performance.now() + 15_000;
      for (;;) {
        const ok = await fetch(`http://127.0.0.1:${port}/1k`).then((r) => r.ok, () => false);
        if (ok) break;
        if (performance.now() > deadline) throw new Error(`httpd on 127.0.0.1:${port} never answered`);
        await Bun.sleep(100);
      }
    }
    // "direct" is the bridge server at its own address, no DNAT: it splits the published port's cost
    // into the NAT rules and the veth/bridge path that any bridge traffic takes.
    const ip = (await runOut(s, ["exec", servers.bridge.name, "ip", "-o", "-4", "addr", "show", "eth0"])).match(/inet ([\d.]+)/)?.[1];
    if (!ip) throw new Error("no address on the bridge server's eth0");
    const base = { bridge: "http://127.0.0.1:18080", direct: `http://${ip}:80`, host: `http://127.0.0.1:${servers.host.port}` } as const;
    const variants = ["1m bridge", "1m direct", "1m host", "1k bridge", "1k direct", "1k host"] as const;
    type V = (typeof variants)[number];
    const url = (v: V) => `${base[v.split(" ")[1] as keyof typeof base]}/${v.split(" ")[0]}`;
    const rounds = Math.max(3, Math.min(5, Math.round(RUNS / 5)));
    const results = Object.fromEntries(variants.map((v) => [v, [] as Load[]])) as Record<V, Load[]>;
    for (const v of variants) await load(url(v)); // warm-up
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < variants.length; k++) {
        const v = variants[(k + r) % variants.length]!;
        results[v].push(await load(url(v)));
      }
    }
    const med = Object.fromEntries(variants.map((v) => [v, {
      rps: round(median(results[v].map((x) => x.rps))), mbps: round(median(results[v].map((x) => x.mbps))), errors: results[v].reduce((a, x) => a + x.errors, 0),
    }])) as Record<V, Load>;
    console.log(`\nHTTP from 127.0.0.1, busybox httpd, ${CONNECTIONS} connections x ${LOAD_SECONDS} s (${Bun.which("wrk") ? "wrk" : "Bun fetch loop"}), median of ${rounds} interleaved rounds`);
    console.log(`${"".padEnd(28)}${"req/s".padStart(10)}${"MiB/s".padStart(10)}${"errors".padStart(8)}`);
    const label = { bridge: "-p 18080:80 (DNAT)", direct: `bridge, ${ip}:80`, host: "--net host, :18081" };
    for (const v of variants) console.log(`${`${label[v.split(" ")[1] as keyof typeof label]} ${v.split(" ")[0]}`.padEnd(28)}${String(med[v].rps).padStart(10)}${String(med[v].mbps).padStart(10)}${String(med[v].errors).padStart(8)}`);
    const ratios = {
      "1m": round2(med["1m bridge"].mbps / med["1m host"].mbps), "1k": round2(med["1k bridge"].rps / med["1k host"].rps),
      "1m direct": round2(med["1m direct"].mbps / med["1m host"].mbps), "1k direct": round2(med["1k direct"].rps / med["1k host"].rps),
    };
    console.log(`-p/host: 1 MiB ${ratios["1m"]}x MiB/s, 1 KiB ${ratios["1k"]}x req/s (goal: >= 0.9); direct/host: ${ratios["1m direct"]}x, ${ratios["1k direct"]}x`);
    console.log(`path: MTU eth0 in the container ${(await runOut(s, ["exec", servers.bridge.name, "cat", "/sys/class/net/eth0/mtu"])).trim()}, lo ${fs.readFileSync("/sys/class/net/lo/mtu", "utf8").trim()}; br_netfilter ${fs.existsSync("/proc/sys/net/bridge/bridge-nf-call-iptables") ? `loaded (call-iptables ${fs.readFileSync("/proc/sys/net/bridge/bridge-nf-call-iptables", "utf8").trim()})` : "not loaded"}`);
    // Where the published port's path runs: a kernel DNAT rule (its counters count each connection's
    // first packet), conntrack entries, and no process listening on the host port (no userspace proxy).
    const sh = (cmd: string) => Bun.spawnSync(["sh", "-c", cmd], { env: s.env }).stdout.toString().trim();
    console.log(`path: DNAT rule [packets:bytes]: ${sh("iptables-save -t nat -c | grep -- '--dport 18080' | grep -m1 DNAT") || "(none)"}`);
    console.log(`path: listeners on :18080 in the host netns: ${sh("ss -Htln 'sport = :18080' | wc -l")}; conntrack entries now: ${sh("cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo n/a")}`);
    console.log(JSON.stringify({ bench: "network-throughput", rounds, seconds: LOAD_SECONDS, connections: CONNECTIONS, median: med, ratios }));
  } finally {
    Bun.spawnSync([...s.bunker, "rm", "-f", servers.bridge.name, servers.host.name], { env: s.env, stdout: "ignore", stderr: "ignore" });
    await endOwnShims(s.bunker[s.bunker.indexOf("--address") + 1]!);
  }
}

/** The -d servers' shim should exit once its last container is removed; one still serving our own
 * address after 5 s is ended by its pid (it would otherwise outlive the bench and its temp dir). */
async function endOwnShims(address: string): Promise<void> {
  const own = (): number[] => fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      const argv = fs.readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0");
      return argv[1] === "shim" && argv.includes(address);
    } catch {
      return false;
    }
  }).map(Number);
  for (let waited = 0; own().length > 0 && waited < 5000; waited += 100) await Bun.sleep(100);
  for (const pid of own()) {
    console.log(`(the servers' shim, pid ${pid}, was still running 5 s after rm -f: ended by its pid)`);
    process.kill(pid, "SIGKILL");
  }
}
