// cgroup v2 files -> io.containerd.cgroups.v2.Metrics, as containerd/cgroups v2 Manager.Stat fills
// them: pids.current/max, cpu.stat, memory.stat + memory.current/max + memory.swap.current/max,
// memory.events, io.stat, rdma.current/max and hugetlb.<size>.current/max. "max" is MaxUint64 here
// (v1 says 0); missing files leave zeros.
//
//   readV2Metrics(cg: CgroupV2): Metrics
//   parseIoStat(text): IOEntry[]        "maj:min rbytes=.. wbytes=.. rios=.. wios=.." lines
//   parseMemoryEvents(text): MemoryEvents
import { create } from "@bufbuild/protobuf";
import { readdirSync } from "node:fs";
import {
  type HugeTlbStat,
  HugeTlbStatSchema,
  type IOEntry,
  IOEntrySchema,
  type MemoryEvents,
  MemoryEventsSchema,
  type MemoryStat,
  MemoryStatSchema,
  type Metrics,
  MetricsSchema,
  type RdmaEntry,
  RdmaEntrySchema,
} from "../gen/cgroups/v2/metrics_pb.ts";
import type { CgroupV2 } from "./cgroup.ts";
import { parseFlatKeyed, parseU64, readCgroupFile } from "./stats-v1.ts";

const MAX_U64 = 0xffffffffffffffffn;

/** A single-value file: a number, "max" (MaxUint64) or undefined when missing. */
function readLimit(dir: string, name: string): bigint | undefined {
  const text = readCgroupFile(dir, name);
  if (text === undefined) return undefined;
  return text.trim() === "max" ? MAX_U64 : parseU64(text, name);
}

// memory.stat key -> MemoryStat field
const MEMORY_STAT_FIELDS: [string, keyof MemoryStat][] = [
  ["anon", "anon"],
  ["file", "file"],
  ["kernel_stack", "kernelStack"],
  ["slab", "slab"],
  ["sock", "sock"],
  ["shmem", "shmem"],
  ["file_mapped", "fileMapped"],
  ["file_dirty", "fileDirty"],
  ["file_writeback", "fileWriteback"],
  ["anon_thp", "anonThp"],
  ["inactive_anon", "inactiveAnon"],
  ["active_anon", "activeAnon"],
  ["inactive_file", "inactiveFile"],
  ["active_file", "activeFile"],
  ["unevictable", "unevictable"],
  ["slab_reclaimable", "slabReclaimable"],
  ["slab_unreclaimable", "slabUnreclaimable"],
  ["pgfault", "pgfault"],
  ["pgmajfault", "pgmajfault"],
  ["workingset_refault", "workingsetRefault"],
  ["workingset_activate", "workingsetActivate"],
  ["workingset_nodereclaim", "workingsetNodereclaim"],
  ["pgrefill", "pgrefill"],
  ["pgscan", "pgscan"],
  ["pgsteal", "pgsteal"],
  ["pgactivate", "pgactivate"],
  ["pgdeactivate", "pgdeactivate"],
  ["pglazyfree", "pglazyfree"],
  ["pglazyfreed", "pglazyfreed"],
  ["thp_fault_alloc", "thpFaultAlloc"],
  ["thp_collapse_alloc", "thpCollapseAlloc"],
];

/** io.stat: one line per device; unknown keys (dbytes, dios) are ignored. */
export function parseIoStat(text: string): IOEntry[] {
  const out: IOEntry[] = [];
  for (const line of text.split("\n")) {
    const [dev, ...pairs] = line.trim().split(/\s+/);
    const m = /^(\d+):(\d+)$/.exec(dev ?? "");
    if (!m) continue;
    const e = create(IOEntrySchema, { major: BigInt(m[1]!), minor: BigInt(m[2]!) });
    for (const pair of pairs) {
      const [k, v] = pair.split("=");
      if (v === undefined || !/^\d+$/.test(v)) continue;
      if (k === "rbytes") e.rbytes = BigInt(v);
      else if (k === "wbytes") e.wbytes = BigInt(v);
      else if (k === "rios") e.rios = BigInt(v);
      else if (k === "wios") e.wios = BigInt(v);
    }
    out.push(e);
  }
  return out;
}

export function parseMemoryEvents(text: string): MemoryEvents {
  const kv = parseFlatKeyed(text);
  return create(MemoryEventsSchema, {
    low: kv.get("low") ?? 0n,
    high: kv.get("high") ?? 0n,
    max: kv.get("max") ?? 0n,
    oom: kv.get("oom") ?? 0n,
    oomKill: kv.get("oom_kill") ?? 0n,
  });
}

/** rdma.current / rdma.max: "mlx4_0 hca_handle=2 hca_object=2000" ("max" counts as MaxUint32). */
function parseRdma(text: string | undefined): RdmaEntry[] {
  if (text === undefined) return [];
  const out: RdmaEntry[] = [];
  for (const line of text.split("\n")) {
    const [device, ...pairs] = line.trim().split(/\s+/);
    if (!device) continue;
    const e = create(RdmaEntrySchema, { device });
    for (const pair of pairs) {
      const [k, v] = pair.split("=");
      const n = v === "max" ? 0xffffffff : Number(v);
      if (!Number.isFinite(n)) continue;
      if (k === "hca_handle") e.hcaHandles = n;
      else if (k === "hca_object") e.hcaObjects = n;
    }
    out.push(e);
  }
  return out;
}

function readHugetlb(dir: string): HugeTlbStat[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const sizes = new Set(names.map((n) => /^hugetlb\.([^.]+)\.(current|max)$/.exec(n)?.[1]).filter((s): s is string => s !== undefined));
  return [...sizes].sort().map((pagesize) =>
    create(HugeTlbStatSchema, {
      pagesize,
      current: readLimit(dir, `hugetlb.${pagesize}.current`) ?? 0n,
      max: readLimit(dir, `hugetlb.${pagesize}.max`) ?? 0n,
    }),
  );
}

export function readV2Metrics(cg: CgroupV2): Metrics {
  const dir = cg.dir;
  const cpu = parseFlatKeyed(readCgroupFile(dir, "cpu.stat") ?? "");
  const mem = parseFlatKeyed(readCgroupFile(dir, "memory.stat") ?? "");
  const memory = create(MemoryStatSchema, {
    usage: readLimit(dir, "memory.current") ?? 0n,
    usageLimit: readLimit(dir, "memory.max") ?? 0n,
    swapUsage: readLimit(dir, "memory.swap.current") ?? 0n,
    swapLimit: readLimit(dir, "memory.swap.max") ?? 0n,
  });
  for (const [key, field] of MEMORY_STAT_FIELDS) (memory as unknown as Record<string, bigint>)[field] = mem.get(key) ?? 0n;
  const events = readCgroupFile(dir, "memory.events");
  return create(MetricsSchema, {
    pids: { current: readLimit(dir, "pids.current") ?? 0n, limit: readLimit(dir, "pids.max") ?? 0n },
    cpu: {
      usageUsec: cpu.get("usage_usec") ?? 0n,
      userUsec: cpu.get("user_usec") ?? 0n,
      systemUsec: cpu.get("system_usec") ?? 0n,
      nrPeriods: cpu.get("nr_periods") ?? 0n,
      nrThrottled: cpu.get("nr_throttled") ?? 0n,
      throttledUsec: cpu.get("throttled_usec") ?? 0n,
    },
    memory,
    ...(events !== undefined && events.trim() !== "" ? { memoryEvents: parseMemoryEvents(events) } : {}),
    io: { usage: parseIoStat(readCgroupFile(dir, "io.stat") ?? "") },
    rdma: { current: parseRdma(readCgroupFile(dir, "rdma.current")), limit: parseRdma(readCgroupFile(dir, "rdma.max")) },
    hugetlb: readHugetlb(dir),
  });
}
