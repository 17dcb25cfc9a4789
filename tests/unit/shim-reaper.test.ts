import { describe, expect, test } from "bun:test";
import { FakeSyscalls, signaledStatus } from "../../src/sys/index.ts";
import { Monitor, type Exit } from "../../src/shim/reaper.ts";

describe("exit monitor", () => {
  test("dispatches exits by pid with 128+signal, keeps unclaimed exits for late watchers", () => {
    const fake = new FakeSyscalls();
    const m = new Monitor(() => fake.reapSweep(new Set()));
    const seen: Exit[] = [];
    m.watch(10, (e) => seen.push(e));
    fake.exit(10, 7).exit(11, signaledStatus(9));
    m.reap();
    expect(seen.map((e) => [e.pid, e.status])).toEqual([[10, 7]]);
    // pid 11 ended before anyone watched it: the watcher gets it at once
    m.watch(11, (e) => seen.push(e));
    expect(seen[1]).toMatchObject({ pid: 11, status: 137, signal: 9 });
  });

  test("each exit reaches its watcher once; unwatch stops delivery", () => {
    const fake = new FakeSyscalls();
    const m = new Monitor(() => fake.reapSweep(new Set()));
    let calls = 0;
    m.watch(5, () => calls++);
    m.unwatch(5);
    fake.exit(5, 0);
    m.reap();
    m.reap();
    expect(calls).toBe(0);
    const all: number[] = [];
    m.onAnyExit((e) => all.push(e.pid));
    fake.exit(6, 1);
    m.reap();
    expect(all).toEqual([6]);
  });

  test("a listener that triggers a sweep does not re-enter it", () => {
    const fake = new FakeSyscalls();
    const m = new Monitor(() => fake.reapSweep(new Set()));
    const order: number[] = [];
    m.watch(1, () => {
      order.push(1);
      fake.exit(2, 0);
      m.reap();
      order.push(-1);
    });
    m.watch(2, () => order.push(2));
    fake.exit(1, 0);
    m.reap();
    expect(order).toEqual([1, -1, 2]);
  });

  test("the real sweep leaves Bun.spawn children to Bun", async () => {
    const { spawnTracked } = await import("../../src/sys/children.ts");
    const m = new Monitor();
    const stolen: number[] = [];
    m.onAnyExit((e) => stolen.push(e.pid));
    const procs = Array.from({ length: 20 }, () => spawnTracked(["true"], { stdout: "ignore" }));
    const codes = await Promise.all(procs.map((p) => { m.reap(); return p.exited; }));
    m.reap();
    expect(codes.every((c) => c === 0)).toBe(true);
    expect(stolen.filter((pid) => procs.some((p) => p.pid === pid))).toEqual([]);
  });
});
