// Issue 9 item 1: tools/fuzz-ttrpc.ts for ~20 s against (a) bunker's ttrpc server serving the Task
// service in its own process and (b) a live bunker shim under containerd. The target never
// crashes, its RSS stays under 200 MiB, and a healthy connection's calls are all answered within
// their 2 s deadline. Set BUNKER_FUZZ_SECONDS to fuzz longer.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Task } from "../../src/gen/containerd/task/v2/shim_pb.ts";
import { dial } from "../../src/ttrpc/index.ts";
import type { FuzzSummary } from "../../tools/fuzz-ttrpc.ts";
import { readMemory } from "../../tools/fuzz/observe.ts";
import { describeWith } from "../support/require.ts";
import { runFuzzer, startLiveShim, startTarget, type LiveShim, type Target } from "../support/fuzz-env.ts";
import { alive, zombieChildren } from "../support/shim-env.ts";

const SECONDS = Number(process.env.BUNKER_FUZZ_SECONDS ?? 20);
const RSS_LIMIT_KIB = 200 * 1024;

function expectSurvived(s: FuzzSummary, pid: number): void {
  // One line per run for the record (frames, peak RSS, healthy latency).
  console.log(
    JSON.stringify({
      pid,
      seconds: s.durationMs / 1000,
      frames: s.frames,
      bytes: s.bytes,
      connections: s.connections,
      answers: s.answers,
      droppedByTarget: s.droppedByTarget,
      peakRssKiB: s.target.peakRssKiB,
      hwmKiB: s.target.hwmKiB,
      healthy: s.healthy,
      codes: s.codes,
    }),
  );
  expect(s.scenarioErrors).toEqual([]);
  expect(s.target.pid).toBe(pid);
  expect(s.target.alive).toBe(true);
  expect(s.target.samples).toBeGreaterThan(SECONDS * 5);
  expect(s.target.peakRssKiB).toBeLessThan(RSS_LIMIT_KIB);
  expect(s.healthy.failures).toBe(0);
  expect(s.healthy.failureSamples).toEqual([]);
  expect(s.healthy.answered).toBe(s.healthy.calls);
  expect(s.healthy.answered).toBeGreaterThan(SECONDS * 5);
  expect(s.healthy.maxLatencyMs).toBeLessThan(2000);
  // Every kind of attack ran, and in bulk.
  for (const kind of ["mutated", "random", "oversized", "huge-claim", "truncated", "flood", "many-connections", "slow-reader"]) {
    expect(s.scenarios[kind] ?? 0).toBeGreaterThan(0);
  }
  expect(s.frames).toBeGreaterThan(10_000);
  // A target never sends a frame its peer cannot decode.
  expect(s.codes.undecodable ?? 0).toBe(0);
  expect(s.codes["flood-unanswered"] ?? 0).toBe(0);
  expect(s.ok).toBe(true);
}

describeWith(["root"], "fuzzing bunker's ttrpc server in its own process", () => {
  let dir: string;
  let target: Target;

  beforeAll(async () => {
    dir = mkdtempSync("/tmp/bunker-fuzz-");
    target = await startTarget(join(dir, "target.sock"));
  });
  afterAll(async () => {
    await target?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test(`${SECONDS} s of hostile input: alive, RSS < 200 MiB, every healthy call answered`, async () => {
    const address = `unix://${join(dir, "target.sock")}`;
    const run = await runFuzzer(address, SECONDS, 1, target.pid);
    expectSurvived(run.summary, target.pid);
    expect(run.code).toBe(0);
    // Still serving afterwards, with its memory given back below the limit.
    const c = await dial(address, { timeoutMs: 2000 });
    expect((await c.service(Task).connect({})).shimPid).toBe(target.pid);
    c.close();
    expect(readMemory(target.pid)!.rssKiB).toBeLessThan(RSS_LIMIT_KIB);
  }, (SECONDS + 90) * 1000);
});

describeWith(["root", "bin:runc", "bin:containerd", "bin:ctr"], "fuzzing a live bunker shim", () => {
  let live: LiveShim;

  beforeAll(async () => {
    live = await startLiveShim(`fz${process.pid}`, "victim");
  }, 120_000);
  afterAll(async () => {
    await live?.stop();
  }, 120_000);

  test(`${SECONDS} s against the shim socket: the shim and its container survive, every healthy call answered`, async () => {
    expect(await live.taskStatus()).toBe("RUNNING");
    const run = await runFuzzer(`unix://${live.socket}`, SECONDS, 2, live.shim.pid);
    expectSurvived(run.summary, live.shim.pid);
    expect(run.code).toBe(0);
    // Same process (not a restarted one), no zombies, and containerd still drives the container through it.
    expect(alive(live.shim)).toBe(true);
    expect(zombieChildren(live.shim.pid)).toEqual([]);
    expect(await live.taskStatus()).toBe("RUNNING");
    const c = await dial(`unix://${live.socket}`, { timeoutMs: 2000, namespace: live.ns });
    const st = await c.service(Task).state({ id: live.id });
    expect(st.id).toBe(live.id);
    c.close();
  }, (SECONDS + 120) * 1000);
});
