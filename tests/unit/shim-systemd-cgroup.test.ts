// systemd cgroups under CRI: kubelet's systemd driver makes cgroupsPath "slice:prefix:name" and the
// handler says SystemdCgroup = true. bunker must pass runc --systemd-cgroup (create, update, delete,
// and the delete action after a dead shim, which reads the persisted options), and its own cgroup
// readers (stats, OOM) must find the directory runc's systemd driver makes. This host runs no
// systemd as pid 1, so runc cannot use that driver here: the path resolution is tested on fixtures.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InvalidArgumentError } from "../../src/errdefs.ts";
import { OptionsSchema as RuncOptionsSchema } from "../../src/gen/containerd/runc/v1/options_pb.ts";
import { OptionsSchema } from "../../src/gen/runtimeoptions/v1/api_pb.ts";
import { cgroupFromPath, cgroupOfPid } from "../../src/linux/cgroup.ts";
import { Runc } from "../../src/runc/runc.ts";
import { runcOptionsFromHandler } from "../../src/shims/bunker/handler-options.ts";
import { optionsFromAny } from "../../src/shims/bunker/options-any.ts";
import { readOptions, runcConfig, writeOptions } from "../../src/shims/bunker/options.ts";
import { packAny } from "../../src/ttrpc/any.ts";

const handlerAny = (body: string) => packAny(OptionsSchema, { configBody: new TextEncoder().encode(body) });

describe("a CRI handler's runc keys reach runc", () => {
  let bundle: string;
  beforeAll(() => {
    bundle = mkdtempSync(join(tmpdir(), "bunker-sd-"));
  });
  afterAll(() => rmSync(bundle, { recursive: true, force: true }));

  test("SystemdCgroup = true in the handler's table: runc gets --systemd-cgroup, before and after a shim restart", () => {
    const o = optionsFromAny(handlerAny("BinaryName = '/usr/local/bin/runc'\nRoot = '/run/k8s-runc'\nSystemdCgroup = true\ngroup = 'container'\n"));
    expect(o).toMatchObject({ binaryName: "/usr/local/bin/runc", root: "/run/k8s-runc", systemdCgroup: true });
    const runc = new Runc(runcConfig(o, bundle, "k8s.io"));
    expect(runc.argv("update", "c1")).toEqual(["/usr/local/bin/runc", "--root", "/run/k8s-runc/k8s.io", "--log", join(bundle, "log.json"), "--log-format", "json", "--systemd-cgroup", "update", "c1"]);
    // the delete action, run after the shim died, reads what Create persisted
    writeOptions(bundle, o);
    expect(new Runc(runcConfig(readOptions(bundle), bundle, "k8s.io")).globalArgs()).toContain("--systemd-cgroup");
  });

  test("the same from a config_path file and from runc's own options type", () => {
    writeFileSync(join(bundle, "bunker.toml"), "SystemdCgroup = true\n");
    expect(optionsFromAny(packAny(OptionsSchema, { configPath: join(bundle, "bunker.toml") })).systemdCgroup).toBe(true);
    expect(optionsFromAny(packAny(RuncOptionsSchema, { systemdCgroup: true })).systemdCgroup).toBe(true);
    // no table, or one without the key: cgroupfs, as before
    expect(optionsFromAny(handlerAny("group = 'g'\n")).systemdCgroup).toBe(false);
    expect(optionsFromAny(undefined).systemdCgroup).toBe(false);
  });

  test("a key of the wrong type is a clear InvalidArgument", () => {
    expect(() => runcOptionsFromHandler({ SystemdCgroup: "yes" }, "config_body")).toThrow("config_body: SystemdCgroup must be a boolean");
    expect(() => runcOptionsFromHandler({ IoUid: -1 }, "f")).toThrow(InvalidArgumentError);
    expect(() => optionsFromAny(handlerAny("BinaryName = true\n"))).toThrow("config_body: BinaryName must be a string");
  });
});

describe("bunker's cgroup readers find runc's systemd-driver directory", () => {
  const V2_MOUNTINFO = "35 25 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n";
  const V1_MOUNTINFO =
    "30 25 0:26 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,memory\n" +
    "31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct\n";
  // kubelet (systemd driver) + CRI: the pod's slice, CRI's prefix, the container id
  const CGROUPS_PATH = "kubepods-besteffort-pod0f3a.slice:cri-containerd:c1";
  const UNIT_PATH = "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0f3a.slice/cri-containerd-c1.scope";
  let proc: string;
  beforeAll(() => {
    proc = mkdtempSync(join(tmpdir(), "bunker-sd-proc-"));
    for (const d of ["v2/self", "v2/42", "v1/self", "v1/42"]) mkdirSync(join(proc, d), { recursive: true });
    writeFileSync(join(proc, "v2/self/mountinfo"), V2_MOUNTINFO);
    writeFileSync(join(proc, "v2/self/cgroup"), "0::/system.slice/containerd.service\n");
    writeFileSync(join(proc, "v2/42/cgroup"), `0::${UNIT_PATH}\n`);
    writeFileSync(join(proc, "v1/self/mountinfo"), V1_MOUNTINFO);
    writeFileSync(join(proc, "v1/self/cgroup"), "5:memory:/system.slice/containerd.service\n4:cpu,cpuacct:/system.slice/containerd.service\n");
    writeFileSync(join(proc, "v1/42/cgroup"), `5:memory:${UNIT_PATH}\n4:cpu,cpuacct:${UNIT_PATH}\n`);
  });
  afterAll(() => rmSync(proc, { recursive: true, force: true }));

  test("cgroup v2: slice:prefix:name resolves to <slice path>/<prefix>-<name>.scope, where the init really is", () => {
    const fromSpec = cgroupFromPath(CGROUPS_PATH, "c1", { procRoot: join(proc, "v2"), systemd: true });
    expect(fromSpec).toMatchObject({ version: 2, dir: `/sys/fs/cgroup${UNIT_PATH}` });
    // the shim's stats and OOM watch read the init's cgroup from /proc: the same directory
    expect(cgroupOfPid(42, { procRoot: join(proc, "v2") })).toEqual(fromSpec);
  });

  test("cgroup v1: the same path under every subsystem", () => {
    const fromSpec = cgroupFromPath(CGROUPS_PATH, "c1", { procRoot: join(proc, "v1") });
    expect(fromSpec.version === 1 && fromSpec.controllers).toEqual({
      memory: `/sys/fs/cgroup/memory${UNIT_PATH}`,
      cpu: `/sys/fs/cgroup/cpu,cpuacct${UNIT_PATH}`,
      cpuacct: `/sys/fs/cgroup/cpu,cpuacct${UNIT_PATH}`,
    });
    expect(cgroupOfPid(42, { procRoot: join(proc, "v1") })).toEqual(fromSpec);
  });
});
