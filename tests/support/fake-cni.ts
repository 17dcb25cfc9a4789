// Fake CNI plugins for the protocol's edges (tests/unit/network-*): one small Bun script installed
// under several plugin names in a temp CNI_PATH. It is a fixture for what the exec protocol must
// handle — error JSON, a hang, stderr garbage, a missing binary — not a stand-in for the real
// plugins (tests/integration/network-cni.test.ts runs those). What an instance does comes from
// its own config (`fake: {...}`, passed through on stdin like any plugin option), and every call
// is appended to `fake.log` with the CNI_* environment and the stdin it got.
// installFakeHostTools does the same for iptables, ip6tables and ip (host-rules.ts): shell scripts
// that log their argv and keep just enough state (rules as files, links as lines of a
// /proc/net/dev fixture) for -C/-A/-I/-D and `ip link add/delete` to answer as the real ones do.
import * as fs from "node:fs";
import { join } from "node:path";

export interface FakeBehaviour {
  /** JSONL file every call is appended to. */
  log: string;
  /** The address this plugin adds to the result on ADD (like an IPAM plugin would). */
  ip?: string;
  /** Fail these commands with this error object (printed on stdout, exit 1); with `onlyWhile`, only while that file exists. */
  fail?: { on: string[]; code: number; msg: string; details?: string; onlyWhile?: string };
  /** Fail these commands with text on stderr and nothing on stdout (exit 2). */
  garbage?: { on: string[]; stderr: string };
  /** Hang on these commands; the plugin and a child it starts write their pids to `pidFile`. */
  hang?: { on: string[]; pidFile: string };
  /** Sleep this long before answering (to see calls overlap: every call logs when it started and ended). */
  sleepMs?: number;
  /** With `ip`: the host end of a veth pair, added to the result's interfaces (no sandbox), as the bridge plugin reports it. */
  hostVeth?: string;
}

export interface FakeCall {
  type: string;
  /** The file name the plugin ran as (differs from `type` when a plugin is run with another's config, like an IPAM plugin). */
  binary: string;
  /** Date.now() when the call started, and after its `sleepMs` (when it is logged, just before it answers). */
  start: number;
  end: number;
  env: Record<string, string>;
  stdin: Record<string, unknown> & { prevResult?: { ips?: { address: string }[] }; runtimeConfig?: Record<string, unknown> };
}

const SCRIPT = `
const fs = require("node:fs");
const input = JSON.parse(await Bun.stdin.text());
const fake = input.fake ?? {};
const cmd = process.env.CNI_COMMAND;
const env = {};
for (const k of ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH", "CNI_ARGS"]) if (process.env[k] !== undefined) env[k] = process.env[k];
const start = Date.now();
const binary = require("node:path").basename(process.argv[1]);
const logCall = () => { if (fake.log) fs.appendFileSync(fake.log, JSON.stringify({ type: input.type, binary, start, end: Date.now(), env, stdin: input }) + "\\n"); };
if (fake.sleepMs) await Bun.sleep(fake.sleepMs);
logCall();
if (cmd === "VERSION") { process.stdout.write(JSON.stringify({ cniVersion: "1.0.0", supportedVersions: ["0.4.0", "1.0.0"] })); process.exit(0); }
if (fake.hang && fake.hang.on.includes(cmd)) {
  const child = Bun.spawn(["sleep", "1000"], { stdio: ["ignore", "ignore", "ignore"] });
  fs.writeFileSync(fake.hang.pidFile, process.pid + " " + child.pid);
  // hang until killed, as a stuck plugin does; but not past whoever ran us (a test process that
  // died mid-case left one of these spinning at ~77% CPU, skewing the benches run after it)
  const parent = process.ppid;
  for (;;) {
    await Bun.sleep(200);
    if (process.ppid !== parent) { child.kill("SIGKILL"); process.exit(1); }
  }
}
if (fake.fail && fake.fail.on.includes(cmd) && (!fake.fail.onlyWhile || fs.existsSync(fake.fail.onlyWhile))) {
  process.stdout.write(JSON.stringify({ cniVersion: input.cniVersion, code: fake.fail.code, msg: fake.fail.msg, details: fake.fail.details ?? "" }));
  process.exit(1);
}
if (fake.garbage && fake.garbage.on.includes(cmd)) { process.stderr.write(fake.garbage.stderr); process.exit(2); }
if (cmd === "ADD") {
  const result = input.prevResult ?? { cniVersion: input.cniVersion, interfaces: [], ips: [] };
  if (fake.ip && fake.hostVeth) result.interfaces.push({ name: fake.hostVeth, mac: "02:00:00:00:00:02" });
  if (fake.ip) {
    result.interfaces.push({ name: process.env.CNI_IFNAME, mac: "02:00:00:00:00:01", sandbox: process.env.CNI_NETNS });
    result.ips.push({ address: fake.ip, gateway: fake.ip.replace(/\\d+\\/\\d+$/, "1"), interface: result.interfaces.length - 1 });
  }
  process.stdout.write(JSON.stringify(result));
}
`;

/** A temp CNI_PATH holding the fake plugin under each of `names`. */
export function installFakePlugins(dir: string, names: readonly string[]): string {
  const bin = join(dir, "cni-bin");
  fs.mkdirSync(bin, { recursive: true });
  for (const name of names) fs.writeFileSync(join(bin, name), `#!${process.execPath}\n${SCRIPT}`, { mode: 0o755 });
  return bin;
}

const IPTABLES = `#!/bin/sh
# fake iptables: logs argv; a rule is a file named by the hash of "table chain spec".
echo "$(basename "$0") $*" >> "$FAKE_HOST_LOG"
[ "$1" = "-w" ] && shift 2
table=filter; [ "$1" = "-t" ] && { table=$2; shift 2; }
op=$1; chain=$2; shift 2
[ "$op" = "-I" ] && [ "$1" = "1" ] && shift
key=$(printf '%s ' "$table" "$chain" "$@" | md5sum | cut -c1-16)
f="$FAKE_HOST_STATE/rule-$(basename "$0")-$key"
case "$op" in
  -C) [ -e "$f" ] && exit 0; echo "iptables: Bad rule (does a matching rule exist in that chain?)." >&2; exit 1 ;;
  -A|-I) printf '%s ' "$table" "$chain" "$@" > "$f"; exit 0 ;;
  -D) [ -e "$f" ] && { rm "$f"; exit 0; }; echo "iptables: Bad rule (does a matching rule exist in that chain?)." >&2; exit 1 ;;
esac
exit 2
`;

const IP = `#!/bin/sh
# fake ip: logs argv; links are the lines of the /proc/net/dev fixture.
echo "ip $*" >> "$FAKE_HOST_LOG"
dev="$FAKE_PROC_NET/dev"
if [ "$1 $2 $3" = "link add name" ]; then
  grep -q "^ *$4:" "$dev" && { echo "RTNETLINK answers: File exists" >&2; exit 2; }
  echo "  $4: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0" >> "$dev"; exit 0
fi
if [ "$1 $2 $3 $4" = "-o link show dev" ]; then
  grep -q "^ *$5:" "$dev" || { echo "Device \\"$5\\" does not exist." >&2; exit 1; }
  echo "7: $5@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 master br-test state UP mode DEFAULT qlen 1000\\    link/ether $(cat "$FAKE_HOST_STATE/mac-$5" 2>/dev/null || echo 02:00:00:00:00:02) brd ff:ff:ff:ff:ff:ff link-netnsid 0"; exit 0
fi
if [ "$1 $2" = "link delete" ]; then
  grep -q "^ *$3:" "$dev" || { echo "Cannot find device \"$3\"" >&2; exit 1; }
  grep -v "^ *$3:" "$dev" > "$dev.new"; mv "$dev.new" "$dev"; exit 0
fi
exit 2
`;

/**
 * Fake iptables, ip6tables and ip under `dir`, logging to `log` and keeping rules in `dir`/state
 * and links in `procNet`/dev. Their environment comes from FAKE_HOST_* variables, which this sets.
 */
export function installFakeHostTools(dir: string, log: string, procNet: string): { iptables: string; ip6tables: string; ip: string; rules: () => string[] } {
  const bin = join(dir, "host-bin");
  const state = join(dir, "host-state");
  fs.mkdirSync(bin, { recursive: true });
  fs.mkdirSync(state, { recursive: true });
  fs.mkdirSync(procNet, { recursive: true });
  if (!fs.existsSync(join(procNet, "dev"))) {
    fs.writeFileSync(join(procNet, "dev"), "Inter-|   Receive\n face |bytes\n    lo: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n");
  }
  for (const name of ["iptables", "ip6tables"]) fs.writeFileSync(join(bin, name), IPTABLES, { mode: 0o755 });
  fs.writeFileSync(join(bin, "ip"), IP, { mode: 0o755 });
  process.env.FAKE_HOST_LOG = log;
  process.env.FAKE_HOST_STATE = state;
  process.env.FAKE_PROC_NET = procNet;
  const rules = () => fs.readdirSync(state).sort().map((f) => `${f.split("-")[1]} ${fs.readFileSync(join(state, f), "utf8").trim()}`);
  return { iptables: join(bin, "iptables"), ip6tables: join(bin, "ip6tables"), ip: join(bin, "ip"), rules };
}

export function readCalls(log: string): FakeCall[] {
  if (!fs.existsSync(log)) return [];
  return fs.readFileSync(log, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as FakeCall);
}

/** True while a process of this pid exists (a zombie counts as gone). */
export function pidAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}
