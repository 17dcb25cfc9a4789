// Fake CNI plugins for the protocol's edges (tests/unit/network-*): one small Bun script installed
// under several plugin names in a temp CNI_PATH. It is a fixture for what the exec protocol must
// handle — error JSON, a hang, stderr garbage, a missing binary — not a stand-in for the real
// plugins (tests/integration/network-cni.test.ts runs those). What an instance does comes from
// its own config (`fake: {...}`, passed through on stdin like any plugin option), and every call
// is appended to `fake.log` with the CNI_* environment and the stdin it got.
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
}

export interface FakeCall {
  type: string;
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
if (fake.log) fs.appendFileSync(fake.log, JSON.stringify({ type: input.type, env, stdin: input }) + "\\n");
if (cmd === "VERSION") { process.stdout.write(JSON.stringify({ cniVersion: "1.0.0", supportedVersions: ["0.4.0", "1.0.0"] })); process.exit(0); }
if (fake.hang && fake.hang.on.includes(cmd)) {
  const child = Bun.spawn(["sleep", "1000"], { stdio: ["ignore", "ignore", "ignore"] });
  fs.writeFileSync(fake.hang.pidFile, process.pid + " " + child.pid);
  await new Promise(() => {});
}
if (fake.fail && fake.fail.on.includes(cmd) && (!fake.fail.onlyWhile || fs.existsSync(fake.fail.onlyWhile))) {
  process.stdout.write(JSON.stringify({ cniVersion: input.cniVersion, code: fake.fail.code, msg: fake.fail.msg, details: fake.fail.details ?? "" }));
  process.exit(1);
}
if (fake.garbage && fake.garbage.on.includes(cmd)) { process.stderr.write(fake.garbage.stderr); process.exit(2); }
if (cmd === "ADD") {
  const result = input.prevResult ?? { cniVersion: input.cniVersion, interfaces: [], ips: [] };
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
