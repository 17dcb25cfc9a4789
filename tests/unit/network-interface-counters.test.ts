// The NET I/O figures of `bunker stats`: /proc/<pid>/net/dev summed over every interface but lo, and
// docker's 0B / 0B for a container with no links of its own (--net none's lone lo, --net host).
import { describe, expect, test } from "bun:test";
import { statsRow, type Sample } from "../../src/cli/stats.ts";
import { containerNetworkCounters, type ProcReader, sumNetDev } from "../../src/network/interface-counters.ts";

const NET_DEV = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  123456     100    0    0    0     0          0         0   123456     100    0    0    0     0       0          0
  eth0:    1234      10    0    0    0     0          0         0      648       6    0    0    0     0       0          0
  eth1:1000000000  9    0    0    0     0          0         0        2       1    0    0    0     0       0          0
`;

function fakeProc(netns: Record<string, string>, netDev: Record<number, string>): ProcReader {
  return {
    netDev: (pid) => {
      const text = netDev[pid];
      if (text === undefined) throw new Error(`ENOENT /proc/${pid}/net/dev`);
      return text;
    },
    netns: (pid) => {
      const link = netns[String(pid)];
      if (link === undefined) throw new Error(`ENOENT /proc/${pid}/ns/net`);
      return link;
    },
  };
}

describe("sumNetDev", () => {
  test("sums rx and tx bytes of every interface but lo, including a name glued to its first number", () => {
    expect(sumNetDev(NET_DEV)).toEqual({ rx: 1_000_001_234n, tx: 650n });
  });

  test("only lo (--net none) is 0 / 0; headers and broken lines are skipped", () => {
    const onlyLo = NET_DEV.split("\n").slice(0, 3).join("\n");
    expect(sumNetDev(onlyLo)).toEqual({ rx: 0n, tx: 0n });
    expect(sumNetDev("garbage\n  eth0: x y z\n")).toEqual({ rx: 0n, tx: 0n });
  });
});

describe("containerNetworkCounters", () => {
  const proc = fakeProc({ self: "net:[1]", "10": "net:[2]", "11": "net:[1]" }, { 10: NET_DEV, 11: NET_DEV });

  test("a container in its own namespace: that namespace's links", () => {
    expect(containerNetworkCounters(10, "bridge", proc)).toEqual({ rx: 1_000_001_234n, tx: 650n });
    expect(containerNetworkCounters(10, "container:web", proc)).toEqual({ rx: 1_000_001_234n, tx: 650n });
  });

  test("--net host, or a namespace that is the caller's, is docker's 0B / 0B, never the host's totals", () => {
    expect(containerNetworkCounters(10, "host", proc)).toEqual({ rx: 0n, tx: 0n });
    expect(containerNetworkCounters(11, "", proc)).toEqual({ rx: 0n, tx: 0n });
  });

  test("a process that is gone, or no pid, cannot be read: undefined (the column shows --)", () => {
    expect(containerNetworkCounters(12, "bridge", proc)).toBeUndefined();
    expect(containerNetworkCounters(0, "bridge", proc)).toBeUndefined();
  });

  test("the row shows docker's units: 1.23kB / 648B, and 0B / 0B", () => {
    const base: Sample = { cpuNs: 0n, memoryUsage: 0n, memoryLimit: 0n, blockRead: 0n, blockWrite: 0n, pids: 1n };
    expect(statsRow("c", { ...base, network: { rx: 1234n, tx: 648n } }, undefined, 0, 1n << 30n)[4]).toBe("1.23kB / 648B");
    expect(statsRow("c", { ...base, network: { rx: 0n, tx: 0n } }, undefined, 0, 1n << 30n)[4]).toBe("0B / 0B");
    expect(statsRow("c", base, undefined, 0, 1n << 30n)[4]).toBe("--");
  });
});
