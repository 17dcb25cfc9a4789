// OOM notifications: a real runc container past its memory limit (this host: cgroup v1 eventfd),
// and the v2 memory.events watch on fixture files plus a real cgroup2 (kernfs) notification.
import { afterEach, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, watch, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { type Cgroup, cgroupMode, cgroupOfPid, CGROUP_ROOT } from "../../src/linux/cgroup.ts";
import { OomWatcher } from "../../src/linux/oom.ts";
import { makeContainer, type TestContainer, waitFor } from "../support/runc-bundle.ts";
import { describeWith } from "../support/require.ts";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

/** runc create (stdio on /dev/null), so the watch is in place before the process runs. */
async function created(name: string, args: string[], memoryLimit?: number): Promise<{ c: TestContainer; cg: Cgroup }> {
  const c = await makeContainer(name, { args, ...(memoryLimit ? { memoryLimit } : {}) });
  cleanups.push(() => c.dispose());
  const p = Bun.spawn(c.argv("--log", join(c.dir, "runc.log"), "create", c.id), { cwd: c.bundle, stdio: ["ignore", "ignore", "ignore"] });
  expect(await p.exited).toBe(0);
  return { c, cg: cgroupOfPid((await c.state()).pid) };
}

describeWith(["root", "bin:runc"], "OOM watcher with real runc", () => {
  test("a container allocating past 16 MiB (swap limit equal) gives exactly one OOM and exits", async () => {
    const { c, cg } = await created("oom", ["sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1; echo survived"], 16 << 20);
    const oom = new OomWatcher({ onError: (err) => console.error(err) });
    cleanups.push(() => oom.close());
    const seen: string[] = [];
    oom.onOom((id) => seen.push(id));
    oom.add(c.id, cg);
    await c.run("start", c.id);
    await waitFor(async () => (await c.state()).status === "stopped", 30_000, "the container to stop");
    await waitFor(() => seen.length > 0, 10_000, "the OOM callback");
    if (cg.version === 1) expect(readFileSync(join(cg.controllers.memory!, "memory.oom_control"), "utf8")).toContain("oom_kill 1");
    // deleting the cgroup signals the eventfd once more; the watch ends by itself, after which
    // no further notification can come: then count
    await c.run("delete", c.id);
    await waitFor(() => !oom.ids().includes(c.id), 10_000, "the watch to end with its cgroup");
    expect(seen).toEqual([c.id]);
  });

  test("a container that stays within its limit gives none, and its removal is no OOM", async () => {
    const { c, cg } = await created("nooom", ["sh", "-c", "dd if=/dev/zero of=/dev/null bs=1M count=4"], 16 << 20);
    const oom = new OomWatcher();
    cleanups.push(() => oom.close());
    const seen: string[] = [];
    oom.onOom((id) => seen.push(id));
    oom.add(c.id, cg);
    await c.run("start", c.id);
    await waitFor(async () => (await c.state()).status === "stopped", 30_000, "the container to stop");
    await c.run("delete", c.id);
    await waitFor(() => !oom.ids().includes(c.id), 10_000, "the watch to end with its cgroup");
    expect(seen).toEqual([]);
  });

  test("adding an id again replaces its watch; remove() is idempotent", async () => {
    const { c, cg } = await created("oomrm", ["sleep", "60"], 16 << 20);
    const oom = new OomWatcher();
    cleanups.push(() => oom.close());
    oom.add(c.id, cg);
    oom.add(c.id, cg); // replaced, not doubled
    expect(oom.ids()).toEqual([c.id]);
    oom.remove(c.id);
    oom.remove(c.id);
    expect(oom.ids()).toEqual([]);
  });
});

describeWith([], "OOM watcher, cgroup v2 memory.events (fixture files)", () => {
  test("reports each growth of oom_kill once, counting from the value at add(); ends when the file goes", async () => {
    const dir = mkdtempSync("/tmp/bunker-oom-v2-");
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const events = join(dir, "memory.events");
    writeFileSync(events, "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n");
    const oom = new OomWatcher();
    cleanups.push(() => oom.close());
    const seen: string[] = [];
    oom.onOom((id) => seen.push(id));
    oom.add("c2", { version: 2, path: "/c2", dir });
    writeFileSync(events, "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n"); // max moved, no new kill
    writeFileSync(events, "low 0\nhigh 0\nmax 9\noom 2\noom_kill 2\n");
    await waitFor(() => seen.length === 1, 5000, "the OOM callback");
    rmSync(events);
    await waitFor(() => oom.ids().length === 0, 5000, "the watch to end");
    expect(seen).toEqual(["c2"]);
    expect(() => oom.add("c3", join(dir, "nothing"))).toThrow("is not a memory cgroup");
  });
});

describeWith(["root"], "cgroup2 (kernfs) change notifications reach fs.watch", () => {
  test("cgroup.events of a unified cgroup fires when a process enters it", async () => {
    const root = cgroupMode() === "unified" ? CGROUP_ROOT : join(CGROUP_ROOT, "unified");
    const dir = join(root, `bunker-tests-kernfs-${process.pid}`);
    mkdirSync(dir);
    const sleeper = Bun.spawn(["sleep", "60"], { stdio: ["ignore", "ignore", "ignore"] });
    cleanups.push(async () => {
      sleeper.kill("SIGKILL");
      await sleeper.exited;
      await waitFor(() => readFileSync(join(dir, "cgroup.events"), "utf8").includes("populated 0"), 5000, "the cgroup to empty");
      rmdirSync(dir);
    });
    let changes = 0;
    const w = watch(join(dir, "cgroup.events"), () => changes++);
    cleanups.push(() => w.close());
    writeFileSync(join(dir, "cgroup.procs"), String(sleeper.pid));
    await waitFor(() => changes > 0, 5000, "an inotify event from kernfs");
    expect(readFileSync(join(dir, "cgroup.events"), "utf8")).toContain("populated 1");
  });
});

describeWith([], "OOM watcher, cgroup v1 decisions (fixture files, a real eventfd signalled by the test)", () => {
  /** A fake v1 memory cgroup; signal() plays the kernel writing to the eventfd registered in cgroup.event_control. */
  function fixture() {
    const dir = mkdtempSync("/tmp/bunker-oom-v1-");
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const control = (kills: number | undefined, underOom = 0, disable = 0) =>
      writeFileSync(join(dir, "memory.oom_control"), `oom_kill_disable ${disable}\nunder_oom ${underOom}\n${kills === undefined ? "" : `oom_kill ${kills}\n`}`);
    control(0);
    writeFileSync(join(dir, "cgroup.event_control"), "");
    const decisions: string[] = [];
    const oom = new OomWatcher({ onDecision: (_id, reported, why) => decisions.push(`${reported}: ${why}`) });
    cleanups.push(() => oom.close());
    const seen: string[] = [];
    oom.onOom((id) => seen.push(id));
    oom.add("c", dir);
    const efd = Number(readFileSync(join(dir, "cgroup.event_control"), "utf8").split(" ")[0]);
    const signal = () => {
      const one = Buffer.alloc(8);
      one.writeBigUInt64LE(1n);
      writeSync(efd, one);
    };
    return { dir, oom, seen, control, signal, decisions };
  }

  test("the notification comes before the kill: it is reported once the counter moves", async () => {
    const f = fixture();
    f.signal();
    await Bun.sleep(2);
    f.control(1);
    await waitFor(() => f.seen.length === 1, 5000, "the OOM callback");
    f.signal(); // a second notification for the same kill
    await waitFor(() => f.decisions.length === 2, 5000, "the recheck window to close");
    expect(f.decisions).toEqual(["true: oom_kill 1", "false: no kill followed the notification"]);
    expect(f.seen).toEqual(["c"]);
  });

  test("under_oom with the killer disabled is reported; an old kernel without oom_kill reports each one", async () => {
    const f = fixture();
    f.control(0, 1, 1);
    f.signal();
    await waitFor(() => f.seen.length === 1, 5000, "the frozen-under-OOM callback");
    f.control(undefined);
    f.signal();
    await waitFor(() => f.seen.length === 2, 5000, "the callback without a counter");
    expect(f.decisions).toEqual(["true: under OOM, killer disabled", "true: notified (no oom_kill counter)"]);
  });

  test("removal of the cgroup: its own signal is no OOM, a pending one is", async () => {
    const quiet = fixture();
    rmSync(join(quiet.dir, "memory.oom_control"));
    quiet.signal();
    await waitFor(() => quiet.oom.ids().length === 0, 5000, "the watch to end");
    expect(quiet.seen).toEqual([]);
    const lost = fixture();
    rmSync(join(lost.dir, "memory.oom_control"));
    lost.signal();
    lost.signal();
    await waitFor(() => lost.oom.ids().length === 0, 5000, "the watch to end");
    expect(lost.seen).toEqual(["c"]);
  });
});

