// A bunker network's host-side setup, made once per network instead of once per container: the
// masquerade rule for its subnet and the forward-accept rules for its bridge, as docker's bridge
// driver installs them when a network is created (`-s SUBNET ! -o BRIDGE -j MASQUERADE`, and
// FORWARD accepts for `-i BRIDGE` and for replies/published-port traffic `-o BRIDGE`). The
// standard plugins would do this per container — bridge's `ipMasq` makes a chain per container,
// the `firewall` plugin two rules per container — which costs each attach and each detach several
// iptables execs (measured: ~35 ms ADD and ~55 ms DEL for ipMasq, ~40 + ~45 ms for firewall,
// bench/network.ts), for rules that only ever differ in one address inside one subnet.
//
// The bridge device is the marker that the rules are in place: they are installed first, the
// bridge made after them, so "the bridge exists" means "the rules exist" and an attach checks it
// with one read of /proc/net/dev (per netns, unlike /sys/class/net). A reboot takes bridge and rules
// together, and the next attach installs both again. Installing checks every rule with `-C` first
// (idempotent after a crash half-way) and runs under `<root>/networks/host-rules.lock`, so racing
// attaches do not add a rule twice. `network rm` deletes the bridge first, then the rules.
import * as fs from "node:fs";
import { join } from "node:path";
import { FailedPreconditionError, errorMessage } from "../errdefs.ts";
import { acquireLock } from "../sys/filelock.ts";
import { spawnTracked } from "../sys/children.ts";
import { parsePrefix } from "./subnets.ts";

/** The host commands the setup runs; tests point them at recording fakes. */
export interface HostTools {
  iptables: string;
  ip6tables: string;
  ip: string;
}

/** Where util-linux's and iproute2's tools are, whatever PATH bunker was started with. */
const SBIN_PATH = `${process.env.PATH ?? ""}:/usr/sbin:/usr/bin:/sbin:/bin`;

export function defaultHostTools(): HostTools {
  const find = (name: string) => Bun.which(name, { PATH: SBIN_PATH }) ?? name;
  return { iptables: find("iptables"), ip6tables: find("ip6tables"), ip: find("ip") };
}

export interface HostRule {
  table: "nat" | "filter";
  chain: "POSTROUTING" | "FORWARD";
  /** The rule's match and target, without the chain (as `iptables -C/-D CHAIN ...` take it). */
  spec: string[];
  /** FORWARD rules go first, so a DROP policy or rule further down (docker's) cannot catch them. */
  insert: boolean;
}

/** The rules for one network; the comment names the network, so `iptables-save` says whose they are. */
export function networkHostRules(name: string, bridge: string, subnet: string): HostRule[] {
  const comment = ["-m", "comment", "--comment", `bunker network ${name}`];
  return [
    { table: "nat", chain: "POSTROUTING", spec: ["-s", subnet, "!", "-o", bridge, ...comment, "-j", "MASQUERADE"], insert: false },
    { table: "filter", chain: "FORWARD", spec: ["-i", bridge, ...comment, "-j", "ACCEPT"], insert: true },
    // DNAT: the first packet of a connection portmap redirected to a published port.
    { table: "filter", chain: "FORWARD", spec: ["-o", bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED,DNAT", ...comment, "-j", "ACCEPT"], insert: true },
  ];
}

/** True when `dev` is a link in this process's netns. */
export function linkExists(dev: string, procNet = "/proc/net"): boolean {
  let text: string;
  try {
    text = fs.readFileSync(join(procNet, "dev"), "utf8");
  } catch {
    return false;
  }
  return text.split("\n").slice(2).some((line) => line.slice(0, line.indexOf(":")).trim() === dev);
}

async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let proc;
  try {
    proc = spawnTracked(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, PATH: SBIN_PATH } });
  } catch (err) {
    throw new FailedPreconditionError(`cannot run ${argv[0]}: ${errorMessage(err)}`);
  }
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr: stderr.trim().replace(/\s*\n\s*/g, "; ") };
}

const tableArgs = (tools: HostTools, subnet: string, rule: HostRule): string[] =>
  [parsePrefix(subnet).version === 6 ? tools.ip6tables : tools.iptables, "-w", "5", "-t", rule.table];

export interface NetworkHostSetup {
  name: string;
  bridge: string;
  subnet: string;
}

/** Installs the network's rules (those missing), then makes its bridge; a no-op while the bridge exists. */
export async function ensureNetworkHostSetup(net: NetworkHostSetup, lockPath: string, tools: HostTools, procNet = "/proc/net"): Promise<void> {
  if (linkExists(net.bridge, procNet)) return;
  const lock = await acquireLock(lockPath, "exclusive", { timeoutMs: 30_000 });
  try {
    if (linkExists(net.bridge, procNet)) return;
    for (const rule of networkHostRules(net.name, net.bridge, net.subnet)) {
      const base = tableArgs(tools, net.subnet, rule);
      if ((await run([...base, "-C", rule.chain, ...rule.spec])).code === 0) continue;
      const added = await run([...base, rule.insert ? "-I" : "-A", rule.chain, ...(rule.insert ? ["1"] : []), ...rule.spec]);
      if (added.code !== 0) throw new FailedPreconditionError(`network ${JSON.stringify(net.name)}: adding its ${rule.table} ${rule.chain} rule failed: ${added.stderr || `exit status ${added.code}`}`);
    }
    // The bridge plugin takes a bridge it finds (and brings it up and gives it the gateway address).
    const made = await run([tools.ip, "link", "add", "name", net.bridge, "type", "bridge"]);
    if (made.code !== 0 && !/File exists/.test(made.stderr)) throw new FailedPreconditionError(`network ${JSON.stringify(net.name)}: creating bridge ${net.bridge} failed: ${made.stderr || `exit status ${made.code}`}`);
  } finally {
    lock.release();
  }
}

/** Deletes the bridge, then every rule of the network (each as often as it is there); what is not there is fine. */
export async function removeNetworkHostSetup(net: NetworkHostSetup, lockPath: string, tools: HostTools): Promise<void> {
  const lock = await acquireLock(lockPath, "exclusive", { timeoutMs: 30_000 });
  try {
    await deleteLink(net.bridge, tools);
    for (const rule of networkHostRules(net.name, net.bridge, net.subnet)) {
      const base = tableArgs(tools, net.subnet, rule);
      for (let i = 0; i < 16; i++) {
        const r = await run([...base, "-D", rule.chain, ...rule.spec]);
        if (r.code === 0) continue;
        // "does a matching rule exist" (iptables-nft) / "Bad rule" (legacy): none left.
        if (r.code === 1 && /does a matching rule exist|Bad rule|No chain/.test(r.stderr)) break;
        throw new FailedPreconditionError(`network ${JSON.stringify(net.name)}: deleting its ${rule.table} ${rule.chain} rule failed: ${r.stderr || `exit status ${r.code}`}`);
      }
    }
  } finally {
    lock.release();
  }
}

/** `ip link delete DEV`; a device that is not there is fine. */
export async function deleteLink(dev: string, tools: HostTools): Promise<void> {
  const r = await run([tools.ip, "link", "delete", dev]);
  if (r.code !== 0 && !/Cannot find device/.test(r.stderr)) throw new FailedPreconditionError(`deleting link ${dev}: ${r.stderr || `exit status ${r.code}`}`);
}

/** Deletes `dev` only if it has MAC `mac` (a device of that name made since is someone else's); without a MAC to compare, leaves it. */
export async function deleteLinkWithMac(dev: string, mac: string | undefined, tools: HostTools): Promise<void> {
  if (!mac) return;
  const shown = await run([tools.ip, "-o", "link", "show", "dev", dev]);
  if (shown.code !== 0) return; // gone meanwhile
  if (!shown.stdout.toLowerCase().includes(`link/ether ${mac.toLowerCase()} `)) return;
  await deleteLink(dev, tools);
}
