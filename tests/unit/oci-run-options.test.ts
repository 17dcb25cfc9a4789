// The run flags written into the spec (src/oci/run-options.ts): the exact fields docker's daemon
// writes for the same flags, and the host lookups (src/oci/run-resolve.ts) with the host's facts given.
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync, existsSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { InvalidArgumentError, NotFoundError } from "../../src/errdefs.ts";
import { prepareSpec } from "../../src/executor/request.ts";
import { ALL_CAPABILITIES, applyRunOptions, mergeTmpfsOptions, tweakCapabilities } from "../../src/oci/run-options.ts";
import { boundingCapabilities, deviceAt, type HostFacts, resolveRunOptions } from "../../src/oci/run-resolve.ts";
import { DEFAULT_CAPABILITIES, generateSpec } from "../../src/oci/spec.ts";

const base = () => generateSpec({ namespace: "n", id: "c", args: ["/bin/sh", "-c", "true"] });
const facts: HostFacts = { cpus: 2, swapAccounting: true, capabilities: [...ALL_CAPABILITIES], devRoot: "/dev" };

test("no options leave the spec as generateSpec made it", () => {
  expect(applyRunOptions(base(), {})).toEqual(base());
});

test("binds and tmpfs mounts: docker's options, after the defaults, replacing one at the same place", () => {
  const spec = applyRunOptions(base(), {
    mounts: [
      { type: "bind", source: "/srv/data", target: "/data", readonly: true, propagation: "rprivate", createSource: true },
      { type: "bind", source: "/srv/logs", target: "/logs", readonly: false, propagation: "rslave", nonRecursive: true, createSource: false },
      { type: "tmpfs", target: "/dev/shm", options: ["size=1m", "exec"] },
    ],
  });
  expect(spec.mounts.map((m) => m.destination)).toEqual(["/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys", "/data", "/logs", "/dev/shm"]);
  expect(spec.mounts.slice(-3)).toEqual([
    { destination: "/data", type: "bind", source: "/srv/data", options: ["rbind", "ro", "rprivate"] },
    { destination: "/logs", type: "bind", source: "/srv/logs", options: ["bind", "rslave"] },
    { destination: "/dev/shm", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "rprivate", "size=1m", "exec"] },
  ]);
});

test("tmpfs options merge as moby's MergeTmpfsOptions: the last of a group or key wins, in its place", () => {
  expect(mergeTmpfsOptions(["noexec", "nosuid", "nodev", "rprivate", "size=1m", "exec", "size=2m", "defaults"])).toEqual(["nosuid", "nodev", "rprivate", "exec", "size=2m"]);
  expect(mergeTmpfsOptions(["rprivate", "rshared", "ro", "rw"])).toEqual(["rshared", "rw"]);
});

test("--read-only, --memory, --memory-swap, --cpus, --pids-limit", () => {
  const spec = applyRunOptions(base(), { readonlyRootfs: true, memory: 64 * 1024 * 1024, memorySwap: 128 * 1024 * 1024, nanoCpus: 1_500_000_000, pidsLimit: 20 });
  expect(spec.root).toEqual({ path: "rootfs", readonly: true });
  expect(spec.linux.resources).toEqual({
    devices: [{ allow: false, access: "rwm" }],
    memory: { limit: 67108864, swap: 134217728 },
    cpu: { quota: 150000, period: 100000 },
    pids: { limit: 20 },
  });
  expect(JSON.stringify(applyRunOptions(base(), { nanoCpus: 10_000_001 }).linux.resources.cpu)).toBe('{"quota":1000,"period":100000}');
});

test("capabilities follow moby's TweakCapabilities", () => {
  const all = ALL_CAPABILITIES;
  expect(tweakCapabilities(DEFAULT_CAPABILITIES, [], [], false, all)).toEqual([...DEFAULT_CAPABILITIES]);
  expect(tweakCapabilities(DEFAULT_CAPABILITIES, [], ["ALL"], false, all)).toEqual([]);
  expect(tweakCapabilities(DEFAULT_CAPABILITIES, ["CAP_CHOWN"], ["ALL"], false, all)).toEqual(["CAP_CHOWN"]);
  expect(tweakCapabilities(DEFAULT_CAPABILITIES, ["ALL"], ["CAP_CHOWN"], false, all)).toEqual(all.filter((c) => c !== "CAP_CHOWN"));
  expect(tweakCapabilities(["CAP_CHOWN", "CAP_KILL"], ["CAP_SYS_ADMIN", "CAP_KILL"], ["CAP_CHOWN"], false, all)).toEqual(["CAP_KILL", "CAP_SYS_ADMIN"]);
  expect(tweakCapabilities(DEFAULT_CAPABILITIES, [], ["ALL"], true, all)).toEqual([...all]);
  const spec = applyRunOptions(base(), { capDrop: ["ALL"], capAdd: ["CAP_NET_ADMIN"] });
  expect(spec.process.capabilities).toEqual({ bounding: ["CAP_NET_ADMIN"], effective: ["CAP_NET_ADMIN"], permitted: ["CAP_NET_ADMIN"] });
});

test("--privileged: all available caps, no masked or read-only paths, /sys writable, host devices, allow-all rule", () => {
  const nul = { path: "/dev/null", type: "c", major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0 };
  const spec = applyRunOptions(base(), { privileged: true, hostDevices: [nul], availableCapabilities: ["CAP_CHOWN", "CAP_SYS_ADMIN"] });
  expect(spec.process.capabilities.bounding).toEqual(["CAP_CHOWN", "CAP_SYS_ADMIN"]);
  expect(spec.linux.maskedPaths).toEqual([]);
  expect(spec.linux.readonlyPaths).toEqual([]);
  expect(spec.mounts.find((m) => m.destination === "/sys")).toEqual({ destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev"] });
  expect(spec.linux.devices).toEqual([nul]);
  expect(spec.linux.resources.devices).toEqual([{ allow: true, access: "rwm" }]);
});

test("--device: the node and its cgroup rule", () => {
  const spec = applyRunOptions(base(), { devices: [{ path: "/dev/mynull", type: "c", major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0, access: "rw" }] });
  expect(JSON.stringify(spec.linux.devices)).toBe('[{"path":"/dev/mynull","type":"c","major":1,"minor":3,"fileMode":438,"uid":0,"gid":0}]');
  expect(JSON.stringify(spec.linux.resources.devices)).toBe('[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"}]');
});

test("--init: docker-init bind-mounted read-only and put before the command", () => {
  const spec = applyRunOptions(base(), { initPath: "/var/lib/bunker/init/bunker-init-0123456789abcdef" });
  expect(spec.process.args).toEqual(["/sbin/docker-init", "--", "/bin/sh", "-c", "true"]);
  expect(spec.mounts.at(-1)).toEqual({ destination: "/sbin/docker-init", type: "bind", source: "/var/lib/bunker/init/bunker-init-0123456789abcdef", options: ["bind", "ro"] });
});

test("generateSpec with an absolute rootfs is what Executor.create takes", () => {
  const spec = generateSpec({ namespace: "n", id: "c", args: ["/bin/true"], rootfs: "/srv/rootfs" });
  expect(spec.root).toEqual({ path: "/srv/rootfs", readonly: false });
  const prepared = prepareSpec(spec);
  expect(prepared.rootfs).toBe("/srv/rootfs");
  expect(JSON.parse(new TextDecoder().decode(prepared.json)).root).toEqual({ path: "rootfs", readonly: false });
  expect(() => generateSpec({ namespace: "n", id: "c", args: ["/bin/true"], rootfs: "rel" })).toThrow(InvalidArgumentError);
});

test("bounding set as capability names", () => {
  expect(boundingCapabilities("Name:\tx\nCapBnd:\t0000000000000021\n")).toEqual(["CAP_CHOWN", "CAP_KILL"]);
  expect(boundingCapabilities("CapBnd:\t000001fffeffffff\n")).toEqual(ALL_CAPABILITIES.filter((c) => c !== "CAP_SYS_RESOURCE"));
  expect(boundingCapabilities("nothing")).toBeUndefined();
});

test("deviceAt reads a node's numbers and mode", () => {
  const st = statSync("/dev/null");
  expect(deviceAt("/dev/null", "/dev/x")).toEqual({ path: "/dev/x", type: "c", major: 1, minor: 3, fileMode: st.mode & 0o7777, uid: st.uid, gid: st.gid });
  expect(deviceAt("/etc/hostname", "/x")).toBeUndefined();
});

test("resolution: swap defaults to twice the memory, CPUs are bounded, devices looked up, binds checked, -v dirs made last", async () => {
  const dir = mkdtempSync(join(tmpdir(), "bunker-run-resolve-"));
  try {
    expect((await resolveRunOptions({ memory: 64 << 20 }, { root: dir, facts })).memorySwap).toBe(128 << 20);
    expect((await resolveRunOptions({ memory: 64 << 20 }, { root: dir, facts: { ...facts, swapAccounting: false } })).memorySwap).toBeUndefined();
    await expect(resolveRunOptions({ nanoCpus: 3e9 }, { root: dir, facts })).rejects.toThrow("range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available");
    const r = await resolveRunOptions({ devices: [{ host: "/dev/null", container: "/dev/mynull", access: "rw" }] }, { root: dir, facts });
    expect(r.devices?.map((d) => [d.path, d.type, d.major, d.minor, d.access])).toEqual([["/dev/mynull", "c", 1, 3, "rw"]]);
    await expect(resolveRunOptions({ devices: [{ host: "/dev/nope", container: "/dev/nope", access: "rwm" }] }, { root: dir, facts })).rejects.toThrow(NotFoundError);
    // a refused run makes nothing: the -v dir is not created when a --mount source is missing
    const made = join(dir, "made");
    const flags = {
      mounts: [
        { type: "bind" as const, source: made, target: "/a", readonly: false, propagation: "rprivate", createSource: true },
        { type: "bind" as const, source: join(dir, "missing"), target: "/b", readonly: false, propagation: "rprivate", createSource: false },
      ],
    };
    await expect(resolveRunOptions(flags, { root: dir, facts })).rejects.toThrow(`--mount: bind source path does not exist: ${join(dir, "missing")}`);
    expect(existsSync(made)).toBe(false);
    await resolveRunOptions({ mounts: [flags.mounts[0]!] }, { root: dir, facts });
    expect(statSync(made).isDirectory()).toBe(true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
