// The network code against Debian's real CNI plugins (bridge, host-local, portmap, loopback, and
// tuning for a failing chain), run entirely inside a private network and mount namespace that a
// netns agent (tests/support/netns-agent.ts) makes: its bridges, veths, iptables rules and netns
// pins die with it. Only loopback and this file's own subnets (10.14.0.0/24, 10.15.x.0/24, and
// 10.16.0.0/24 as the "outside" a masqueraded container reaches) are addressed.
// "Nothing left" is checked against a snapshot of links, iptables rules, host-local leases, nsfs
// mounts, pins, records and port reservations; the baseline is taken after one warm-up cycle,
// because the default network's bridge and its three host rules (masquerade, two forward accepts)
// stay until `network rm` (which the default network never gets), and portmap's shared chains
// (CNI-HOSTPORT-*) stay by design (every CNI user on a host shares them); the first test pins down
// exactly that set, and the named-network test checks that `network rm` takes its rules.
import { afterAll, beforeAll, expect, test } from "bun:test";
import * as fs from "node:fs";
import { join } from "node:path";
import type { Attachment } from "../../src/network/attach.ts";
import { bridgeConflist } from "../../src/network/networks.ts";
import { describeWith } from "../support/require.ts";
import { NetnsAgent } from "../support/netns-agent.ts";

const PLUGINS = ["bridge", "host-local", "portmap", "tuning", "loopback"];

describeWith(["root", "bin:unshare", "bin:nsenter", "bin:ip", "bin:iptables-save", "bin:busybox", ...PLUGINS.map((p) => `bin:/usr/lib/cni/${p}` as const)], "network over the real CNI plugins, in a private netns", () => {
  let agent: NetnsAgent;
  let tmp: string;
  let root: string;
  let pins: string;
  let www: string;
  let seq = 0;

  beforeAll(async () => {
    tmp = fs.mkdtempSync("/tmp/bunker-network-it-");
    root = join(tmp, "root");
    pins = join(tmp, "state", "networks", "netns");
    www = join(tmp, "www");
    fs.mkdirSync(www);
    fs.writeFileSync(join(www, "index.html"), "hello from the container\n");
    agent = await NetnsAgent.start();
    await agent.call("init", root, { timeoutMs: 20_000 });
  });
  afterAll(async () => {
    await agent?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const sh = async (cmd: string) => (await agent.run("sh", "-c", cmd)).stdout;
  const pinFor = (id: string) => join(pins, id);

  /** Until a TCP socket listens on `port` in the pin's netns (the agent's own when undefined). */
  async function waitListening(pin: string | undefined, port: number): Promise<void> {
    const hex = `:${port.toString(16).toUpperCase().padStart(4, "0")} `;
    const cat = `${pin ? `nsenter --net=${pin} ` : ""}cat /proc/net/tcp /proc/net/tcp6`;
    for (let i = 0; i < 100; i++) {
      if ((await sh(cat)).split("\n").some((l) => l.includes(hex) && / 0A /.test(l))) return;
      await Bun.sleep(20);
    }
    throw new Error(`nothing listens on port ${port}`);
  }

  async function snapshot() {
    const rules = (await sh("iptables-save; ip6tables-save")).split("\n").filter((l) => l && !l.startsWith("#")).map((l) => l.replace(/\[\d+:\d+\]/, "[0:0]"));
    const links = (await sh("ip -o link show")).split("\n").filter(Boolean).map((l) => l.split(":")[1]!.trim().split("@")[0]!).sort();
    const leaseDir = join(root, "networks", "ipam");
    const leases = fs.existsSync(leaseDir) ? fs.readdirSync(leaseDir, { recursive: true }).map(String).filter((f) => /\d+\.\d+\.\d+\.\d+$|:/.test(f)).sort() : [];
    const mounts = (await sh("cat /proc/self/mountinfo")).split("\n").filter((l) => l.includes(" - nsfs ")).map((l) => l.split(" ")[4]);
    const dirList = (d: string) => (fs.existsSync(d) ? fs.readdirSync(d).sort() : []);
    return { rules, links, leases, mounts, pins: dirList(pins), records: dirList(join(root, "networks", "attachments")), ports: dirList(join(root, "networks", "ports")) };
  }

  async function container(network = "bridge", portMappings: unknown[] = []): Promise<{ id: string; pin: string; att: Attachment }> {
    const id = `it-${process.pid}-${++seq}`;
    await agent.call("createNetns", pinFor(id));
    const att = await agent.call<Attachment>("attach", { containerId: id, netns: pinFor(id), network, portMappings });
    return { id, pin: pinFor(id), att };
  }

  let baseline: Awaited<ReturnType<typeof snapshot>>;

  test("warm-up: what one attach/detach leaves is the bridge, the network's three host rules and portmap's shared chains", async () => {
    const before = await snapshot();
    const c = await container("bridge", [{ hostPort: 18080, containerPort: 80, protocol: "tcp" }]);
    await agent.call("detach", c.id);
    baseline = await snapshot();
    expect(baseline.links.filter((l) => !before.links.includes(l))).toEqual(["bunker0"]);
    const added = baseline.rules.filter((r) => !before.rules.includes(r));
    // New tables bring their headers and built-in chains; every other new line is a shared CNI chain or the network's rules.
    const tableScaffolding = /^(\*\w+|COMMIT|:(INPUT|FORWARD|OUTPUT|PREROUTING|POSTROUTING) ACCEPT \[0:0\])$/;
    const networkRules = added.filter((r) => r.includes('"bunker network bridge"'));
    expect(networkRules.sort()).toEqual([
      '-A FORWARD -i bunker0 -m comment --comment "bunker network bridge" -j ACCEPT',
      '-A FORWARD -o bunker0 -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -m comment --comment "bunker network bridge" -j ACCEPT',
      '-A POSTROUTING -s 10.14.0.0/24 ! -o bunker0 -m comment --comment "bunker network bridge" -j MASQUERADE',
    ]);
    expect(added.filter((r) => !tableScaffolding.test(r) && !networkRules.includes(r) && !/CNI-HOSTPORT-(DNAT|MASQ|SETMARK)/.test(r))).toEqual([]);
    expect(added.some((r) => r.includes(c.id) || r.includes(c.att.ips[0]!.ip))).toBe(false);
    expect([baseline.leases, baseline.mounts, baseline.pins, baseline.records, baseline.ports]).toEqual([[], [], [], [], []]);
  });

  test("a netns: pinned, lo up, the agent's own netns unchanged; removal is idempotent", async () => {
    const own = await sh("readlink /proc/self/ns/net");
    const agentNs = fs.readlinkSync(`/proc/${agent.pid}/ns/net`);
    const pin = pinFor("netns-only");
    await agent.call("createNetns", pin);
    expect(await sh(`nsenter --net=${pin} ip -o link show lo`)).toContain("state UNKNOWN");
    expect(await sh(`nsenter --net=${pin} ip -o addr show lo`)).toContain("127.0.0.1/8");
    expect(await sh(`nsenter --net=${pin} ip -o link show | wc -l`)).toBe("1\n");
    await expect(agent.call("createNetns", pin)).rejects.toThrow(/already exists/);
    expect(fs.readlinkSync(`/proc/${agent.pid}/ns/net`)).toBe(agentNs);
    expect(await sh("readlink /proc/self/ns/net")).toBe(own);
    await agent.call("removeNetns", pin);
    await agent.call("removeNetns", pin);
    expect(await snapshot()).toEqual(baseline);
  });

  test("two containers on the bridge: ping and HTTP between them; the host reaches one on a published 127.0.0.1 port", async () => {
    const a = await container("bridge", [{ hostPort: 18080, containerPort: 80, protocol: "tcp" }]);
    const b = await container();
    const ipA = a.att.ips[0]!.ip;
    expect(ipA).toMatch(/^10\.14\.0\.\d+$/);
    expect(b.att.ips[0]!.ip).toMatch(/^10\.14\.0\.\d+$/);
    expect(a.att.ips[0]!.gateway).toBe("10.14.0.1");
    const httpd = await agent.spawn("nsenter", `--net=${a.pin}`, "busybox", "httpd", "-f", "-p", "80", "-h", www);
    try {
      await waitListening(a.pin, 80);
      expect((await agent.run("nsenter", `--net=${b.pin}`, "busybox", "ping", "-c", "1", "-W", "2", ipA)).code).toBe(0);
      expect(await sh(`nsenter --net=${b.pin} timeout 5 busybox wget -q -O- http://${ipA}/`)).toBe("hello from the container\n");
      expect(await sh("timeout 5 busybox wget -q -O- http://127.0.0.1:18080/")).toBe("hello from the container\n");
      expect(await sh(`timeout 5 busybox wget -q -O- http://${ipA}/`)).toBe("hello from the container\n");
      // The container itself sees its generated interface and the default route via the gateway.
      expect(await sh(`nsenter --net=${a.pin} ip -o -4 addr show eth0`)).toContain(`${ipA}/24`);
      expect(await sh(`nsenter --net=${a.pin} ip route show default`)).toContain("via 10.14.0.1 dev eth0");
    } finally {
      await agent.kill(httpd);
    }
    const during = await snapshot();
    expect(during.rules.some((r) => r.includes(a.id))).toBe(true);
    expect(during.links.filter((l) => l.startsWith("veth"))).toHaveLength(2);
    expect(during.leases).toHaveLength(2);
    await agent.call("detach", a.id);
    await agent.call("detach", b.id);
    expect(await snapshot()).toEqual(baseline);
  });

  test("a named network: its own bridge and subnet; refusals for overlap and removal in use; removal takes the bridge", async () => {
    const info = await agent.call<{ bridge: string; subnet: string }>("createNetwork", "front", { subnet: "10.15.1.0/24" });
    expect(info.subnet).toBe("10.15.1.0/24");
    const c = await container("front");
    expect(c.att.ips[0]!.ip).toMatch(/^10\.15\.1\.\d+$/);
    const during = await snapshot();
    expect(during.links).toContain(info.bridge);
    expect(during.rules.filter((r) => r.includes('"bunker network front"'))).toHaveLength(3);
    expect(during.rules).toContain(`-A POSTROUTING -s 10.15.1.0/24 ! -o ${info.bridge} -m comment --comment "bunker network front" -j MASQUERADE`);
    await expect(agent.call("createNetwork", "clash", { subnet: "10.15.0.0/16" })).rejects.toThrow('subnet 10.15.0.0/16 overlaps network "front" (10.15.1.0/24)');
    fs.renameSync(join(root, "networks", "front.conflist"), join(tmp, "front.conflist"));
    await expect(agent.call("createNetwork", "clash", { subnet: "10.15.1.128/25" })).rejects.toThrow(`subnet 10.15.1.128/25 overlaps the host route 10.15.1.0/24 on ${info.bridge}; pick another --subnet`);
    fs.renameSync(join(tmp, "front.conflist"), join(root, "networks", "front.conflist"));
    await expect(agent.call("removeNetwork", "front")).rejects.toThrow(`network "front" is in use by ${c.id}`);
    await agent.call("detach", c.id);
    expect((await snapshot()).rules.filter((r) => r.includes('"bunker network front"'))).toHaveLength(3); // until network rm
    await agent.call("removeNetwork", "front");
    expect(await snapshot()).toEqual(baseline);
  });

  test("a plugin failing mid-chain (tuning, after bridge and portmap made their veth, lease and rules) rolls all of it back", async () => {
    const list = bridgeConflist("broken", "bkbroken", "10.15.9.0/24", "10.15.9.1", join(root, "networks", "ipam"));
    list.plugins.push({ type: "tuning", sysctl: { "net.ipv4.conf.eth0.no_such_sysctl": "1" } });
    fs.writeFileSync(join(root, "networks", "broken.conflist"), JSON.stringify(list));
    const id = `it-${process.pid}-broken`;
    await agent.call("createNetns", pinFor(id));
    const err = await agent.call("attach", { containerId: id, netns: pinFor(id), network: "broken", portMappings: [{ hostPort: 18081, containerPort: 80, protocol: "tcp" }] }).catch((e: Error) => e) as Error;
    expect(err.message).toStartWith('CNI plugin tuning (ADD on network "broken") failed: ');
    expect(err.message).not.toContain("\n");
    expect(await agent.call("attachments", id)).toEqual([]);
    const after = await snapshot();
    expect(after.leases).toEqual([]);
    expect(after.links.filter((l) => l.startsWith("veth"))).toEqual([]);
    expect(after.rules.filter((r) => r.includes(id))).toEqual([]);
    expect(after.ports).toEqual([]);
    await agent.call("detach", id, { netns: pinFor(id) });
    await agent.call("removeNetwork", "broken");
    expect(await snapshot()).toEqual(baseline);
  });

  test("host ports: one already bound on the host is refused; two containers racing for one port: exactly one wins", async () => {
    const nc = await agent.spawn("busybox", "nc", "-l", "-p", "18090");
    try {
      await waitListening(undefined, 18090);
      const id = `it-${process.pid}-bound`;
      await agent.call("createNetns", pinFor(id));
      await expect(agent.call("attach", { containerId: id, netns: pinFor(id), network: "bridge", portMappings: [{ hostPort: 18090, containerPort: 80, protocol: "tcp" }] }))
        .rejects.toThrow("host port 18090/tcp is already in use on this host");
      await agent.call("detach", id, { netns: pinFor(id) });
    } finally {
      await agent.kill(nc);
    }
    const ids = [`it-${process.pid}-race1`, `it-${process.pid}-race2`];
    for (const id of ids) await agent.call("createNetns", pinFor(id));
    const results = await Promise.allSettled(ids.map((id) => agent.call("attach", { containerId: id, netns: pinFor(id), network: "bridge", portMappings: [{ hostPort: 18091, containerPort: 80, protocol: "tcp" }] })));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const lost = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    expect(lost.reason.message).toMatch(/^host port 18091\/tcp is already published by container it-\d+-race[12]$/);
    for (const id of ids) await agent.call("detach", id, { netns: pinFor(id) });
    expect(await snapshot()).toEqual(baseline);
  });

  test("a missing plugin fails the attach before anything is made", async () => {
    const partial = join(tmp, "partial-cni");
    fs.mkdirSync(partial, { recursive: true });
    for (const p of ["bridge", "host-local", "loopback"]) fs.symlinkSync(`/usr/lib/cni/${p}`, join(partial, p));
    const other = await NetnsAgent.start();
    try {
      await other.call("init", join(tmp, "root-partial"), { cniPath: [partial] });
      const pin = join(tmp, "state-partial", "p1");
      await other.call("createNetns", pin);
      const publish = [{ hostPort: 18085, containerPort: 80, protocol: "tcp" }];
      await expect(other.call("attach", { containerId: "p1", netns: pin, network: "bridge", portMappings: publish })).rejects.toThrow(`CNI plugin "portmap" not found in ${partial} (is containernetworking-plugins installed?)`);
      expect((await other.run("ip", "-o", "link", "show")).stdout).not.toMatch(/veth|bunker0/);
      expect((await other.run("iptables-save")).stdout).not.toContain("bunker network");
      expect(fs.readdirSync(join(tmp, "root-partial", "networks")).sort()).toEqual(["bridge.conflist"]);
      // Without a published port portmap does not run, so the same plugins suffice.
      const att = await other.call<Attachment>("attach", { containerId: "p1", netns: pin, network: "bridge" });
      expect(att.ips[0]!.ip).toMatch(/^10\.14\.0\.\d+$/);
      await other.call("detach", "p1");
      expect(fs.readdirSync(join(tmp, "root-partial", "networks", "attachments"))).toEqual([]);
      expect(fs.readdirSync(join(tmp, "state-partial"))).toEqual([]);
    } finally {
      await other.stop();
    }
  });

  test("with FORWARD policy DROP: a container reaches an outside netns masqueraded (it has no route back), and the outside reaches a published port", async () => {
    const outside = pinFor("outside");
    await agent.call("createNetns", outside);
    const setup = await agent.run("sh", "-c", [
      "ip link add vout0 type veth peer name vout1",
      `ip link set vout1 netns ${outside}`,
      "ip addr add 10.16.0.1/24 dev vout0",
      "ip link set vout0 up",
      `nsenter --net=${outside} sh -c 'ip addr add 10.16.0.2/24 dev vout1 && ip link set vout1 up'`,
      "iptables -P FORWARD DROP",
    ].join(" && "));
    expect(setup.stderr).toBe("");
    const c = await container("bridge", [{ hostPort: 18096, containerPort: 80, protocol: "tcp" }]);
    const outsideHttpd = await agent.spawn("nsenter", `--net=${outside}`, "busybox", "httpd", "-f", "-p", "80", "-h", www);
    const containerHttpd = await agent.spawn("nsenter", `--net=${c.pin}`, "busybox", "httpd", "-f", "-p", "80", "-h", www);
    try {
      await waitListening(outside, 80);
      await waitListening(c.pin, 80);
      expect(await sh(`nsenter --net=${outside} ip route`)).not.toContain("10.14.0.");
      expect(await sh(`nsenter --net=${c.pin} timeout 5 busybox wget -q -O- http://10.16.0.2/`)).toBe("hello from the container\n");
      const counters = await sh("iptables -t nat -L POSTROUTING -v -n -x");
      const masq = counters.split("\n").find((l) => l.includes("MASQUERADE") && l.includes("10.14.0.0/24"))!;
      expect(Number(masq.trim().split(/\s+/)[0])).toBeGreaterThan(0);
      // DNATed by portmap, forwarded through the bridge: the network's "-o bunker0 ... DNAT" accept lets it past the DROP policy.
      expect(await sh(`nsenter --net=${outside} timeout 5 busybox wget -q -O- http://10.16.0.1:18096/`)).toBe("hello from the container\n");
    } finally {
      await agent.kill(outsideHttpd);
      await agent.kill(containerHttpd);
      await agent.run("iptables", "-P", "FORWARD", "ACCEPT");
    }
    await agent.call("detach", c.id);
    await agent.run("ip", "link", "delete", "vout0");
    await agent.call("removeNetns", outside);
    expect(await snapshot()).toEqual(baseline);
  });

  test("detach while something else still holds the netns: the veth is deleted by name, nothing is left", async () => {
    const c = await container("bridge", [{ hostPort: 18095, containerPort: 80, protocol: "tcp" }]);
    const holder = await agent.spawn("nsenter", `--net=${c.pin}`, "sleep", "1000");
    try {
      const inode = (await sh(`stat -c %i ${c.pin}`)).trim();
      for (let i = 0; i < 200 && (await sh(`readlink /proc/${holder}/ns/net`)).trim() !== `net:[${inode}]`; i++) await Bun.sleep(10);
      expect((await sh(`readlink /proc/${holder}/ns/net`)).trim()).toBe(`net:[${inode}]`);
      await agent.call("detach", c.id);
      expect(await snapshot()).toEqual(baseline);
      expect(await sh(`nsenter --net=/proc/${holder}/ns/net ip -o link show`)).not.toContain("eth0");
    } finally {
      await agent.kill(holder);
    }
  });

  test("20 attach/detach cycles with a published port leave nothing", async () => {
    for (let i = 0; i < 20; i++) {
      const c = await container("bridge", [{ hostPort: 18100, containerPort: 80, protocol: "tcp" }]);
      expect(c.att.ips[0]!.ip).toMatch(/^10\.14\.0\.\d+$/);
      await agent.call("detach", c.id);
    }
    expect(await snapshot()).toEqual(baseline);
  });
});
