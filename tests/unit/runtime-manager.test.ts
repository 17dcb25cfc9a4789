// The task manager against a stand-in shim (tests/support/fake-shim.ts): Create and its rollback, the
// dead-shim path, and reloading a previous manager's tasks (containerd runtime/v2 manager.go).
import { afterAll, afterEach, beforeAll, beforeEach, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { AlreadyExistsError, FailedPreconditionError, NotFoundError } from "../../src/errdefs.ts";
import { TaskExitSchema } from "../../src/gen/containerd/events/task_pb.ts";
import { Status } from "../../src/gen/containerd/types/task/task_pb.ts";
import type { BundleSys } from "../../src/runtime/bundle.ts";
import { Exchange, Topics, unpackEvent } from "../../src/runtime/events.ts";
import { TaskManager } from "../../src/runtime/manager.ts";

const top = mkdtempSync(join(tmpdir(), "bunker-mgr-"));
afterAll(() => rmSync(top, { recursive: true, force: true }));
const shimBin = join(top, "containerd-shim-fake-v1");
beforeAll(async () => {
  // Compiled once: a shim run from sources would spend most of each test starting Bun.
  const b = Bun.spawn([process.execPath, "build", "--compile", "--bytecode", join(import.meta.dir, "../support/fake-shim.ts"), "--outfile", shimBin], { stdout: "ignore", stderr: "pipe" });
  if ((await b.exited) !== 0) throw new Error(`building the fake shim: ${await new Response(b.stderr).text()}`);
}, 60_000);

// mkfifo(1) instead of the FFI: these tests need neither root nor the native library.
const sys: BundleSys = {
  mkfifo(path, mode) {
    const r = Bun.spawnSync(["mkfifo", "-m", mode.toString(8), path]);
    if (!r.success) throw new Error(`mkfifo ${path}: ${r.stderr.toString()}`);
  },
  unmountAll() {},
};

let dir: string;
let events: Exchange;
let managers: TaskManager[];

beforeEach(() => {
  dir = mkdtempSync(join(top, "t-"));
  process.env.FAKE_SHIM_DIR = dir;
  delete process.env.FAKE_CREATE_FAIL;
  delete process.env.FAKE_DELETE_FAIL;
  events = new Exchange();
  managers = [];
});

afterEach(() => {
  for (const m of managers) m.close();
  // The fake serve process, by the pid it recorded.
  try {
    process.kill(Number(readFileSync(join(dir, "fake.pid"), "utf8")), "SIGKILL");
  } catch {
    // already gone
  }
});

async function manager(): Promise<TaskManager> {
  const m = await TaskManager.create({
    root: join(dir, "root"),
    state: join(dir, "state"),
    address: join(dir, "bunker.sock"),
    ttrpcAddress: join(dir, "bunker.sock"),
    events,
    sys,
    logger: pino({ level: "silent" }),
  });
  managers.push(m);
  return m;
}

const createOpts = { runtime: shimBin, spec: "{}", rootfs: [] };

function fakePid(): number {
  return Number(readFileSync(join(dir, "fake.pid"), "utf8"));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await Bun.sleep(10);
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

test("create, list, delete: the bundle and the shim go away", async () => {
  const m = await manager();
  const t = await m.create("ns", "c1", createOpts);
  expect(m.get("ns", "c1")).toBe(t);
  expect(readFileSync(join(t.bundle.path, "shim-binary-path"), "utf8")).toBe(shimBin);
  await expect(m.create("ns", "c1", createOpts)).rejects.toThrow(AlreadyExistsError);
  await t.start();
  const waiting = t.wait();
  await t.kill(9);
  expect((await waiting).exitStatus).toBe(137);
  const pid = fakePid();
  expect(await m.deleteTask("ns", "c1")).toMatchObject({ pid: 4242, exitStatus: 137 });
  expect(() => m.get("ns", "c1")).toThrow(NotFoundError);
  expect(readdirSync(join(dir, "state", "ns"))).toEqual([]);
  expect(readdirSync(join(dir, "root", "ns"))).toEqual([]);
  await until(() => !alive(pid), "the shim to exit after Shutdown");
  // an expected disconnect is not a dead shim
  expect(events.since(0n).map((e) => e.topic)).toEqual([]);
});

test("a failing Create rolls back the bundle and the shim", async () => {
  process.env.FAKE_CREATE_FAIL = "1";
  const m = await manager();
  await expect(m.create("ns", "c1", createOpts)).rejects.toThrow(FailedPreconditionError);
  expect(await m.list()).toEqual([]);
  expect(readdirSync(join(dir, "state", "ns"))).toEqual([]);
  expect(readdirSync(join(dir, "root", "ns"))).toEqual([]);
  const pid = fakePid();
  await until(() => !alive(pid), "the shim to be shut down");
});

test("a missing runtime is refused before anything is made", async () => {
  const m = await manager();
  await expect(m.create("ns", "c1", { ...createOpts, runtime: "io.containerd.nope.v1" })).rejects.toThrow(NotFoundError);
  expect(existsSync(join(dir, "state", "ns"))).toBe(false);
});

for (const deleteFails of [false, true]) {
  test(`a shim that dies: TaskExit (${deleteFails ? "255, delete failed" : "from delete"}), TaskDelete, task dropped`, async () => {
    const m = await manager();
    const t = await m.create("ns", "c1", createOpts);
    await t.start();
    if (deleteFails) process.env.FAKE_DELETE_FAIL = "1";
    process.kill(fakePid(), "SIGKILL");
    await until(() => m.shimTasks().length === 0 && events.since(0n).length === 2, "cleanup after the dead shim");
    const [exit, del] = events.since(0n);
    expect([exit!.topic, del!.topic]).toEqual([Topics.TaskExit, Topics.TaskDelete]);
    expect(unpackEvent(exit!.event, TaskExitSchema)).toMatchObject({ containerId: "c1", exitStatus: deleteFails ? 255 : 137 });
    await until(() => !existsSync(t.bundle.path), "the bundle to be removed");
  });
}

test("reload: 100 tasks at once, empty and dead bundles cleaned, orphan work dirs removed", async () => {
  const first = await manager();
  const ids = Array.from({ length: 100 }, (_, i) => `t${i}`);
  await first.create("ns", ids[0]!, createOpts); // brings the shared serve process up
  for (let i = 1; i < ids.length; i += 10) await Promise.all(ids.slice(i, i + 10).map((id) => first.create("ns", id, createOpts)));
  await first.create("other", "x", createOpts);
  first.close();
  // What a crash can leave behind: an empty bundle, a bundle whose shim is gone, a stray work dir.
  mkdirSync(join(dir, "state", "ns", "empty"));
  const dead = join(dir, "state", "ns", "dead");
  mkdirSync(dead);
  writeFileSync(join(dead, "config.json"), "{}");
  writeFileSync(join(dead, "address"), `unix://${join(dir, "nobody.sock")}`);
  writeFileSync(join(dead, "shim-binary-path"), shimBin);
  mkdirSync(join(dir, "root", "ns", "orphan"), { recursive: true });
  mkdirSync(join(dir, "state", "ns", ".hidden"));

  const t0 = performance.now();
  const second = await manager();
  const ms = performance.now() - t0;
  expect((await second.list("ns")).map((t) => t.id).sort()).toEqual([...ids].sort());
  expect((await second.list("other")).map((t) => t.id)).toEqual(["x"]);
  console.log(`reload of 101 tasks (fake shim): ${ms.toFixed(0)} ms`);
  expect(ms).toBeLessThan(1000);
  expect(existsSync(join(dir, "state", "ns", "empty"))).toBe(false);
  expect(existsSync(dead)).toBe(false);
  expect(existsSync(join(dir, "root", "ns", "orphan"))).toBe(false);
  expect(existsSync(join(dir, "state", "ns", ".hidden"))).toBe(true);
  const exit = events.since(0n).find((e) => e.topic === Topics.TaskExit);
  expect(unpackEvent(exit!.event, TaskExitSchema)).toMatchObject({ containerId: "dead", exitStatus: 137 });
  expect((await second.get("ns", "t7").state()).pid).toBe(4242);
}, 60_000);

test("task() loads one task on demand; an unreachable one is an orphan, reported and not removed until rm", async () => {
  const first = await manager();
  await first.create("ns", "c1", createOpts);
  first.close();
  const lazy = await TaskManager.create(
    { root: join(dir, "root"), state: join(dir, "state"), address: "x", ttrpcAddress: "x", events, sys, logger: pino({ level: "silent" }) },
    { load: false },
  );
  managers.push(lazy);
  expect(await lazy.list()).toEqual([]);
  expect((await lazy.task("ns", "c1")).id).toBe("c1");
  await expect(lazy.task("ns", "nope")).rejects.toThrow(NotFoundError);
  lazy.close();
  process.kill(fakePid(), "SIGKILL");
  await until(() => !alive(fakePid()), "the shim to die");
  const orphan = await lazy.task("ns", "c1");
  await expect(orphan.start("")).rejects.toThrow(/cannot be reached/);
  expect((await orphan.status()).status).toBe(Status.UNKNOWN);
  expect(existsSync(join(dir, "state", "ns", "c1"))).toBe(true);
  expect(await orphan.remove(false)).toMatchObject({ exitStatus: 137 });
  expect(existsSync(join(dir, "state", "ns", "c1"))).toBe(false);
}, 30_000);
