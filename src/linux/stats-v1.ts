// cgroup v1 files -> io.containerd.cgroups.v1.Metrics, field for field as containerd/cgroups'
// Stat(IgnoreNotExist) fills them: a controller that is not mounted, or a file this kernel does not
// have (memsw without swap accounting, kmem on new kernels), leaves its fields at zero.
//
//   readV1Metrics(cg: CgroupV1, opts?: { partitions?: string }): Metrics
//   parseFlatKeyed(text): Map<string, bigint>            "key value" lines (memory.stat, cpu.stat, ...)
//   parseBlkioFile(text, devices): BlkIOEntry[]          "maj:min Op value" lines
//   parsePartitions(text): Map<"maj:min", "/dev/name">   /proc/partitions
import { create } from "@bufbuild/protobuf";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import {
  type BlkIOEntry,
  BlkIOEntrySchema,
  type BlkIOStat,
  BlkIOStatSchema,
  type HugetlbStat,
  HugetlbStatSchema,
  type MemoryEntry,
  MemoryEntrySchema,
  MemoryOomControlSchema,
  type MemoryStat,
  MemoryStatSchema,
  type Metrics,
  MetricsSchema,
  PidsStatSchema,
} from "../gen/cgroups/v1/metrics_pb.ts";
import { InvalidArgumentError } from "../errdefs.ts";
import { parseFlatKeyed, readCgroupFile, readOptional } from "./cgroup-files.ts";

export { parseFlatKeyed, readCgroupFile };
import type { CgroupV1 } from "./cgroup.ts";

/** An unsigned 64-bit decimal; a cgroup file with anything else is a kernel we do not understand. */
export function parseU64(text: string, what: string): bigint {
  const s = text.trim();
  if (!/^\d+$/.test(s)) throw new InvalidArgumentError(`${what}: expected an unsigned integer, got ${JSON.stringify(s)}`);
  const v = BigInt(s);
  if (v > 0xffffffffffffffffn) throw new InvalidArgumentError(`${what}: ${s} overflows uint64`);
  return v;
}

function readU64(dir: string | undefined, name: string): bigint | undefined {
  const text = readCgroupFile(dir, name);
  return text === undefined ? undefined : parseU64(text, join(dir ?? "", name));
}

/** /proc/partitions: "major minor #blocks name" after two header lines -> "maj:min" -> /dev/name. */
export function parsePartitions(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n").slice(2)) {
    const [major, minor, , name] = line.trim().split(/\s+/);
    if (!major || !minor || !name) continue;
    const key = `${major}:${minor}`;
    if (!out.has(key)) out.set(key, `/dev/${name}`);
  }
  return out;
}

/** A blkio stats file: "maj:min Op value" (or "maj:min value"), with a closing "Total n" line. */
export function parseBlkioFile(text: string, devices: ReadonlyMap<string, string>, what = "blkio"): BlkIOEntry[] {
  const out: BlkIOEntry[] = [];
  for (const line of text.split("\n")) {
    const fields = line.trim().split(/[\s:]+/).filter(Boolean);
    if (fields.length === 0) continue;
    if (fields.length === 2 && fields[0] === "Total") continue;
    if (fields.length < 3) throw new InvalidArgumentError(`invalid line in ${what}: ${JSON.stringify(line)}`);
    const [major, minor] = fields;
    const op = fields.length === 4 ? fields[2]! : "";
    const value = fields[fields.length === 4 ? 3 : 2]!;
    out.push(
      create(BlkIOEntrySchema, {
        major: parseU64(major!, what),
        minor: parseU64(minor!, what),
        op,
        value: parseU64(value, what),
        device: devices.get(`${major}:${minor}`) ?? "",
      }),
    );
  }
  return out;
}

// memory.stat key -> MemoryStat field, in containerd's order
const MEMORY_STAT_FIELDS: [string, keyof MemoryStat][] = [
  ["cache", "cache"],
  ["rss", "rss"],
  ["rss_huge", "rssHuge"],
  ["mapped_file", "mappedFile"],
  ["dirty", "dirty"],
  ["writeback", "writeback"],
  ["pgpgin", "pgPgIn"],
  ["pgpgout", "pgPgOut"],
  ["pgfault", "pgFault"],
  ["pgmajfault", "pgMajFault"],
  ["inactive_anon", "inactiveAnon"],
  ["active_anon", "activeAnon"],
  ["inactive_file", "inactiveFile"],
  ["active_file", "activeFile"],
  ["unevictable", "unevictable"],
  ["hierarchical_memory_limit", "hierarchicalMemoryLimit"],
  ["hierarchical_memsw_limit", "hierarchicalSwapLimit"],
  ["total_cache", "totalCache"],
  ["total_rss", "totalRss"],
  ["total_rss_huge", "totalRssHuge"],
  ["total_mapped_file", "totalMappedFile"],
  ["total_dirty", "totalDirty"],
  ["total_writeback", "totalWriteback"],
  ["total_pgpgin", "totalPgPgIn"],
  ["total_pgpgout", "totalPgPgOut"],
  ["total_pgfault", "totalPgFault"],
  ["total_pgmajfault", "totalPgMajFault"],
  ["total_inactive_anon", "totalInactiveAnon"],
  ["total_active_anon", "totalActiveAnon"],
  ["total_inactive_file", "totalInactiveFile"],
  ["total_active_file", "totalActiveFile"],
  ["total_unevictable", "totalUnevictable"],
];

function memoryEntry(dir: string, module: string): MemoryEntry {
  const file = (name: string) => `memory.${module ? `${module}.` : ""}${name}`;
  return create(MemoryEntrySchema, {
    usage: readU64(dir, file("usage_in_bytes")) ?? 0n,
    max: readU64(dir, file("max_usage_in_bytes")) ?? 0n,
    failcnt: readU64(dir, file("failcnt")) ?? 0n,
    limit: readU64(dir, file("limit_in_bytes")) ?? 0n,
  });
}

function readMemory(dir: string, m: Metrics): void {
  const statText = readCgroupFile(dir, "memory.stat");
  if (statText === undefined) return; // no memory controller here: containerd ignores it too
  const raw = parseFlatKeyed(statText);
  const stat = create(MemoryStatSchema, {
    usage: memoryEntry(dir, ""),
    swap: memoryEntry(dir, "memsw"),
    kernel: memoryEntry(dir, "kmem"),
    kernelTcp: memoryEntry(dir, "kmem.tcp"),
  });
  for (const [key, field] of MEMORY_STAT_FIELDS) (stat as unknown as Record<string, bigint>)[field] = raw.get(key) ?? 0n;
  m.memory = stat;
  const oom = readCgroupFile(dir, "memory.oom_control");
  if (oom !== undefined) {
    const o = parseFlatKeyed(oom);
    m.memoryOomControl = create(MemoryOomControlSchema, {
      oomKillDisable: o.get("oom_kill_disable") ?? 0n,
      underOom: o.get("under_oom") ?? 0n,
      oomKill: o.get("oom_kill") ?? 0n,
    });
  }
}

const NANOS_PER_TICK = 1_000_000_000n / 100n; // USER_HZ is 100 on Linux, as containerd hard-codes

function readCpu(cpuDir: string | undefined, cpuacctDir: string | undefined, m: Metrics): void {
  const usage = m.cpu!.usage!;
  const stat = readCgroupFile(cpuacctDir, "cpuacct.stat");
  if (stat !== undefined) {
    const kv = parseFlatKeyed(stat);
    usage.user = (kv.get("user") ?? 0n) * NANOS_PER_TICK;
    usage.kernel = (kv.get("system") ?? 0n) * NANOS_PER_TICK;
  }
  usage.total = readU64(cpuacctDir, "cpuacct.usage") ?? 0n;
  const percpu = readCgroupFile(cpuacctDir, "cpuacct.usage_percpu");
  if (percpu !== undefined) usage.perCpu = percpu.trim().split(/\s+/).filter(Boolean).map((v) => parseU64(v, "cpuacct.usage_percpu"));
  const cpuStat = readCgroupFile(cpuDir, "cpu.stat");
  if (cpuStat !== undefined) {
    const kv = parseFlatKeyed(cpuStat);
    const t = m.cpu!.throttling!;
    t.periods = kv.get("nr_periods") ?? 0n;
    t.throttledPeriods = kv.get("nr_throttled") ?? 0n;
    t.throttledTime = kv.get("throttled_time") ?? 0n;
  }
}

function readPids(dir: string | undefined, m: Metrics): void {
  const current = readU64(dir, "pids.current");
  const max = readCgroupFile(dir, "pids.max");
  if (current === undefined || max === undefined) return;
  // v1 reports no limit as 0 (v2 as MaxUint64), as containerd/cgroups does
  const limit = max.trim() === "max" ? 0n : parseU64(max, "pids.max");
  m.pids = create(PidsStatSchema, { current, limit });
}

// CFQ's recursive files when the kernel has them, else the throttle files (blk-mq kernels)
const CFQ_FILES: [string, keyof BlkIOStat][] = [
  ["sectors_recursive", "sectorsRecursive"],
  ["io_service_bytes_recursive", "ioServiceBytesRecursive"],
  ["io_serviced_recursive", "ioServicedRecursive"],
  ["io_queued_recursive", "ioQueuedRecursive"],
  ["io_service_time_recursive", "ioServiceTimeRecursive"],
  ["io_wait_time_recursive", "ioWaitTimeRecursive"],
  ["io_merged_recursive", "ioMergedRecursive"],
  ["time_recursive", "ioTimeRecursive"],
];
const THROTTLE_FILES: [string, keyof BlkIOStat][] = [
  ["throttle.io_serviced", "ioServicedRecursive"],
  ["throttle.io_service_bytes", "ioServiceBytesRecursive"],
];

function readBlkio(dir: string | undefined, partitions: string, m: Metrics): void {
  if (dir === undefined || readCgroupFile(dir, "cgroup.procs") === undefined) return;
  const blkio = create(BlkIOStatSchema);
  let devices: Map<string, string> | undefined;
  const fill = (files: [string, keyof BlkIOStat][]): number => {
    let n = 0;
    for (const [file, field] of files) {
      const text = readCgroupFile(dir, `blkio.${file}`);
      if (text === undefined) continue;
      devices ??= parsePartitions(readOptional(partitions) ?? "");
      const entries = parseBlkioFile(text, devices, `blkio.${file}`);
      (blkio as unknown as Record<string, BlkIOEntry[]>)[field] = entries;
      n += entries.length;
    }
    return n;
  };
  if (readCgroupFile(dir, "blkio.io_serviced_recursive") === undefined || fill(CFQ_FILES) === 0) fill(THROTTLE_FILES);
  m.blkio = blkio;
}

function readHugetlb(dir: string | undefined, m: Metrics): void {
  if (dir === undefined) return;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  const sizes = names.map((n) => /^hugetlb\.([^.]+)\.usage_in_bytes$/.exec(n)?.[1]).filter((s): s is string => s !== undefined);
  m.hugetlb = sizes.sort().map(
    (pagesize): HugetlbStat =>
      create(HugetlbStatSchema, {
        pagesize,
        usage: readU64(dir, `hugetlb.${pagesize}.usage_in_bytes`) ?? 0n,
        max: readU64(dir, `hugetlb.${pagesize}.max_usage_in_bytes`) ?? 0n,
        failcnt: readU64(dir, `hugetlb.${pagesize}.failcnt`) ?? 0n,
      }),
  );
}

export interface V1Options {
  /** Where device names come from (/proc/partitions). */
  partitions?: string;
}

/** Reads every v1 controller bunker reports; missing controllers and files stay zero. */
export function readV1Metrics(cg: CgroupV1, opts: V1Options = {}): Metrics {
  const m = create(MetricsSchema, { cpu: { usage: {}, throttling: {} } });
  const c = cg.controllers;
  if (c.memory) readMemory(c.memory, m);
  readCpu(c.cpu, c.cpuacct, m);
  readPids(c.pids, m);
  readBlkio(c.blkio, opts.partitions ?? "/proc/partitions", m);
  readHugetlb(c.hugetlb, m);
  return m;
}
