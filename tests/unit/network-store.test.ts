// Named networks and their subnets without root: prefix parsing and overlap (both families), the
// host's routes read from /proc/net fixtures, the conflist bunker writes (bridge + host-local and
// portmap, with per-network host rules), create/list/inspect/remove and their refusals, the host
// rules and bridge a network gets once (over fake iptables/ip, tests/support/fake-cni.ts), and
// published-port parsing and reservation.
import { afterEach, beforeEach, expect, test } from "bun:test";
import * as fs from "node:fs";
import { join } from "node:path";
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../../src/errdefs.ts";
import { bridgeConflist, NetworkStore } from "../../src/network/networks.ts";
import { parsePublish, portsInUse, releasePorts, reservePorts } from "../../src/network/ports.ts";
import { formatIp, formatPrefix, hostRoutes, parseIp, parsePrefix, prefixesOverlap } from "../../src/network/subnets.ts";
import { installFakeHostTools } from "../support/fake-cni.ts";

let tmp: string;
let procNet: string;
let hostLog: string;
let host: ReturnType<typeof installFakeHostTools>;

beforeEach(() => {
  tmp = fs.mkdtempSync("/tmp/bunker-network-store-");
  procNet = join(tmp, "proc-net");
  fs.mkdirSync(procNet);
  // The fixture is little-endian, as /proc/net/route prints on x86 and arm64.
  fs.writeFileSync(join(procNet, "route"), [
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT",
    "eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0", // default via 192.168.0.1
    "eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0", // 192.168.0.0/24
    "docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0", // 172.17.0.0/16
    "bunker0\t00000E0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0", // 10.14.0.0/24, bunker's own bridge
    "",
  ].join("\n"));
  fs.writeFileSync(join(procNet, "ipv6_route"), [
    "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0",
    "fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0",
    "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000003 00000000 00000003     eth0",
    "fd000000000000000000000000000002 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo",
    "",
  ].join("\n"));
  hostLog = join(tmp, "host.log");
  host = installFakeHostTools(tmp, hostLog, procNet);
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

const store = () => new NetworkStore(tmp, { procNet, hostTools: host });
const hostCalls = (): string[] => (fs.existsSync(hostLog) ? fs.readFileSync(hostLog, "utf8").trim().split("\n").filter(Boolean) : []).map((l) => l.replace(/^\S*\//, ""));

test("prefixes: both families parse, print canonically, and refuse host bits and junk", () => {
  expect(formatPrefix(parsePrefix("10.14.0.0/24"))).toBe("10.14.0.0/24");
  expect(formatPrefix(parsePrefix("fd00:0:0:0::/64"))).toBe("fd00::/64");
  expect(formatIp(6, parseIp("::ffff:10.0.0.1")!.value)).toBe("::ffff:a00:1");
  expect(formatIp(6, parseIp("2001:db8:0:0:1:0:0:1")!.value)).toBe("2001:db8::1:0:0:1");
  expect(parseIp("1.2.3")).toBeUndefined();
  expect(parseIp("1:2:3:4:5:6:7:8:9")).toBeUndefined();
  expect(parseIp("1::2::3")).toBeUndefined();
  expect(() => parsePrefix("10.14.0.1/24")).toThrow('subnet "10.14.0.1/24" has host bits set; did you mean 10.14.0.0/24?');
  for (const bad of ["10.14.0.0", "10.14.0.0/33", "10.14.0.0/24/1", "x/8", "fd00::/129"]) expect(() => parsePrefix(bad)).toThrow(InvalidArgumentError);
  expect(prefixesOverlap(parsePrefix("10.0.0.0/8"), parsePrefix("10.14.3.0/24"))).toBe(true);
  expect(prefixesOverlap(parsePrefix("10.14.0.0/24"), parsePrefix("10.14.1.0/24"))).toBe(false);
  expect(prefixesOverlap(parsePrefix("10.0.0.0/8"), parsePrefix("fd00::/8"))).toBe(false);
});

test("host routes: /proc/net/route and ipv6_route, without defaults, link-local and lo", () => {
  expect(hostRoutes(procNet).map((r) => `${formatPrefix(r.prefix)} ${r.iface}`)).toEqual(["192.168.0.0/24 eth0", "172.17.0.0/16 docker0", "10.14.0.0/24 bunker0", "fd00::/64 eth0"]);
  expect(hostRoutes(join(tmp, "absent"))).toEqual([]);
});

test("the conflist: bridge (no ipMasq) + host-local, portmap with the capability, host rules by bunker; no firewall or tuning", () => {
  expect(bridgeConflist("web", "br-x", "10.14.5.0/24", "10.14.5.1", "/var/lib/bunker/networks/ipam")).toEqual({
    cniVersion: "1.0.0",
    name: "web",
    bunkerHostRules: true,
    plugins: [
      {
        type: "bridge", bridge: "br-x", isGateway: true, ipMasq: false, hairpinMode: true,
        ipam: { type: "host-local", ranges: [[{ subnet: "10.14.5.0/24", gateway: "10.14.5.1" }]], routes: [{ dst: "0.0.0.0/0" }], dataDir: "/var/lib/bunker/networks/ipam" },
      },
      { type: "portmap", capabilities: { portMappings: true } },
    ],
  });
  expect((bridgeConflist("v6", "br-y", "fd10::/64", "fd10::1", "/d").plugins[0]!.ipam as { routes: unknown }).routes).toEqual([{ dst: "::/0" }]);
});

test("host setup: the rules first, then the bridge; once the bridge exists nothing runs; a half-done setup is completed without duplicates", async () => {
  const s = store();
  s.create("front", { subnet: "10.50.0.0/24", bridge: "br-front" });
  expect(hostCalls()).toEqual([]); // create only writes the conflist
  await s.ensureHostSetup("front");
  const comment = '-m comment --comment bunker network front';
  expect(hostCalls()).toEqual([
    `iptables -w 5 -t nat -C POSTROUTING -s 10.50.0.0/24 ! -o br-front ${comment} -j MASQUERADE`,
    `iptables -w 5 -t nat -A POSTROUTING -s 10.50.0.0/24 ! -o br-front ${comment} -j MASQUERADE`,
    `iptables -w 5 -t filter -C FORWARD -i br-front ${comment} -j ACCEPT`,
    `iptables -w 5 -t filter -I FORWARD 1 -i br-front ${comment} -j ACCEPT`,
    `iptables -w 5 -t filter -C FORWARD -o br-front -m conntrack --ctstate RELATED,ESTABLISHED,DNAT ${comment} -j ACCEPT`,
    `iptables -w 5 -t filter -I FORWARD 1 -o br-front -m conntrack --ctstate RELATED,ESTABLISHED,DNAT ${comment} -j ACCEPT`,
    "ip link add name br-front type bridge",
  ]);
  expect(host.rules()).toHaveLength(3);
  fs.writeFileSync(hostLog, "");
  await s.ensureHostSetup("front");
  expect(hostCalls()).toEqual([]);

  // A crash after the rules but before the bridge (or a bridge deleted by hand): only the bridge is made.
  fs.writeFileSync(join(procNet, "dev"), fs.readFileSync(join(procNet, "dev"), "utf8").replace(/.*br-front:.*\n/, ""));
  await s.ensureHostSetup("front");
  expect(hostCalls().filter((c) => !c.includes(" -C "))).toEqual(["ip link add name br-front type bridge"]);
  expect(host.rules()).toHaveLength(3);

  // Concurrent ensures (racing first attaches) add each rule once.
  fs.writeFileSync(join(procNet, "dev"), fs.readFileSync(join(procNet, "dev"), "utf8").replace(/.*br-front:.*\n/, ""));
  for (const f of fs.readdirSync(join(tmp, "host-state"))) fs.rmSync(join(tmp, "host-state", f));
  await Promise.all([s.ensureHostSetup("front"), s.ensureHostSetup("front"), s.ensureHostSetup("front")]);
  expect(host.rules()).toHaveLength(3);

  // IPv6 networks get ip6tables.
  s.create("v6", { subnet: "fd10::/64", bridge: "br-v6" });
  fs.writeFileSync(hostLog, "");
  await s.ensureHostSetup("v6");
  expect(hostCalls().filter((c) => c.startsWith("ip6tables")).length).toBe(6);
  expect(hostCalls().filter((c) => c.startsWith("iptables"))).toEqual([]);
});

test("network rm takes the bridge and then the rules (each as often as it is there); a list without bunkerHostRules only loses its bridge", async () => {
  const s = store();
  s.create("front", { subnet: "10.50.0.0/24", bridge: "br-front" });
  s.create("keep", { subnet: "10.51.0.0/24", bridge: "br-keep" });
  await s.ensureHostSetup("front");
  await s.ensureHostSetup("keep");
  expect(host.rules()).toHaveLength(6);
  fs.writeFileSync(hostLog, "");
  await s.remove("front");
  const calls = hostCalls();
  expect(calls[0]).toBe("ip link delete br-front");
  expect(calls.filter((c) => c.includes(" -D ")).length).toBe(6); // three found, three "no more"
  expect(host.rules().every((r) => r.includes("br-keep"))).toBe(true);
  expect(host.rules()).toHaveLength(3);
  expect(s.list().map((n) => n.name)).toEqual(["keep"]);

  fs.writeFileSync(join(s.dir, "plain.conflist"), JSON.stringify({ cniVersion: "1.0.0", name: "plain", plugins: [{ type: "bridge", bridge: "br-plain", ipam: { ranges: [[{ subnet: "10.52.0.0/24" }]] } }] }));
  await s.ensureHostSetup("plain");
  fs.writeFileSync(hostLog, "");
  await s.remove("plain"); // the bridge is not there: fine
  expect(hostCalls()).toEqual(["ip link delete br-plain"]);
});

test("the default network appears on first use (its own bridge's route is no overlap), once", () => {
  const s = store();
  expect(s.list()).toEqual([]);
  const list = s.config("bridge");
  expect(list.plugins[0]).toMatchObject({ type: "bridge", bridge: "bunker0", ipam: { ranges: [[{ subnet: "10.14.0.0/24", gateway: "10.14.0.1" }]], dataDir: join(tmp, "networks/ipam") } });
  expect(s.config("bridge")).toEqual(list);
  expect(s.list().map((n) => [n.name, n.bridge, n.subnet, n.gateway, n.plugins.join(",")])).toEqual([["bridge", "bunker0", "10.14.0.0/24", "10.14.0.1", "bridge,portmap"]]);
  expect(fs.readdirSync(join(tmp, "networks"))).toEqual(["bridge.conflist"]);
  return expect(s.remove("bridge")).rejects.toThrow(/default network and cannot be removed/);
});

test("create: named networks get a br-<hash> device and the next free /24; a given subnet and gateway are checked", () => {
  const s = store();
  s.ensureDefault();
  const a = s.create("front");
  expect(a).toMatchObject({ name: "front", subnet: "10.14.1.0/24", gateway: "10.14.1.1", containers: [] });
  expect(a.bridge).toMatch(/^br-[0-9a-f]{12}$/);
  expect(s.create("back", { subnet: "10.99.0.0/16", gateway: "10.99.255.254" })).toMatchObject({ subnet: "10.99.0.0/16", gateway: "10.99.255.254" });
  expect(s.create("auto2").subnet).toBe("10.14.2.0/24");
  expect(s.create("v6", { subnet: "fd10::/64" })).toMatchObject({ subnet: "fd10::/64", gateway: "fd10::1" });
  expect(s.list().map((n) => n.name)).toEqual(["auto2", "back", "bridge", "front", "v6"]);
});

test("create refuses: overlaps with host routes and networks, bad gateways, names and duplicates — and writes nothing", () => {
  const s = store();
  s.create("front", { subnet: "10.50.0.0/24" });
  const before = fs.readdirSync(join(tmp, "networks")).sort();
  const cases: [() => unknown, new (m: string) => Error, string][] = [
    [() => s.create("x", { subnet: "192.168.0.128/25" }), FailedPreconditionError, "subnet 192.168.0.128/25 overlaps the host route 192.168.0.0/24 on eth0; pick another --subnet"],
    [() => s.create("x", { subnet: "172.16.0.0/12" }), FailedPreconditionError, "subnet 172.16.0.0/12 overlaps the host route 172.17.0.0/16 on docker0; pick another --subnet"],
    [() => s.create("x", { subnet: "fd00::/48" }), FailedPreconditionError, "subnet fd00::/48 overlaps the host route fd00::/64 on eth0; pick another --subnet"],
    [() => s.create("x", { subnet: "10.50.0.0/16" }), FailedPreconditionError, 'subnet 10.50.0.0/16 overlaps network "front" (10.50.0.0/24)'],
    [() => s.create("x", { subnet: "10.60.0.0/24", gateway: "10.61.0.1" }), InvalidArgumentError, 'gateway "10.61.0.1" is not an address inside 10.60.0.0/24'],
    [() => s.create("x", { subnet: "10.60.0.0/24", gateway: "10.60.0.255" }), InvalidArgumentError, "gateway 10.60.0.255 is the network or broadcast address of 10.60.0.0/24"],
    [() => s.create("x", { subnet: "10.60.0.0/31" }), InvalidArgumentError, "subnet 10.60.0.0/31 is too small for a gateway and a container"],
    [() => s.create("front"), AlreadyExistsError, 'network "front" already exists'],
    [() => s.create("host"), InvalidArgumentError, 'network name "host" is reserved (--net host means something else)'],
    [() => s.create("../evil"), InvalidArgumentError, 'network name "../evil" must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'],
    [() => s.create("y", { subnet: "10.70.0.0/24", bridge: "a-bridge-name-too-long" }), InvalidArgumentError, 'bridge name "a-bridge-name-too-long" must be 1-15 characters of [A-Za-z0-9_.-]'],
    [() => s.create("y", { subnet: "10.70.0.0/24", bridge: s.inspect("front").bridge }), AlreadyExistsError, `bridge ${s.inspect("front").bridge} is already used by network "front"`],
  ];
  for (const [fn, Cls, message] of cases) {
    let err: unknown;
    try { fn(); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(Cls);
    expect((err as Error).message).toBe(message);
  }
  expect(fs.readdirSync(join(tmp, "networks")).sort()).toEqual(before);
});

test("inspect and remove: unknown is NotFound, in use is refused, a damaged file is named", async () => {
  const s = store();
  s.create("front", { subnet: "10.50.0.0/24" });
  expect(() => s.inspect("nope")).toThrow(NotFoundError);
  await expect(s.remove("nope")).rejects.toThrow('network "nope" not found');
  fs.mkdirSync(join(s.attachmentsDir, "ns1-web"), { recursive: true });
  fs.writeFileSync(join(s.attachmentsDir, "ns1-web", "front.json"), "{}");
  expect(s.inspect("front").containers).toEqual(["ns1-web"]);
  await expect(s.remove("front")).rejects.toThrow('network "front" is in use by ns1-web');
  fs.rmSync(join(s.attachmentsDir, "ns1-web"), { recursive: true });
  fs.mkdirSync(join(s.ipamDir, "front"), { recursive: true });
  await s.remove("front");
  expect(s.list()).toEqual([]);
  expect(fs.existsSync(join(s.ipamDir, "front"))).toBe(false);
  fs.writeFileSync(join(s.dir, "broken.conflist"), "{not json");
  expect(() => s.config("broken")).toThrow(/network "broken": .*broken.conflist is damaged/);
  expect(s.list()).toEqual([]);
});

test("-p parses docker's forms and refuses the rest", () => {
  expect(parsePublish("8080:80")).toEqual({ hostPort: 8080, containerPort: 80, protocol: "tcp" });
  expect(parsePublish("127.0.0.1:8080:80/udp")).toEqual({ hostPort: 8080, containerPort: 80, protocol: "udp", hostIP: "127.0.0.1" });
  expect(parsePublish("[::1]:53:53/UDP")).toEqual({ hostPort: 53, containerPort: 53, protocol: "udp", hostIP: "::1" });
  for (const bad of ["80", "0:80", "8080:70000", "8080:80/sctp", "host:8080:80", "1:2:3:4"]) expect(() => parsePublish(bad)).toThrow(InvalidArgumentError);
});

test("host ports: a listening socket or another container's reservation refuses; stale reservations are taken over; all or none", () => {
  fs.writeFileSync(join(procNet, "tcp"), [
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
    "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1",
    "   1: 0100007F:1F91 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2 1",
    "",
  ].join("\n"));
  expect([...portsInUse("tcp", procNet)]).toEqual([8080]);
  const dir = join(tmp, "ports");
  const live = new Set(["c1", "c2"]);
  const stale = (holder: string) => !live.has(holder);
  const tcp = (hostPort: number) => ({ hostPort, containerPort: 80, protocol: "tcp" as const });
  expect(() => reservePorts(dir, "c1", [tcp(8080)], stale, procNet)).toThrow("host port 8080/tcp is already in use on this host");
  reservePorts(dir, "c1", [tcp(8081), tcp(9000)], stale, procNet);
  reservePorts(dir, "c1", [tcp(8081)], stale, procNet); // its own again: fine
  expect(() => reservePorts(dir, "c2", [tcp(9001), tcp(8081)], stale, procNet)).toThrow("host port 8081/tcp is already published by container c1");
  expect(fs.readdirSync(dir).sort()).toEqual(["tcp-8081", "tcp-9000"]); // c2's 9001 was given back
  expect(() => reservePorts(dir, "c2", [tcp(7000), tcp(7000)], stale, procNet)).toThrow("host port 7000/tcp is published twice");
  fs.writeFileSync(join(dir, "udp-53"), "gone");
  reservePorts(dir, "c2", [{ hostPort: 53, containerPort: 53, protocol: "udp" }], stale, procNet);
  expect(fs.readFileSync(join(dir, "udp-53"), "utf8")).toBe("c2");
  releasePorts(dir, "c2", [tcp(8081), { hostPort: 53, containerPort: 53, protocol: "udp" }]);
  expect(fs.readdirSync(dir).sort()).toEqual(["tcp-8081", "tcp-9000"]);
});
