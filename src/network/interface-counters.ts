// A container's network byte counters for `bunker stats`' NET I/O column, read from the kernel's
// per-namespace table (/proc/<pid>/net/dev shows the network namespace of that pid, so the host
// reads the container's counters without entering it). This is what docker's figures come to:
// moby sums libnetwork's sandbox interfaces, which are the container's own links and never lo, so
// lo is left out here too. A container in the host's namespace (`--net host`, or any whose
// namespace is the caller's) has no interfaces of its own in docker's sandbox and shows 0B / 0B;
// counting the host's links there would charge every host byte to the container. `--net none`
// leaves only lo, so it shows 0B / 0B as docker does; `container:ID` reads the shared namespace,
// as moby follows the chain to the owner's sandbox.
import { readFileSync, readlinkSync } from "node:fs";

export interface InterfaceCounters {
  rx: bigint;
  tx: bigint;
}

/**
 * The rx/tx byte totals of every interface but lo in a /proc/net/dev table: two header lines, then
 * "name: rx-bytes rx-packets … (8 receive fields) tx-bytes …". A line that does not parse is skipped.
 */
export function sumNetDev(text: string): InterfaceCounters {
  let rx = 0n;
  let tx = 0n;
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    const fields = line.slice(colon + 1).trim().split(/\s+/);
    if (name === "" || name === "lo" || fields.length < 9 || !/^\d+$/.test(fields[0]!) || !/^\d+$/.test(fields[8]!)) continue;
    rx += BigInt(fields[0]!);
    tx += BigInt(fields[8]!);
  }
  return { rx, tx };
}

/** Where a process's counters and namespace are read; a seam for tests. */
export interface ProcReader {
  netDev(pid: number): string;
  /** The `net:[inode]` link of a process's network namespace; "self" for the caller's. */
  netns(pid: number | "self"): string;
}

const procfs: ProcReader = {
  netDev: (pid) => readFileSync(`/proc/${pid}/net/dev`, "utf8"),
  netns: (pid) => readlinkSync(`/proc/${pid}/ns/net`),
};

/**
 * The counters docker would show for a container whose init is `pid` and whose network mode is
 * `network` (TaskInfo's: "none", "host", "bridge", "container:ID", a network name, or "" when
 * unknown). Undefined when they cannot be read (the process is gone): the column is "--" then.
 */
export function containerNetworkCounters(pid: number, network: string, proc: ProcReader = procfs): InterfaceCounters | undefined {
  if (network === "host") return { rx: 0n, tx: 0n };
  if (pid <= 0) return undefined;
  try {
    if (proc.netns(pid) === proc.netns("self")) return { rx: 0n, tx: 0n };
    return sumNetDev(proc.netDev(pid));
  } catch {
    return undefined;
  }
}
