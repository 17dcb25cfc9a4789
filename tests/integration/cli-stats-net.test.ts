// `bunker stats`' NET I/O column as a user sees it, with real runc, embedded and under a daemon:
// a container on a bridge network (inside a private network namespace, tests/support/netns-agent.ts,
// so its bridge and veths die with the test) shows its own links' byte counters in docker's units
// after it talked to its gateway, and the figures match what the kernel reports in its namespace;
// --net none and --net host show docker's "0B / 0B" (no links of their own), never the host's totals.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { BunkerEnv, until } from "../support/cli-harness.ts";
import type { NetnsAgent } from "../support/netns-agent.ts";
import { NetworkBunker } from "../support/network-bunker.ts";
import { describeEachMode } from "../support/cli-modes.ts";
import { describeWith } from "../support/require.ts";

const T = 120_000;
const DECIMAL_UNITS = ["B", "kB", "MB", "GB", "TB"];

/** The NET I/O cell of a container's row in `stats --no-stream` (cells are three spaces or more apart). */
function netIoOf(statsOutput: string, id: string): string {
  const lines = statsOutput.trimEnd().split("\n");
  expect(lines[0]!.split(/\s{3,}/)[4]).toBe("NET I/O");
  const row = lines.find((l) => l.startsWith(`${id} `));
  if (!row) throw new Error(`no row for ${id} in:\n${statsOutput}`);
  return row.split(/\s{3,}/)[4]!;
}

/** "1.23kB" -> 1230 (docker's HumanSizeWithPrecision, 3 significant digits). */
function parseDecimalSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(B|kB|MB|GB|TB)$/.exec(text);
  if (!m) throw new Error(`not a docker size: ${JSON.stringify(text)}`);
  return Number(m[1]) * 1000 ** DECIMAL_UNITS.indexOf(m[2]!);
}

/** rx/tx bytes of every link but lo in a pid's network namespace, as the kernel counts them. */
function kernelCounters(pid: number): { rx: number; tx: number } {
  let rx = 0;
  let tx = 0;
  for (const line of readFileSync(`/proc/${pid}/net/dev`, "utf8").split("\n").slice(2)) {
    const [name, rest] = line.split(":");
    if (!rest || name!.trim() === "lo") continue;
    const f = rest.trim().split(/\s+/).map(Number);
    rx += f[0]!;
    tx += f[8]!;
  }
  return { rx, tx };
}

describeWith(["root", "bin:runc"], "bunker stats NET I/O without a network of its own", () => {
  let env: BunkerEnv;
  beforeAll(async () => {
    env = await BunkerEnv.create("bunker-statsnet-");
  }, 60_000);
  afterAll(async () => {
    await env?.dispose();
  }, 60_000);

  describeEachMode(() => env, (mode) => {

    test("--net none and --net host: 0B / 0B, as docker shows them", async () => {
      for (const net of ["none", "host"]) {
        const id = `${net}-${mode}`;
        const started = await env.run(["run", "-d", "--net", net, "--rootfs", env.rootfs, id, "sleep", "1000"]);
        expect(started.stderr).toBe("");
        expect(started.code).toBe(0);
        const r = await env.run(["stats", "--no-stream", id]);
        expect([r.code, r.stderr]).toEqual([0, ""]);
        expect(netIoOf(r.stdout, id)).toBe("0B / 0B");
      }
      // a stopped container's row is "--" throughout, NET I/O included
      expect((await env.run(["kill", "-s", "KILL", `none-${mode}`])).code).toBe(0);
      await until(async () => /STOPPED/.test((await env.run(["ps", "-a"])).stdout.split("\n").find((l) => l.startsWith(`none-${mode} `)) ?? ""), 10_000, "the container to stop");
      const stopped = await env.run(["stats", "--no-stream", `none-${mode}`]);
      expect(netIoOf(stopped.stdout, `none-${mode}`)).toBe("--");
    }, 60_000);
    return async () => await env.run(["rm", "-f", `none-${mode}`, `host-${mode}`]);
  });
});

describeWith(["root", "bin:runc", "bin:unshare", "bin:iptables", "bin:ip"], "bunker stats NET I/O on a bridge network (in a private network namespace)", () => {
  let net: NetworkBunker;
  let agent: NetnsAgent;
  let bunker: string[];
  const run = async (...args: string[]) => await net.run(...args);
  const ok = async (...args: string[]) => await net.ok(...args);

  beforeAll(async () => {
    net = await NetworkBunker.start("/tmp/bunker-statsnet-");
    ({ agent, bunker } = net);
  }, T);

  afterAll(async () => {
    await net?.stop(["talker-embedded", "talker-daemon"]);
  }, T);

  for (const mode of ["embedded", "daemon"] as const) {
    test(`${mode}: a bridged container's own links, in docker's units, as its namespace counts them`, async () => {
      let daemonPid: number | undefined;
      if (mode === "daemon") {
        daemonPid = await agent.spawn(...bunker, "daemon");
        for (let i = 0; !(await run("version")).stdout.includes("daemon"); i++) {
          if (i > 500) throw new Error("the daemon did not answer");
          await Bun.sleep(20);
        }
      }
      try {
        const id = `talker-${mode}`;
        await ok("run", "-d", "--net", "bridge", "--name", id, "busybox", "sleep", "1000");
        const pid = Number((await ok("ps")).match(new RegExp(`^${id}\\s+(\\d+)`, "m"))![1]);
        // a few kB each way: pings of 1000 bytes to the bridge's gateway
        const gateway = (await ok("exec", id, "ip", "-4", "route", "show", "default")).match(/via (\S+)/)![1]!;
        const ping = await run("exec", id, "ping", "-c", "3", "-s", "1000", gateway);
        expect([ping.code, ping.stderr]).toEqual([0, ""]);
        const before = kernelCounters(pid);
        expect(before.rx).toBeGreaterThan(3000);
        expect(before.tx).toBeGreaterThan(3000);
        const r = await run("stats", "--no-stream", id);
        const after = kernelCounters(pid);
        expect([r.code, r.stderr]).toEqual([0, ""]);
        const cell = netIoOf(r.stdout, id);
        expect(cell).toMatch(/^\d+(\.\d+)?(B|kB|MB) \/ \d+(\.\d+)?(B|kB|MB)$/);
        const [rx, tx] = cell.split(" / ").map(parseDecimalSize) as [number, number];
        // three significant digits: within half a unit of the last digit of what the kernel counted around the sample
        expect(rx).toBeGreaterThanOrEqual(before.rx * 0.995);
        expect(rx).toBeLessThanOrEqual(after.rx * 1.005);
        expect(tx).toBeGreaterThanOrEqual(before.tx * 0.995);
        expect(tx).toBeLessThanOrEqual(after.tx * 1.005);
        await ok("rm", "-f", id);
      } finally {
        if (daemonPid !== undefined) await agent.kill(daemonPid);
      }
    }, T);
  }
});
