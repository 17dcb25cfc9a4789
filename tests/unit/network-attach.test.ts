// attach/detach over fake plugins (tests/support/fake-cni.ts), without root: the kept record and
// what DEL gets from it, interface naming across networks, rollback of a failed ADD, port
// conflicts, a DEL that fails and is retried, an attach SIGKILLed mid-ADD that detach still
// cleans up, portmap run only for published ports, and the short detach of bunker's own chain
// (pin first, DELs at once with netns "", the IPAM plugin run directly, a veth left behind deleted). The "netns" is a symlink to /proc/self/ns/net (a live nsfs file the fake plugins
// never enter), and FakeSyscalls takes the unmount.
import { afterEach, beforeEach, expect, test } from "bun:test";
import * as fs from "node:fs";
import { join } from "node:path";
import { AlreadyExistsError, FailedPreconditionError, NotFoundError } from "../../src/errdefs.ts";
import { attach, attachedContainers, attachments, chainFor, checkAttachment, detach } from "../../src/network/attach.ts";
import type { NetworkConfigList, PluginConfig } from "../../src/network/cni.ts";
import { NetworkStore } from "../../src/network/networks.ts";
import { FakeSyscalls, setSys } from "../../src/sys/index.ts";
import { installFakeHostTools, installFakePlugins, pidAlive, readCalls, type FakeBehaviour } from "../support/fake-cni.ts";

let tmp: string;
let log: string;
let store: NetworkStore;
let fake: FakeSyscalls;
let netns: string;

beforeEach(() => {
  tmp = fs.mkdtempSync("/tmp/bunker-network-attach-");
  log = join(tmp, "calls.jsonl");
  const bin = installFakePlugins(tmp, ["ipam-ish", "portmap-ish", "fw-ish"]);
  store = new NetworkStore(join(tmp, "root"), { cniPath: [bin], timeoutMs: 5000 });
  fake = new FakeSyscalls();
  setSys(fake);
  netns = join(tmp, "netns-c1");
  fs.symlinkSync("/proc/self/ns/net", netns);
});
afterEach(() => {
  setSys(undefined);
  fs.rmSync(tmp, { recursive: true, force: true });
});

function network(name: string, ip: string, extra: Partial<Record<"ipam" | "portmap" | "fw", Partial<FakeBehaviour>>> = {}): void {
  const plugin = (type: string, f: Partial<FakeBehaviour> = {}, more: Partial<PluginConfig> = {}): PluginConfig => ({ type, fake: { log, ...f }, ...more });
  const list: NetworkConfigList = {
    cniVersion: "1.0.0",
    name,
    plugins: [plugin("ipam-ish", { ip, ...extra.ipam }), plugin("portmap-ish", extra.portmap, { capabilities: { portMappings: true } }), plugin("fw-ish", extra.fw)],
  };
  fs.mkdirSync(store.dir, { recursive: true });
  fs.writeFileSync(join(store.dir, `${name}.conflist`), JSON.stringify(list));
}

const steps = () => readCalls(log).map((c) => `${c.env.CNI_COMMAND} ${c.type} ${c.env.CNI_IFNAME}`);
const portFiles = () => (fs.existsSync(store.portsDir) ? fs.readdirSync(store.portsDir).sort() : []);
const web = { hostPort: 8080, containerPort: 80, protocol: "tcp" as const };

test("attach keeps the result; detach gives it to DEL in reverse, then drops record, ports and netns", async () => {
  network("front", "10.77.0.2/24");
  const a = await attach(store, { containerId: "c1", netns, network: "front", portMappings: [web] });
  expect(a).toMatchObject({ containerId: "c1", network: "front", ifName: "eth0", netns, complete: true, mac: "02:00:00:00:00:01", portMappings: [web] });
  expect(a.ips.map((i) => [i.ip, i.gateway])).toEqual([["10.77.0.2", "10.77.0.1"]]);
  expect(attachments(store, "c1")).toEqual([a]);
  expect(attachedContainers(store)).toEqual(["c1"]);
  expect(store.inspect("front").containers).toEqual(["c1"]);
  expect(portFiles()).toEqual(["tcp-8080"]);
  const adds = readCalls(log);
  expect(adds.map((c) => c.stdin.runtimeConfig)).toEqual([undefined, { portMappings: [web] }, undefined]);

  // The network file changing afterwards does not change what DEL gets.
  network("front", "10.88.0.2/24", { fw: { fail: { on: ["DEL"], code: 5, msg: "new config" } } });
  await checkAttachment(store, "c1", "front");
  await detach(store, "c1");
  const dels = readCalls(log).filter((c) => c.env.CNI_COMMAND === "DEL");
  expect(dels.map((c) => c.type)).toEqual(["fw-ish", "portmap-ish", "ipam-ish"]);
  for (const d of dels) {
    expect(d.stdin.prevResult).toEqual(a.result as never);
    expect(d.env.CNI_NETNS).toBe(netns);
    expect(d.stdin.runtimeConfig ?? null).toEqual(d.type === "portmap-ish" ? { portMappings: [web] } : null);
  }
  expect(attachments(store, "c1")).toEqual([]);
  expect(attachedContainers(store)).toEqual([]);
  expect(portFiles()).toEqual([]);
  expect(fs.existsSync(netns)).toBe(false);
  expect(fake.calls.filter((c) => c.method === "unmountAll").map((c) => c.args[0])).toEqual([netns]);
  await detach(store, "c1"); // idempotent
});

test("a second network gets eth1; detach takes the last attached first; one network can be detached alone", async () => {
  network("front", "10.77.0.2/24");
  network("back", "10.78.0.2/24");
  await attach(store, { containerId: "c1", netns, network: "front" });
  const b = await attach(store, { containerId: "c1", netns, network: "back" });
  expect(b.ifName).toBe("eth1");
  await expect(attach(store, { containerId: "c1", netns, network: "back" })).rejects.toThrow(AlreadyExistsError);
  await detach(store, "c1", { network: "front" });
  expect(attachments(store, "c1").map((x) => x.network)).toEqual(["back"]);
  expect(fs.existsSync(netns)).toBe(true); // still used by "back"
  await detach(store, "c1");
  expect(steps().filter((s) => s.startsWith("DEL ipam"))).toEqual(["DEL ipam-ish eth0", "DEL ipam-ish eth1"]);
  expect(fs.existsSync(netns)).toBe(false);
});

test("a failed ADD leaves no record and no port reservation behind (the chain was rolled back)", async () => {
  network("front", "10.77.0.2/24", { fw: { fail: { on: ["ADD"], code: 5, msg: "iptables: Resource temporarily unavailable" } } });
  const err = await attach(store, { containerId: "c1", netns, network: "front", portMappings: [web] }).catch((e) => e);
  expect(err.message).toBe('CNI plugin fw-ish (ADD on network "front") failed: iptables: Resource temporarily unavailable');
  expect(steps()).toEqual(["ADD ipam-ish eth0", "ADD portmap-ish eth0", "ADD fw-ish eth0", "DEL fw-ish eth0", "DEL portmap-ish eth0", "DEL ipam-ish eth0"]);
  expect(attachments(store, "c1")).toEqual([]);
  expect(attachedContainers(store)).toEqual([]);
  expect(portFiles()).toEqual([]);
});

test("refusals: unknown network, a path that is no netns, a host port another container publishes", async () => {
  network("front", "10.77.0.2/24");
  await expect(attach(store, { containerId: "c1", netns, network: "nope" })).rejects.toThrow(NotFoundError);
  await expect(attach(store, { containerId: "c1", netns: join(tmp, "calls.jsonl"), network: "front" })).rejects.toThrow(FailedPreconditionError);
  await expect(attach(store, { containerId: "c/1", netns, network: "front" })).rejects.toThrow(/CNI container id/);
  await attach(store, { containerId: "c1", netns, network: "front", portMappings: [web] });
  const err = await attach(store, { containerId: "c2", netns, network: "front", portMappings: [web] }).catch((e) => e);
  expect(err).toBeInstanceOf(FailedPreconditionError);
  expect(err.message).toBe("host port 8080/tcp is already published by container c1");
  expect(attachedContainers(store)).toEqual(["c1"]);
  expect(steps().filter((s) => s.startsWith("ADD ipam"))).toHaveLength(1);
  await detach(store, "c1");
  const netns2 = join(tmp, "netns-c2");
  fs.symlinkSync("/proc/self/ns/net", netns2);
  await attach(store, { containerId: "c2", netns: netns2, network: "front", portMappings: [web] }); // free again
  expect(portFiles()).toEqual(["tcp-8080"]);
});

test("a DEL that fails keeps the record (and the netns) so the next detach finishes the job", async () => {
  const flag = join(tmp, "fail-del");
  fs.writeFileSync(flag, "");
  network("front", "10.77.0.2/24", { portmap: { fail: { on: ["DEL"], code: 11, msg: "xtables lock held", onlyWhile: flag } } });
  await attach(store, { containerId: "c1", netns, network: "front", portMappings: [web] });
  await expect(detach(store, "c1")).rejects.toThrow('CNI plugin portmap-ish (DEL on network "front") failed: xtables lock held');
  expect(attachments(store, "c1")).toHaveLength(1);
  expect(portFiles()).toEqual(["tcp-8080"]);
  expect(fs.existsSync(netns)).toBe(true);
  fs.rmSync(flag);
  await detach(store, "c1");
  expect(attachments(store, "c1")).toEqual([]);
  expect(portFiles()).toEqual([]);
});

test("an attach SIGKILLed during ADD leaves a record that detach uses to DEL everything and free the port", async () => {
  const pidFile = join(tmp, "hang.pids");
  network("front", "10.77.0.2/24", { portmap: { hang: { on: ["ADD"], pidFile } } });
  const script = join(tmp, "attach-child.ts");
  fs.writeFileSync(script, `
    import { attach } from ${JSON.stringify(join(import.meta.dir, "../../src/network/attach.ts"))};
    import { NetworkStore } from ${JSON.stringify(join(import.meta.dir, "../../src/network/networks.ts"))};
    const store = new NetworkStore(${JSON.stringify(join(tmp, "root"))}, { cniPath: ${JSON.stringify(store.cni.cniPath)} });
    await attach(store, { containerId: "c1", netns: ${JSON.stringify(netns)}, network: "front", portMappings: [${JSON.stringify(web)}] });
  `);
  const child = Bun.spawn([process.execPath, script], { stdout: "ignore", stderr: "ignore" });
  for (let i = 0; i < 250 && !fs.existsSync(pidFile); i++) await Bun.sleep(20);
  const [pluginPid, sleeperPid] = fs.readFileSync(pidFile, "utf8").split(" ").map(Number) as [number, number];
  child.kill("SIGKILL");
  await child.exited;
  process.kill(-pluginPid, "SIGKILL"); // the hung plugin's own group, as a reboot would
  for (let i = 0; i < 50 && (pidAlive(pluginPid) || pidAlive(sleeperPid)); i++) await Bun.sleep(20);

  expect(attachments(store, "c1").map((a) => [a.network, a.complete])).toEqual([["front", false]]);
  expect(portFiles()).toEqual(["tcp-8080"]);
  fs.writeFileSync(log, ""); // only detach's calls from here
  await detach(store, "c1");
  const dels = readCalls(log);
  expect(dels.map((c) => `${c.env.CNI_COMMAND} ${c.type}`)).toEqual(["DEL fw-ish", "DEL portmap-ish", "DEL ipam-ish"]);
  expect(dels.every((c) => c.stdin.prevResult === undefined)).toBe(true);
  expect(attachedContainers(store)).toEqual([]);
  expect(portFiles()).toEqual([]);
});

test("portmap runs only for a container that publishes ports; the record keeps the chain that ran, and DEL runs exactly that", async () => {
  installFakePlugins(tmp, ["portmap"]);
  const list: NetworkConfigList = {
    cniVersion: "1.0.0", name: "pm",
    plugins: [{ type: "ipam-ish", fake: { log, ip: "10.77.0.2/24" } }, { type: "portmap", capabilities: { portMappings: true }, fake: { log } }],
  };
  fs.mkdirSync(store.dir, { recursive: true });
  fs.writeFileSync(join(store.dir, "pm.conflist"), JSON.stringify(list));
  expect(chainFor(list, []).plugins.map((p) => p.type)).toEqual(["ipam-ish"]);
  expect(chainFor(list, [web])).toBe(list);

  await attach(store, { containerId: "c1", netns, network: "pm" });
  const record = JSON.parse(fs.readFileSync(join(store.attachmentsDir, "c1", "pm.json"), "utf8"));
  expect(record.config.plugins.map((p: PluginConfig) => p.type)).toEqual(["ipam-ish"]);
  await detach(store, "c1");
  expect(steps()).toEqual(["ADD ipam-ish eth0", "DEL ipam-ish eth0"]);

  fs.writeFileSync(log, "");
  const netns2 = join(tmp, "netns-c2");
  fs.symlinkSync("/proc/self/ns/net", netns2);
  await attach(store, { containerId: "c2", netns: netns2, network: "pm", portMappings: [web] });
  await detach(store, "c2");
  expect(steps()).toEqual(["ADD ipam-ish eth0", "ADD portmap eth0", "DEL portmap eth0", "DEL ipam-ish eth0"]);
});

test("bunker's chain: the network's host setup before ADD; detach unpins first, then runs portmap and the bridge's IPAM at once with netns \"\"", async () => {
  installFakePlugins(tmp, ["bridge", "portmap", "host-local"]);
  const procNet = join(tmp, "proc-net");
  const hostLog = join(tmp, "host.log");
  const host = installFakeHostTools(tmp, hostLog, procNet);
  const bunkerStore = new NetworkStore(join(tmp, "root"), { cniPath: store.cni.cniPath, timeoutMs: 5000, procNet, hostTools: host });
  const list = {
    cniVersion: "1.0.0", name: "bunkerish", bunkerHostRules: true,
    plugins: [
      { type: "bridge", bridge: "br-test", isGateway: true, ipMasq: false, ipam: { type: "host-local", ranges: [[{ subnet: "10.77.0.0/24" }]] }, fake: { log, ip: "10.77.0.2/24", hostVeth: "veth0test", sleepMs: 300 } },
      { type: "portmap", capabilities: { portMappings: true }, fake: { log, sleepMs: 300 } },
    ],
  };
  fs.mkdirSync(bunkerStore.dir, { recursive: true });
  fs.writeFileSync(join(bunkerStore.dir, "bunkerish.conflist"), JSON.stringify(list));

  await attach(bunkerStore, { containerId: "c1", netns, network: "bunkerish", portMappings: [web] });
  expect(fs.readFileSync(hostLog, "utf8")).toContain("ip link add name br-test type bridge");
  expect(host.rules()).toHaveLength(3);
  fs.writeFileSync(log, "");
  await detach(bunkerStore, "c1");
  const dels = readCalls(log);
  expect(dels.map((c) => [c.binary, c.type, c.env.CNI_NETNS]).sort()).toEqual([["host-local", "bridge", ""], ["portmap", "portmap", ""]]);
  const [a, b] = dels as [typeof dels[0], typeof dels[0]];
  expect(a.start < b.end && b.start < a.end).toBe(true); // they overlapped
  expect(fake.calls.filter((c) => c.method === "unmountAll").map((c) => c.args[0])).toEqual([netns]);
  expect(fs.existsSync(netns)).toBe(false);
  expect(attachedContainers(bunkerStore)).toEqual([]);
  expect(portFiles()).toEqual([]);
  expect(fs.readFileSync(hostLog, "utf8")).not.toContain("link delete"); // the fake veth was never in /proc/net/dev

  // A netns something else keeps alive keeps its veth: detach deletes it by name after the wait.
  fs.symlinkSync("/proc/self/ns/net", netns);
  await attach(bunkerStore, { containerId: "c1", netns, network: "bunkerish" });
  fs.appendFileSync(join(procNet, "dev"), "  veth0test: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n");
  await detach(bunkerStore, "c1");
  expect(fs.readFileSync(hostLog, "utf8")).toContain("ip link delete veth0test");
  expect(fs.readFileSync(join(procNet, "dev"), "utf8")).not.toContain("veth0test");
  expect(attachedContainers(bunkerStore)).toEqual([]);

  // A device of that name with another MAC (a reboot reused the name) is someone else's: left alone.
  fs.symlinkSync("/proc/self/ns/net", netns);
  await attach(bunkerStore, { containerId: "c1", netns, network: "bunkerish" });
  fs.appendFileSync(join(procNet, "dev"), "  veth0test: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n");
  fs.writeFileSync(join(tmp, "host-state", "mac-veth0test"), "02:00:00:00:00:99");
  fs.writeFileSync(hostLog, "");
  await detach(bunkerStore, "c1");
  expect(fs.readFileSync(hostLog, "utf8").trim().split("\n").map((l) => l.replace(/^\S*\//, ""))).toEqual(["ip -o link show dev veth0test"]);
  expect(fs.readFileSync(join(procNet, "dev"), "utf8")).toContain("veth0test");
  expect(attachedContainers(bunkerStore)).toEqual([]);
});
