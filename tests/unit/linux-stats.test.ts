// cgroup resolution and metrics from fixture cgroup directories (fake files in a temp dir).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { fromBinary } from "@bufbuild/protobuf";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MetricsSchema as V1MetricsSchema } from "../../src/gen/cgroups/v1/metrics_pb.ts";
import { MetricsSchema as V2MetricsSchema } from "../../src/gen/cgroups/v2/metrics_pb.ts";
import { NotFoundError, InvalidArgumentError } from "../../src/errdefs.ts";
import { cgroupFromPath, cgroupOfPid, cgroupsPathOf, expandSlice, parseCgroupMounts, parseProcCgroup, resolveCgroup } from "../../src/linux/cgroup.ts";
import { readStats, statsAny } from "../../src/linux/stats.ts";
import { parseBlkioFile, parsePartitions } from "../../src/linux/stats-v1.ts";
import { parseIoStat } from "../../src/linux/stats-v2.ts";

// This machine's layout: separate cpu and cpuacct hierarchies, a named systemd one, a v2 "unified".
const HYBRID_MOUNTINFO = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;
const HYBRID_PROC = `9:name=systemd:/
8:pids:/default/c1
7:blkio:/default/c1
4:memory:/default/c1
2:cpuacct:/default/c1
1:cpu:/default/c1
0::/
`;

describe("cgroup resolution", () => {
  test("parses /proc/<pid>/cgroup and the cgroup mounts of mountinfo", () => {
    expect(parseProcCgroup("4:memory:/a\n0::/b\n")).toEqual([
      { hierarchy: 4, controllers: ["memory"], path: "/a" },
      { hierarchy: 0, controllers: [], path: "/b" },
    ]);
    const mounts = parseCgroupMounts(HYBRID_MOUNTINFO);
    expect(mounts.map((m) => [m.mountPoint, m.version, m.controllers.join(",")])).toEqual([
      ["/sys/fs/cgroup/cpu", 1, "cpu"],
      ["/sys/fs/cgroup/cpuacct", 1, "cpuacct"],
      ["/sys/fs/cgroup/memory", 1, "memory"],
      ["/sys/fs/cgroup/blkio", 1, "blkio"],
      ["/sys/fs/cgroup/pids", 1, "pids"],
      ["/sys/fs/cgroup/systemd", 1, "name=systemd"],
      ["/sys/fs/cgroup/unified", 2, ""],
    ]);
    expect(() => parseProcCgroup("garbage")).toThrow(InvalidArgumentError);
  });

  test("a hybrid host resolves to v1 with one directory per controller", () => {
    expect(resolveCgroup(HYBRID_PROC, HYBRID_MOUNTINFO)).toEqual({
      version: 1,
      path: "/default/c1",
      controllers: {
        pids: "/sys/fs/cgroup/pids/default/c1",
        blkio: "/sys/fs/cgroup/blkio/default/c1",
        memory: "/sys/fs/cgroup/memory/default/c1",
        cpuacct: "/sys/fs/cgroup/cpuacct/default/c1",
        cpu: "/sys/fs/cgroup/cpu/default/c1",
      },
    });
  });

  test("co-mounted controllers share a directory; a nested mount root is stripped", () => {
    const mountinfo = `1 0 0:1 /docker/x /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n2 0 0:2 /docker/x /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n`;
    const cg = resolveCgroup("3:cpu,cpuacct:/docker/x/c\n4:memory:/docker/x/c\n", mountinfo);
    expect(cg).toEqual({
      version: 1,
      path: "/docker/x/c",
      controllers: { cpu: "/sys/fs/cgroup/cpu,cpuacct/c", cpuacct: "/sys/fs/cgroup/cpu,cpuacct/c", memory: "/sys/fs/cgroup/memory/c" },
    });
  });

  test("a unified host resolves to v2; a space in a mount point is unescaped", () => {
    const mountinfo = `30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n31 23 0:27 / /tmp/a\\040b rw - cgroup2 cgroup2 rw\n`;
    expect(resolveCgroup("0::/system.slice/x.scope\n", mountinfo)).toEqual({ version: 2, path: "/system.slice/x.scope", dir: "/sys/fs/cgroup/system.slice/x.scope" });
    expect(parseCgroupMounts(mountinfo)[1]!.mountPoint).toBe("/tmp/a b");
    expect(() => resolveCgroup("0::/x\n", "")).toThrow(NotFoundError);
  });

  test("runc's cgroupsPath forms: absolute, relative to our cgroup, empty, systemd slice:prefix:name", () => {
    expect(expandSlice("a-b-c.slice")).toBe("/a.slice/a-b.slice/a-b-c.slice");
    expect(expandSlice("-.slice")).toBe("/");
    expect(() => expandSlice("a--b.slice")).toThrow(InvalidArgumentError);
    expect(cgroupsPathOf("system.slice:cri-containerd:abc", "abc")).toBe("/system.slice/cri-containerd-abc.scope");
    expect(cgroupsPathOf("kubepods-besteffort.slice:cri:x", "x")).toBe("/kubepods.slice/kubepods-besteffort.slice/cri-x.scope");
    expect(cgroupsPathOf("", "c1", { systemd: true })).toBe("/system.slice/runc-c1.scope");
    expect(cgroupsPathOf("/default/c1", "c1")).toBe("/default/c1");
    expect(cgroupsPathOf("", "c1")).toBe("c1");
  });

  let proc: string;
  beforeAll(() => {
    proc = mkdtempSync("/tmp/bunker-cg-proc-");
    mkdirSync(join(proc, "self"));
    mkdirSync(join(proc, "42"));
    writeFileSync(join(proc, "self", "mountinfo"), HYBRID_MOUNTINFO);
    writeFileSync(join(proc, "self", "cgroup"), "4:memory:/process_api/me\n1:cpu:/\n0::/\n");
    writeFileSync(join(proc, "42", "cgroup"), HYBRID_PROC);
  });
  afterAll(() => rmSync(proc, { recursive: true, force: true }));

  test("cgroupOfPid reads /proc; a gone process is NotFound", () => {
    expect(cgroupOfPid(42, { procRoot: proc }).version).toBe(1);
    expect(() => cgroupOfPid(43, { procRoot: proc })).toThrow(NotFoundError);
    expect(() => cgroupOfPid(0, { procRoot: proc })).toThrow(InvalidArgumentError);
  });

  test("cgroupFromPath: absolute from the hierarchy root, relative below our own cgroup", () => {
    const abs = cgroupFromPath("/default/c1", "c1", { procRoot: proc });
    expect(abs.version === 1 && abs.controllers.memory).toBe("/sys/fs/cgroup/memory/default/c1");
    const rel = cgroupFromPath("", "c1", { procRoot: proc });
    expect(rel.version === 1 && rel.controllers).toEqual({ memory: "/sys/fs/cgroup/memory/process_api/me/c1", cpu: "/sys/fs/cgroup/cpu/c1" });
  });
});

function writeTree(root: string, files: Record<string, string>): void {
  for (const [rel, text] of Object.entries(files)) {
    const path = join(root, rel);
    mkdirSync(join(path, ".."), { recursive: true });
    writeFileSync(path, text);
  }
}

describe("stats from fixture cgroup directories", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync("/tmp/bunker-cg-stats-");
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("v1: pids, cpuacct + cpu throttling, memory entries and stat, oom_control, blkio, hugetlb", () => {
    const v1 = join(dir, "v1");
    writeTree(v1, {
      "memory/c/cgroup.procs": "1\n",
      "memory/c/memory.stat": "cache 4096\nrss 1052672\nrss_huge 0\nmapped_file 8192\npgfault 300\nhierarchical_memory_limit 16777216\nhierarchical_memsw_limit 16777216\ntotal_cache 4096\ntotal_rss 1052672\ntotal_unevictable 7\nworkingset_refault_file 3\n",
      "memory/c/memory.usage_in_bytes": "1200128\n",
      "memory/c/memory.max_usage_in_bytes": "2000000\n",
      "memory/c/memory.failcnt": "5\n",
      "memory/c/memory.limit_in_bytes": "16777216\n",
      "memory/c/memory.memsw.usage_in_bytes": "1200128\n",
      "memory/c/memory.memsw.max_usage_in_bytes": "2000000\n",
      "memory/c/memory.memsw.failcnt": "0\n",
      "memory/c/memory.memsw.limit_in_bytes": "16777216\n",
      // kmem files missing (newer kernels drop them): zeros, not an error
      "memory/c/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
      "cpuacct/c/cgroup.procs": "1\n",
      "cpuacct/c/cpuacct.stat": "user 250\nsystem 75\n",
      "cpuacct/c/cpuacct.usage": "3300000000\n",
      "cpuacct/c/cpuacct.usage_percpu": "1000000000 2300000000 \n",
      "cpu/c/cpu.stat": "nr_periods 10\nnr_throttled 4\nthrottled_time 123456\nnr_bursts 0\nburst_time 0\n",
      "pids/c/pids.current": "3\n",
      "pids/c/pids.max": "max\n",
      "blkio/c/cgroup.procs": "1\n",
      "blkio/c/blkio.throttle.io_service_bytes": "254:0 Read 8192\n254:0 Write 4096\n254:0 Total 12288\nTotal 12288\n",
      "blkio/c/blkio.throttle.io_serviced": "254:0 Read 2\n254:0 Write 1\n254:0 Total 3\nTotal 3\n",
      "hugetlb/c/hugetlb.2MB.usage_in_bytes": "2097152\n",
      "hugetlb/c/hugetlb.2MB.max_usage_in_bytes": "4194304\n",
      "hugetlb/c/hugetlb.2MB.failcnt": "1\n",
      "partitions": "major minor  #blocks  name\n\n 254        0  268435456 vda\n 254        1  1024 vda1\n",
    });
    const controllers = Object.fromEntries(["memory", "cpuacct", "cpu", "pids", "blkio", "hugetlb"].map((c) => [c, join(v1, c, "c")]));
    const s = readStats({ version: 1, path: "/c", controllers }, { partitions: join(v1, "partitions") });
    expect(s.version).toBe(1);
    if (s.version !== 1) return;
    const m = s.metrics;
    expect(m.pids).toMatchObject({ current: 3n, limit: 0n });
    expect(m.cpu?.usage).toMatchObject({ total: 3300000000n, user: 2500000000n, kernel: 750000000n, perCpu: [1000000000n, 2300000000n] });
    expect(m.cpu?.throttling).toMatchObject({ periods: 10n, throttledPeriods: 4n, throttledTime: 123456n });
    expect(m.memory?.usage).toMatchObject({ usage: 1200128n, max: 2000000n, failcnt: 5n, limit: 16777216n });
    expect(m.memory?.swap).toMatchObject({ usage: 1200128n, limit: 16777216n });
    expect(m.memory?.kernel).toMatchObject({ usage: 0n, limit: 0n });
    expect(m.memory).toMatchObject({ cache: 4096n, rss: 1052672n, mappedFile: 8192n, pgFault: 300n, hierarchicalSwapLimit: 16777216n, totalRss: 1052672n, totalUnevictable: 7n });
    expect(m.memoryOomControl).toMatchObject({ oomKill: 2n, underOom: 0n });
    expect(m.blkio?.ioServiceBytesRecursive.map((e) => [e.device, e.major, e.minor, e.op, e.value])).toEqual([
      ["/dev/vda", 254n, 0n, "Read", 8192n],
      ["/dev/vda", 254n, 0n, "Write", 4096n],
      ["/dev/vda", 254n, 0n, "Total", 12288n],
    ]);
    expect(m.blkio?.ioServicedRecursive.map((e) => e.value)).toEqual([2n, 1n, 3n]);
    expect(m.hugetlb.map((h) => [h.pagesize, h.usage, h.max, h.failcnt])).toEqual([["2MB", 2097152n, 4194304n, 1n]]);
    // the Any is what containerd's typeurl registers and ctr decodes
    expect(s.any.typeUrl).toBe("io.containerd.cgroups.v1.Metrics");
    expect(fromBinary(V1MetricsSchema, s.any.value).memory?.usage?.usage).toBe(1200128n);
  });

  test("v1: CFQ recursive files are preferred when the kernel has them", () => {
    const d = join(dir, "cfq");
    writeTree(d, {
      "cgroup.procs": "",
      "blkio.io_serviced_recursive": "8:0 Read 7\n8:0 Write 1\nTotal 8\n",
      "blkio.io_service_bytes_recursive": "8:0 Read 70\nTotal 70\n",
      "blkio.sectors_recursive": "8:0 9\n",
      "blkio.throttle.io_serviced": "8:0 Read 999\n",
    });
    const m = readStats({ version: 1, path: "/x", controllers: { blkio: d } }, { partitions: join(dir, "none") });
    if (m.version !== 1) throw new Error("v1 expected");
    expect(m.metrics.blkio?.ioServicedRecursive.map((e) => e.value)).toEqual([7n, 1n]);
    expect(m.metrics.blkio?.sectorsRecursive.map((e) => [e.op, e.value, e.device])).toEqual([["", 9n, ""]]);
    expect(m.metrics.memory).toBeUndefined();
  });

  test("v1: a removed cgroup is NotFound; a malformed file is InvalidArgument", () => {
    expect(() => readStats({ version: 1, path: "/gone", controllers: { memory: join(dir, "gone") } })).toThrow("cgroup does not exist");
    const bad = join(dir, "bad");
    writeTree(bad, { "cgroup.procs": "", "memory.stat": "cache 1\n", "memory.usage_in_bytes": "lots\n" });
    expect(() => readStats({ version: 1, path: "/bad", controllers: { memory: bad } })).toThrow(InvalidArgumentError);
    expect(() => parseBlkioFile("8:0\n", new Map())).toThrow(InvalidArgumentError);
    expect(parsePartitions("major minor #blocks name\n\n 8 0 1 sda\n 8 0 1 dup\n")).toEqual(new Map([["8:0", "/dev/sda"]]));
  });

  test("v2: pids, cpu.stat, memory current/max/swap/stat, memory.events, io.stat, hugetlb", () => {
    const v2 = join(dir, "v2");
    writeTree(v2, {
      "cgroup.procs": "1\n",
      "pids.current": "2\n",
      "pids.max": "max\n",
      "cpu.stat": "usage_usec 5000\nuser_usec 3000\nsystem_usec 2000\nnr_periods 1\nnr_throttled 0\nthrottled_usec 0\n",
      "memory.current": "3145728\n",
      "memory.max": "16777216\n",
      "memory.swap.current": "0\n",
      "memory.swap.max": "max\n",
      "memory.stat": "anon 1048576\nfile 2097152\nkernel_stack 16384\npgfault 99\nthp_fault_alloc 1\n",
      "memory.events": "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
      "io.stat": "254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n8:16 rbytes=1 wbytes=0 rios=1 wios=0\n",
      "hugetlb.2MB.current": "0\n",
      "hugetlb.2MB.max": "max\n",
      "hugetlb.2MB.events": "max 0\n",
    });
    const s = readStats({ version: 2, path: "/c", dir: v2 });
    if (s.version !== 2) throw new Error("v2 expected");
    const m = s.metrics;
    const max = 0xffffffffffffffffn;
    expect(m.pids).toMatchObject({ current: 2n, limit: max });
    expect(m.cpu).toMatchObject({ usageUsec: 5000n, userUsec: 3000n, systemUsec: 2000n, nrPeriods: 1n });
    expect(m.memory).toMatchObject({ usage: 3145728n, usageLimit: 16777216n, swapUsage: 0n, swapLimit: max, anon: 1048576n, file: 2097152n, kernelStack: 16384n, pgfault: 99n, thpFaultAlloc: 1n });
    expect(m.memoryEvents).toMatchObject({ max: 4n, oom: 1n, oomKill: 1n });
    expect(m.io?.usage.map((e) => [e.major, e.minor, e.rbytes, e.wbytes, e.rios, e.wios])).toEqual([
      [254n, 0n, 4096n, 8192n, 1n, 2n],
      [8n, 16n, 1n, 0n, 1n, 0n],
    ]);
    expect(m.hugetlb.map((h) => [h.pagesize, h.current, h.max])).toEqual([["2MB", 0n, max]]);
    const any = statsAny({ version: 2, path: "/c", dir: v2 });
    expect(any.typeUrl).toBe("io.containerd.cgroups.v2.Metrics");
    expect(fromBinary(V2MetricsSchema, any.value).memory?.usage).toBe(3145728n);
  });

  test("v2: io.stat lines without a device number are skipped", () => {
    expect(parseIoStat("garbage\n\n1:2 rbytes=x wbytes=3\n")).toEqual([expect.objectContaining({ major: 1n, minor: 2n, rbytes: 0n, wbytes: 3n })]);
  });
});
