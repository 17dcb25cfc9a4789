// The CNI exec protocol against fake plugins in a temp CNI_PATH (tests/support/fake-cni.ts): the
// environment and stdin each plugin gets, conflist chaining, capability arguments, DEL in reverse,
// error objects, stderr garbage, hangs, missing binaries, and the rollback of a failed ADD.
import { afterAll, beforeAll, beforeEach, expect, test } from "bun:test";
import * as fs from "node:fs";
import { join } from "node:path";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, UnavailableError, UnknownError } from "../../src/errdefs.ts";
import { addNetworkList, checkNetworkList, delNetworkList, execPlugin, isRollbackIncomplete, pluginVersions, validateRuntimeConf, type NetworkConfigList, type PluginConfig, type RuntimeConf } from "../../src/network/cni.ts";
import { summarizeResult } from "../../src/network/result.ts";
import { installFakePlugins, pidAlive, readCalls, type FakeBehaviour } from "../support/fake-cni.ts";

let tmp: string;
let cniPath: string[];
let log: string;

beforeAll(() => {
  tmp = fs.mkdtempSync("/tmp/bunker-network-cni-");
  cniPath = [join(tmp, "empty"), installFakePlugins(tmp, ["one", "two", "three"])];
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
beforeEach(() => {
  log = join(tmp, `calls-${crypto.randomUUID()}.jsonl`);
});

const rt: RuntimeConf = { containerId: "ns1-web", netns: "/run/bunker/networks/netns/ns1-web", ifName: "eth0", args: { IgnoreUnknown: "1", K8S_POD_NAME: "web" }, capabilityArgs: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }] } };
const plugin = (type: string, fake: Partial<FakeBehaviour> = {}, extra: Partial<PluginConfig> = {}): PluginConfig => ({ type, fake: { log, ...fake }, ...extra });
const list = (...plugins: PluginConfig[]): NetworkConfigList => ({ cniVersion: "1.0.0", name: "testnet", plugins });

test("a plugin gets the CNI_* environment, CNI_ARGS joined, and the list's name and version on stdin", async () => {
  const result = await addNetworkList(list(plugin("one", { ip: "10.99.0.2/24" })), rt, { cniPath });
  const [call] = readCalls(log);
  expect(call!.env).toEqual({
    CNI_COMMAND: "ADD", CNI_CONTAINERID: "ns1-web", CNI_NETNS: rt.netns, CNI_IFNAME: "eth0",
    CNI_PATH: cniPath.join(":"), CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAME=web",
  });
  expect(call!.stdin.name).toBe("testnet");
  expect(call!.stdin.cniVersion).toBe("1.0.0");
  expect(call!.stdin.prevResult).toBeUndefined();
  expect(summarizeResult(result).ips.map((i) => i.address)).toEqual(["10.99.0.2/24"]);
});

test("a chain passes each result on as prevResult; runtimeConfig goes only to plugins declaring the capability", async () => {
  const result = await addNetworkList(list(
    plugin("one", { ip: "10.99.0.2/24" }),
    plugin("two", {}, { capabilities: { portMappings: true, bandwidth: true } }),
    plugin("three", { ip: "fd00::2/64" }),
  ), rt, { cniPath });
  const calls = readCalls(log);
  expect(calls.map((c) => c.type)).toEqual(["one", "two", "three"]);
  expect(calls[1]!.stdin.prevResult!.ips!.map((i) => i.address)).toEqual(["10.99.0.2/24"]);
  expect(calls[2]!.stdin.prevResult!.ips!.map((i) => i.address)).toEqual(["10.99.0.2/24"]);
  expect(calls[0]!.stdin.runtimeConfig).toBeUndefined();
  // Declared but not supplied (bandwidth) stays out; supplied and declared goes in.
  expect(calls[1]!.stdin.runtimeConfig).toEqual({ portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }] });
  expect(calls[2]!.stdin.runtimeConfig).toBeUndefined();
  expect(summarizeResult(result).ips.map((i) => [i.address, i.version, i.interface])).toEqual([["10.99.0.2/24", 4, "eth0"], ["fd00::2/64", 6, "eth0"]]);
});

test("DEL runs the chain in reverse, every plugin given the ADD result", async () => {
  const prev = { cniVersion: "1.0.0", interfaces: [], ips: [{ address: "10.99.0.7/24" }] };
  await delNetworkList(list(plugin("one"), plugin("two"), plugin("three")), rt, prev, { cniPath });
  const calls = readCalls(log);
  expect(calls.map((c) => `${c.env.CNI_COMMAND} ${c.type}`)).toEqual(["DEL three", "DEL two", "DEL one"]);
  for (const c of calls) expect(c.stdin.prevResult).toEqual(prev);
});

test("DEL with the netns gone passes an empty CNI_NETNS and keeps going past a failing plugin, then reports it", async () => {
  const failing = plugin("two", { fail: { on: ["DEL"], code: 11, msg: "try again" } });
  const err = await delNetworkList(list(plugin("one"), failing, plugin("three")), { ...rt, netns: "" }, undefined, { cniPath }).catch((e) => e);
  expect(err).toBeInstanceOf(UnavailableError);
  expect(err.message).toBe('CNI plugin two (DEL on network "testnet") failed: try again');
  const calls = readCalls(log);
  expect(calls.map((c) => c.type)).toEqual(["three", "two", "one"]);
  expect(calls.every((c) => c.env.CNI_NETNS === "")).toBe(true);
});

test("a plugin's error object becomes one line naming the plugin, classed by its code", async () => {
  const err = await addNetworkList(list(plugin("one", { fail: { on: ["ADD"], code: 7, msg: "bad config", details: "line one\nline two" } })), rt, { cniPath }).catch((e) => e);
  expect(err).toBeInstanceOf(InvalidArgumentError);
  expect(err.message).toBe('CNI plugin one (ADD on network "testnet") failed: bad config: line one; line two');
  const other = await addNetworkList(list(plugin("one", { fail: { on: ["ADD"], code: 999, msg: "custom" } })), rt, { cniPath }).catch((e) => e);
  expect(other).toBeInstanceOf(FailedPreconditionError);
});

test("a failure without an error object reports the exit status and stderr", async () => {
  const err = await addNetworkList(list(plugin("one", { garbage: { on: ["ADD"], stderr: "panic: runtime error\ngoroutine 1" } })), rt, { cniPath }).catch((e) => e);
  expect(err).toBeInstanceOf(UnknownError);
  expect(err.message).toBe('CNI plugin one (ADD on network "testnet") failed with exit status 2: panic: runtime error; goroutine 1');
});

test("a plugin that hangs is killed with its process group after the timeout", async () => {
  const pidFile = join(tmp, "hang.pids");
  const started = performance.now();
  const err = await execPlugin("ADD", { ...plugin("one", { hang: { on: ["ADD"], pidFile } }), name: "testnet", cniVersion: "1.0.0" }, rt, { cniPath, timeoutMs: 700 }).catch((e) => e);
  expect(err).toBeInstanceOf(UnavailableError);
  expect(err.message).toBe('CNI plugin one (ADD on network "testnet") did not finish within 700 ms and was killed');
  expect(performance.now() - started).toBeLessThan(5000);
  const pids = fs.readFileSync(pidFile, "utf8").split(" ").map(Number);
  for (let i = 0; i < 50 && pids.some(pidAlive); i++) await Bun.sleep(20);
  expect(pids.filter(pidAlive)).toEqual([]);
});

test("a missing plugin binary is a NotFoundError naming it and the path searched, before any plugin runs", async () => {
  const err = await addNetworkList(list(plugin("one", { ip: "10.99.0.2/24" }), plugin("bridge-that-is-not-there")), rt, { cniPath }).catch((e) => e);
  expect(err).toBeInstanceOf(NotFoundError);
  expect(err.message).toBe(`CNI plugin "bridge-that-is-not-there" not found in ${cniPath.join(":")} (is containernetworking-plugins installed?)`);
  expect(readCalls(log)).toEqual([]);
  await expect(addNetworkList(list(plugin("../one")), rt, { cniPath })).rejects.toThrow(InvalidArgumentError);
});

test("an ADD failing mid-chain rolls back the plugins that ran, in reverse, with the last good result", async () => {
  const err = await addNetworkList(list(
    plugin("one", { ip: "10.99.0.2/24" }),
    plugin("two", { fail: { on: ["ADD"], code: 5, msg: "iptables: resource busy" } }),
    plugin("three"),
  ), rt, { cniPath }).catch((e) => e);
  expect(err.message).toBe('CNI plugin two (ADD on network "testnet") failed: iptables: resource busy');
  expect(isRollbackIncomplete(err)).toBe(false);
  const calls = readCalls(log);
  expect(calls.map((c) => `${c.env.CNI_COMMAND} ${c.type}`)).toEqual(["ADD one", "ADD two", "DEL two", "DEL one"]);
  expect(calls[2]!.stdin.prevResult!.ips!.map((i) => i.address)).toEqual(["10.99.0.2/24"]);
});

test("a rollback that fails too is reported with the ADD error and marked incomplete", async () => {
  const err = await addNetworkList(list(
    plugin("one", { ip: "10.99.0.2/24", fail: { on: ["DEL"], code: 5, msg: "lease file busy" } }),
    plugin("two", { fail: { on: ["ADD"], code: 5, msg: "no veth" } }),
  ), rt, { cniPath }).catch((e) => e);
  expect(err.message).toBe('CNI plugin two (ADD on network "testnet") failed: no veth (and the rollback failed: CNI plugin one (DEL on network "testnet") failed: lease file busy)');
  expect(isRollbackIncomplete(err)).toBe(true);
});

test("CHECK runs in order with the result; refused below spec 0.4.0; skipped when the list disables it", async () => {
  const prev = { cniVersion: "1.0.0", ips: [] };
  await checkNetworkList(list(plugin("one"), plugin("two")), rt, prev, { cniPath });
  expect(readCalls(log).map((c) => `${c.env.CNI_COMMAND} ${c.type}`)).toEqual(["CHECK one", "CHECK two"]);
  await expect(checkNetworkList({ ...list(plugin("one")), cniVersion: "0.3.1" }, rt, prev, { cniPath })).rejects.toThrow(/CHECK needs CNI spec 0.4.0/);
  await checkNetworkList({ ...list(plugin("three")), disableCheck: true }, rt, prev, { cniPath });
  expect(readCalls(log).some((c) => c.type === "three")).toBe(false);
});

test("VERSION reports the supported spec versions", async () => {
  expect(await pluginVersions("one", { cniPath })).toEqual(["0.4.0", "1.0.0"]);
});

test("runtime values the spec forbids are refused before any plugin runs", () => {
  expect(() => validateRuntimeConf({ ...rt, containerId: "a/b" })).toThrow(InvalidArgumentError);
  expect(() => validateRuntimeConf({ ...rt, ifName: "a-very-long-ifname" })).toThrow(/1-15 characters/);
  expect(() => validateRuntimeConf({ ...rt, ifName: "eth:0" })).toThrow(InvalidArgumentError);
  expect(() => validateRuntimeConf({ ...rt, netns: "relative/path" })).toThrow(/not absolute/);
  expect(() => validateRuntimeConf({ ...rt, args: { "A;B": "1" } })).toThrow(/may not contain/);
  expect(() => validateRuntimeConf(rt)).not.toThrow();
});

test("results of every spec version read the same", () => {
  expect(summarizeResult({ cniVersion: "0.2.0", ip4: { ip: "10.1.0.5/16", gateway: "10.1.0.1" }, ip6: { ip: "fd00::5/64" } }).ips)
    .toEqual([{ address: "10.1.0.5/16", ip: "10.1.0.5", version: 4, gateway: "10.1.0.1" }, { address: "fd00::5/64", ip: "fd00::5", version: 6 }]);
  const v031 = summarizeResult({
    cniVersion: "0.3.1",
    interfaces: [{ name: "bunker0", mac: "aa:aa:aa:aa:aa:aa" }, { name: "veth1" }, { name: "eth0", mac: "02:42:0a:0e:00:02", sandbox: "/run/x" }],
    ips: [{ version: "4", address: "10.14.0.2/24", gateway: "10.14.0.1", interface: 2 }],
  });
  expect(v031.ips).toEqual([{ address: "10.14.0.2/24", ip: "10.14.0.2", version: 4, gateway: "10.14.0.1", interface: "eth0" }]);
  expect(v031.mac).toBe("02:42:0a:0e:00:02");
  expect(summarizeResult(null)).toEqual({ ips: [], interfaces: [] });
});
