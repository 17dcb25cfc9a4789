// `bunker stats [--no-stream] [ID...]`: docker stats' table from the shim's Stats, which carries a
// cgroups v1 or v2 Metrics message (containerd's shape; which one depends on the host, so both are
// decoded). The figures follow docker's CLI: memory is the usage less the inactive page cache
// (what the kernel can drop at once), the limit is the host's memory when the cgroup has none,
// CPU % is the cgroup's CPU time over the wall time between two samples (100% = one core), block
// I/O sums every device. A network's counters live in the container's netns, which the cgroup
// does not see: NET I/O is read from the init's /proc/<pid>/net/dev (network/interface-counters.ts:
// every interface but lo, 0B / 0B for --net none and host as docker shows them), "--" only when
// that cannot be read.
import { fromBinary } from "@bufbuild/protobuf";
import type { Any } from "@bufbuild/protobuf/wkt";
import { readFileSync } from "node:fs";
import type { Api } from "../api/client.ts";
import { containerNetworkCounters } from "../network/interface-counters.ts";
import { errorMessage } from "../errdefs.ts";
import { MetricsSchema as V1MetricsSchema } from "../gen/cgroups/v1/metrics_pb.ts";
import { MetricsSchema as V2MetricsSchema } from "../gen/cgroups/v2/metrics_pb.ts";
import type { TaskInfo } from "../gen/bunker/v1/api_pb.ts";
import { Status } from "../gen/containerd/types/task/task_pb.ts";
import type { GlobalOptions } from "./args.ts";
import { stdout } from "./stdout.ts";

/** docker stats refreshes once a second, and --no-stream waits that long for its second sample. */
const INTERVAL_MS = 1_000;
/** cgroup v2 writes "max" as MaxUint64; v1 reports a page-aligned near-MaxInt64 for "no limit". */
const NO_LIMIT = 1n << 62n;
const CLEAR_SCREEN = "\x1b[2J\x1b[H";

/** One reading of a container's cgroup, in the units docker shows. */
export interface Sample {
  /** CPU time used so far, in nanoseconds. */
  cpuNs: bigint;
  memoryUsage: bigint;
  /** 0n when the cgroup has no limit. */
  memoryLimit: bigint;
  blockRead: bigint;
  blockWrite: bigint;
  /** Undefined when the metrics carry no network counters. */
  network?: { rx: bigint; tx: bigint };
  pids: bigint;
}

/** Decodes the Any of a Stats reply (cgroups v1 or v2 Metrics) into a Sample. */
export function sampleOf(any: Any): Sample {
  if (any.typeUrl.endsWith("io.containerd.cgroups.v2.Metrics")) {
    const m = fromBinary(V2MetricsSchema, any.value);
    const mem = m.memory;
    const usage = mem ? mem.usage : 0n;
    const inactive = mem ? mem.inactiveFile : 0n;
    let blockRead = 0n;
    let blockWrite = 0n;
    for (const e of m.io?.usage ?? []) {
      blockRead += e.rbytes;
      blockWrite += e.wbytes;
    }
    return {
      cpuNs: (m.cpu?.usageUsec ?? 0n) * 1000n,
      memoryUsage: inactive < usage ? usage - inactive : usage,
      memoryLimit: mem && mem.usageLimit < NO_LIMIT ? mem.usageLimit : 0n,
      blockRead,
      blockWrite,
      pids: m.pids?.current ?? 0n,
    };
  }
  if (any.typeUrl.endsWith("io.containerd.cgroups.v1.Metrics")) {
    const m = fromBinary(V1MetricsSchema, any.value);
    const mem = m.memory;
    const usage = mem?.usage?.usage ?? 0n;
    const inactive = mem?.totalInactiveFile ?? 0n;
    const limit = mem?.usage?.limit ?? 0n;
    let blockRead = 0n;
    let blockWrite = 0n;
    for (const e of m.blkio?.ioServiceBytesRecursive ?? []) {
      if (e.op.toLowerCase() === "read") blockRead += e.value;
      else if (e.op.toLowerCase() === "write") blockWrite += e.value;
    }
    const sample: Sample = {
      cpuNs: m.cpu?.usage?.total ?? 0n,
      memoryUsage: inactive < usage ? usage - inactive : usage,
      memoryLimit: limit > 0n && limit < NO_LIMIT ? limit : 0n,
      blockRead,
      blockWrite,
      pids: m.pids?.current ?? 0n,
    };
    if (m.network.length > 0) sample.network = { rx: m.network.reduce((a, n) => a + n.rxBytes, 0n), tx: m.network.reduce((a, n) => a + n.txBytes, 0n) };
    return sample;
  }
  throw new Error(`stats of an unknown type ${JSON.stringify(any.typeUrl)}`);
}

/** Go's %.Ng: N significant digits, trailing zeros dropped. */
function significant(value: number, digits: number): string {
  return String(Number(value.toPrecision(digits)));
}

/** docker's units.BytesSize (binary units, 4 significant digits): 1.535MiB. */
export function bytesSize(n: bigint | number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  let v = Number(n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return significant(v, 4) + units[i];
}

/** docker's units.HumanSizeWithPrecision(n, 3) (decimal units): 12.3kB. */
export function humanSize(n: bigint | number): string {
  const units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
  let v = Number(n);
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return significant(v, 3) + units[i];
}

/** The host's memory, docker's limit for a container that has none. */
export function hostMemory(meminfo = "/proc/meminfo"): bigint {
  try {
    const kb = /^MemTotal:\s+(\d+) kB/m.exec(readFileSync(meminfo, "utf8"))?.[1];
    return kb ? BigInt(kb) * 1024n : 0n;
  } catch {
    return 0n;
  }
}

export const STATS_HEADER = ["CONTAINER ID", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"];

/**
 * A container's row. `previous` is the sample taken `elapsedMs` before (CPU % needs two); without
 * one, CPU % is "--". A container whose stats could not be read (stopped) shows "--" throughout.
 */
export function statsRow(id: string, now: Sample | undefined, previous: Sample | undefined, elapsedMs: number, hostMem: bigint): string[] {
  if (!now) return [id, "--", "-- / --", "--", "--", "--", "--"];
  let cpu = "--";
  if (previous && elapsedMs > 0) {
    const used = Number(now.cpuNs - previous.cpuNs);
    cpu = `${Math.max(0, (used / (elapsedMs * 1e6)) * 100).toFixed(2)}%`;
  }
  const limit = now.memoryLimit > 0n ? now.memoryLimit : hostMem;
  const memPercent = limit > 0n ? `${((Number(now.memoryUsage) / Number(limit)) * 100).toFixed(2)}%` : "--";
  const net = now.network ? `${humanSize(now.network.rx)} / ${humanSize(now.network.tx)}` : "--";
  return [id, cpu, `${bytesSize(now.memoryUsage)} / ${limit > 0n ? bytesSize(limit) : "--"}`, memPercent, net, `${humanSize(now.blockRead)} / ${humanSize(now.blockWrite)}`, String(now.pids)];
}

/** Columns padded as docker's tabwriter does (three spaces between them). */
export function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]?.length ?? 0)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join("   ").trimEnd());
}

export async function stats(api: Api, g: GlobalOptions, c: { noStream: boolean; ids: string[] }): Promise<number> {
  const hostMem = hostMemory();
  // Named containers are shown even once stopped ("--"); without names, the running ones of each moment.
  const running = (t: TaskInfo): boolean => t.status === Status.RUNNING || t.status === Status.PAUSED;
  const targets = async (): Promise<{ ids: string[]; tasks: Map<string, TaskInfo> }> => {
    if (c.ids.length > 0) {
      const named = await Promise.all(c.ids.map(async (id) => [id, (await api.list({ namespace: g.namespace, id }).catch(() => undefined))?.tasks[0]] as const));
      return { ids: c.ids, tasks: new Map(named.flatMap(([id, t]) => (t ? [[id, t] as const] : []))) };
    }
    const { tasks } = await api.list({ namespace: g.namespace });
    const shown = tasks.filter(running);
    return { ids: shown.map((t) => t.id), tasks: new Map(shown.map((t) => [t.id, t])) };
  };
  if (c.ids.length > 0) {
    // a name that is not there at all is an error, as docker's "No such container"
    for (const id of c.ids) await api.list({ namespace: g.namespace, id });
  }
  const read = async (id: string, task: TaskInfo | undefined): Promise<Sample | undefined> => {
    try {
      const r = await api.stats({ namespace: g.namespace, id });
      if (!r.stats) return undefined;
      const sample = sampleOf(r.stats);
      // the netns's own counters (the Metrics carry none on cgroup v2, and v1's are not the container's links)
      const network = task && running(task) ? containerNetworkCounters(task.pid, task.network) : undefined;
      if (network) sample.network = network;
      else delete sample.network;
      return sample;
    } catch (err) {
      if (g.debug) process.stderr.write(`bunker: stats ${id}: ${errorMessage(err)}\n`);
      return undefined;
    }
  };
  const sampleAll = async ({ ids, tasks }: { ids: string[]; tasks: Map<string, TaskInfo> }): Promise<{ ids: string[]; at: number; samples: Map<string, Sample | undefined> }> => {
    const samples = await Promise.all(ids.map(async (id) => [id, await read(id, tasks.get(id))] as const));
    return { ids, at: performance.now(), samples: new Map(samples) };
  };
  let previous = await sampleAll(await targets());
  const interactive = !c.noStream && process.stdout.isTTY === true;
  let stopped = false;
  const stop = (): void => {
    stopped = true;
  };
  process.once("SIGINT", stop);
  try {
    for (;;) {
      await Bun.sleep(INTERVAL_MS);
      if (stopped) return 0;
      const current = await sampleAll(await targets());
      const rows = current.ids.map((id) => statsRow(id, current.samples.get(id), previous.samples.get(id), current.at - previous.at, hostMem));
      stdout().write((interactive ? CLEAR_SCREEN : "") + table([STATS_HEADER, ...rows]).join("\n") + "\n");
      if (c.noStream || stopped) return 0;
      previous = current;
    }
  } finally {
    process.off("SIGINT", stop);
  }
}
