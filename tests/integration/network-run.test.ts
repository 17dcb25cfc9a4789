// `bunker run --net …` as a user drives it, with real runc, the real CNI plugins and a busybox image,
// all inside a private network and mount namespace (tests/support/netns-agent.ts): its bridge,
// veths, iptables rules and netns pins die with it, and only loopback and the test's own subnet
// (bunker's default 10.14.0.0/24, which exists only in that namespace) are ever addressed.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { NetnsAgent } from "../support/netns-agent.ts";
import { NetworkBunker } from "../support/network-bunker.ts";
import { describeWith } from "../support/require.ts";

const T = 120_000;

describeWith(["root", "bin:runc", "bin:unshare", "bin:iptables", "bin:ip"], "bunker run --net (in a private network namespace)", () => {
  let net: NetworkBunker;
  let agent: NetnsAgent;
  let dir: string;
  let bunker: string[];

  const run = async (...args: string[]) => await net.run(...args);
  const ok = async (...args: string[]) => await net.ok(...args);
  const sh = async (cmd: string) => (await agent.run("sh", "-c", cmd)).stdout;
  /** What must be gone once every container is: links, CNI's per-container rules, leases, pins, records. */
  const leftovers = async () => ({
    veths: (await sh("ip -o link show type veth | wc -l")).trim(),
    // portmap's per-container chains (CNI-DN-<hash>); the per-network rules stay until network rm
    containerRules: (await sh("iptables-save -t nat | grep -c -- '^:CNI-DN-' || true")).trim(),
    dnat: (await sh("iptables-save -t nat | grep -c -- '-j DNAT' || true")).trim(),
    leases: (await sh(`ls ${dir}/root/networks/ipam/*/ 2>/dev/null | grep -c '^10\\.' || true`)).trim(),
    pins: (await sh(`ls ${dir}/state/networks/netns 2>/dev/null | wc -l`)).trim(),
    attachments: (await sh(`ls ${dir}/root/networks/attachments 2>/dev/null | wc -l`)).trim(),
  });
  const nothingLeft = { veths: "0", containerRules: "0", dnat: "0", leases: "0", pins: "0", attachments: "0" };

  beforeAll(async () => {
    net = await NetworkBunker.start("/tmp/bunker-netrun-");
    ({ agent, dir, bunker } = net);
  }, T);

  afterAll(async () => {
    await net?.stop(["web", "peer", "held"]);
  }, T);

  test("bridge: an address on the default network, generated /etc files, and container to container over HTTP", async () => {
    const own = await ok("run", "--rm", "--net", "bridge", "--name", "first", "--add-host", "db:10.14.0.250", "--dns", "10.14.0.53", "--dns-search", "lan",
      "busybox", "sh", "-c", "ip -o -4 addr show eth0; cat /etc/hosts /etc/resolv.conf; hostname");
    expect(own).toMatch(/eth0\s+inet 10\.14\.0\.\d+\/24/);
    expect(own).toContain("10.14.0.250\tdb");
    expect(own).toContain("nameserver 10.14.0.53");
    expect(own).toContain("search lan");
    expect(own.trim().split("\n").at(-1)).toBe("first");
    await ok("run", "-d", "--net", "bridge", "--name", "web", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc");
    const ps = await ok("ps", "-a");
    expect(ps).toMatch(/^web\s+\d+\s+RUNNING/m);
    const ip = (await ok("run", "--rm", "--net", "container:web", "busybox", "sh", "-c", "ip -o -4 addr show eth0")).match(/inet (10\.14\.0\.\d+)/)?.[1];
    expect(ip).toBeDefined();
    // another container reaches web's server by its address
    const page = await ok("run", "--rm", "--net", "bridge", "busybox", "sh", "-c", `for i in 1 2 3 4 5 6 7 8 9 10; do timeout 5 wget -q -O - http://${ip}/hostname && exit 0; sleep 0.2; done; exit 1`);
    expect(page.trim()).toBe("web");
    await ok("rm", "-f", "web");
    expect(await leftovers()).toEqual(nothingLeft);
  }, T);

  test("a user's -v over /etc/hosts wins over the generated one (docker's rule); the other files stay generated", async () => {
    writeFileSync(join(dir, "my-hosts"), "10.14.0.99\tmine\n");
    const out = await ok("run", "--rm", "--net", "bridge", "-v", `${join(dir, "my-hosts")}:/etc/hosts:ro`, "--dns", "10.14.0.53", "busybox", "cat", "/etc/hosts", "/etc/resolv.conf");
    expect(out).toBe("10.14.0.99\tmine\nnameserver 10.14.0.53\n");
    expect(await leftovers()).toEqual(nothingLeft);
  }, T);

  test("-p: a published port answers on 127.0.0.1; a port already taken is a clear error that leaves nothing", async () => {
    await ok("run", "-d", "--net", "bridge", "--name", "web", "-p", "18080:80", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc");
    expect(await ok("ps", "-a")).toMatch(/^web .*18080->80\/tcp/m);
    const [doc] = JSON.parse(await ok("inspect", "web")) as { NetworkSettings: { Network: string; IPAddresses: string[]; Ports: string[] } }[];
    expect(doc!.NetworkSettings.Network).toBe("bridge");
    expect(doc!.NetworkSettings.IPAddresses[0]).toMatch(/^10\.14\.0\.\d+$/);
    expect(doc!.NetworkSettings.Ports).toEqual(["18080->80/tcp"]);
    expect((await leftovers()).containerRules).toBe("1"); // the check sees portmap's chain while it exists
    const answer = await sh("for i in 1 2 3 4 5 6 7 8 9 10; do printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | timeout 3 busybox nc 127.0.0.1 18080 && exit 0; sleep 0.2; done");
    expect(answer).toContain("200 OK");
    expect(answer.trim().split("\n").at(-1)).toBe("web");
    const clash = await run("run", "-d", "--net", "bridge", "--name", "held", "-p", "18080:80", "busybox", "sleep", "100");
    expect(clash.code).not.toBe(0);
    expect(clash.stderr.trim().split("\n")).toHaveLength(1);
    expect(clash.stderr).toContain("18080");
    expect(await ok("ps", "-a", "-q")).not.toContain("held");
    await ok("rm", "-f", "web");
    expect(await leftovers()).toEqual(nothingLeft);
  }, T);

  test("host sees the namespace's own links; none has only lo; container: shares the other's address", async () => {
    const hostLinks = await ok("run", "--rm", "--net", "host", "busybox", "ip", "-o", "link");
    expect(hostLinks).toContain("bunker0");
    const none = await ok("run", "--rm", "--net", "none", "busybox", "ip", "-o", "link");
    expect(none.trim().split("\n").map((l) => l.split(":")[1]!.trim())).toEqual(["lo"]);
    await ok("run", "-d", "--net", "bridge", "--name", "peer", "busybox", "sleep", "100");
    const a = await ok("exec", "peer", "ip", "-o", "-4", "addr", "show", "eth0");
    const b = await ok("run", "--rm", "--net", "container:peer", "busybox", "ip", "-o", "-4", "addr", "show", "eth0");
    expect(b.match(/inet \S+/)?.[0]).toBe(a.match(/inet \S+/)?.[0]!);
    await ok("rm", "-f", "peer");
    expect(await leftovers()).toEqual(nothingLeft);
  }, T);

  test("named networks: create, run on it, in use refused, rm; an unknown network is a one-line error", async () => {
    await ok("network", "create", "--subnet", "10.15.7.0/24", "lab");
    expect(await ok("network", "ls")).toMatch(/^lab\s+\S+\s+10\.15\.7\.0\/24/m);
    await ok("run", "-d", "--net", "lab", "--name", "peer", "busybox", "sleep", "100");
    expect(await ok("exec", "peer", "ip", "-o", "-4", "addr", "show", "eth0")).toContain("10.15.7.");
    const busy = await run("network", "rm", "lab");
    expect(busy.code).toBe(1);
    await ok("rm", "-f", "peer");
    expect(Number((await sh("iptables-save | grep -c 'bunker network lab' || true")).trim())).toBeGreaterThan(0);
    await ok("network", "rm", "lab");
    // its bridge and its masquerade and forward rules went with it
    expect((await sh("iptables-save | grep -c 'bunker network lab' || true")).trim()).toBe("0");
    const unknown = await run("run", "--rm", "--net", "nosuchnet", "busybox", "true");
    expect(unknown.code).toBe(125);
    expect(unknown.stderr.trim().split("\n")).toHaveLength(1);
    expect(unknown.stderr).toContain("nosuchnet");
    expect(await leftovers()).toEqual(nothingLeft);
  }, T);

  test("a CLI SIGKILLed between the network's ADD and the container's start leaves nothing once rm finishes it (foreground and shim paths)", async () => {
    for (const [id, args] of [["killfg", ["--rm"]], ["killd", ["-d"]]] as const) {
      const killed = await agent.run("env", "BUNKER_TEST_KILL_AT=create:network", ...bunker, "run", ...args, "--net", "bridge", "-p", "18081:80", "--name", id, "busybox", "sleep", "100");
      expect(killed.code).toBe(137);
      expect((await leftovers()).attachments).toBe("1"); // the ADD happened
      await ok("ps", "-a");
      await ok("rm", "-f", id);
      expect(await leftovers()).toEqual(nothingLeft);
      expect(await ok("ps", "-a", "-q")).not.toContain(id);
    }
  }, T);

  test("a reboot (every process gone, --state emptied): the next ps lists the container exited and DEL with the kept result frees the lease and the port; rm removes the rest", async () => {
    await ok("run", "-d", "--net", "bridge", "-p", "18082:80", "--name", "rb", "busybox", "sleep", "1000");
    expect((await leftovers()).leases).toBe("1");
    // what a reboot does: the container and its shim die, /run (our --state) comes back empty
    const pid = Number((await ok("ps", "-a")).match(/^rb\s+(\d+)/m)![1]);
    const shims = (await sh(`grep -l -a -- '${dir}/bunker.sock' /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3`)).trim().split("\n").filter(Boolean).map(Number);
    expect(shims.length).toBeGreaterThan(0);
    for (const p of [pid, ...shims]) await agent.run("kill", "-9", String(p));
    await sh(`for m in $(grep -o ' ${dir}/state[^ ]*' /proc/self/mountinfo | sort -r); do umount -l $m; done; rm -rf ${dir}/state`);
    // docker's view after a reboot: the container is there, exited, until rm; its network is not
    expect(await ok("ps", "-a")).toMatch(/^rb\s+-\s+STOPPED\s+255\b/m);
    expect(await leftovers()).toEqual(nothingLeft);
    expect(await ok("ps", "-q")).not.toContain("rb");
    // the port is free again; the old container starts again on it
    await ok("run", "-d", "--net", "bridge", "-p", "18082:80", "--name", "rb2", "busybox", "sleep", "1000");
    await ok("rm", "-f", "rb2");
    await ok("start", "rb");
    expect(await ok("ps")).toMatch(/^rb\s+\d+\s+RUNNING\b.*18082->80\/tcp/m);
    await ok("rm", "-f", "rb");
    expect(await leftovers()).toEqual(nothingLeft);
    expect(await ok("ps", "-a", "-q")).not.toContain("rb");
  }, T);

  test("20 containers started and removed leave no lease, link, rule, pin or record", async () => {
    for (let i = 0; i < 20; i++) await ok("run", "-d", "--net", "bridge", "--name", `n${i}`, "busybox", "sleep", "100");
    // the checks below see what they look for: 20 of each while the containers run
    expect(await leftovers()).toMatchObject({ veths: "20", leases: "20", pins: "20", attachments: "20" });
    await ok("rm", "-f", ...Array.from({ length: 20 }, (_, i) => `n${i}`));
    expect(await leftovers()).toEqual(nothingLeft);
  }, T);
});
