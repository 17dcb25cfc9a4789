// The task service's ordering rules, pinned with the recording fake of the OciRuntime seam (no root,
// no runc): TaskExit never before TaskStart, an exec's exit before its init's, a failed restore
// leaves nothing, kill of a stopped process is NotFound, and a failed create removes only what it
// made. The same rules against real runc and containerd are in tests/integration/shim-*.
import { afterAll, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AlreadyExistsError, FailedPreconditionError, NotFoundError, UnknownError } from "../../src/errdefs.ts";
import { CreateTaskRequestSchema, ExecProcessRequestSchema } from "../../src/gen/containerd/task/v2/shim_pb.ts";
import type { Publisher } from "../../src/shim/publisher.ts";
import { RuncTaskService } from "../../src/shims/bunker/service.ts";
import { FakeSyscalls } from "../../src/sys/index.ts";
import { testServeContext } from "../support/serve-context.ts";
import type { CallContext } from "../../src/ttrpc/server.ts";
import { FakeOciWorld } from "../support/fake-oci-runtime.ts";

const dir = mkdtempSync(join(tmpdir(), "bunker-ordering-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const call = {} as CallContext;
/** A handler's answer (the service's handlers may return void for empty replies; these never do). */
const answer = async <T>(p: unknown): Promise<T> => (await p) as T;

function service() {
  const events: string[] = [];
  const publisher: Publisher = {
    publish: (topic, _schema, msg) => {
      const m = msg as { containerId?: string; id?: string; execId?: string };
      const who = m.execId || (m.id && m.id !== m.containerId ? m.id : "") || "init";
      events.push(`${topic} ${m.containerId ?? ""}/${who}`);
    },
    flush: async () => {},
    close() {},
  };
  let svc: RuncTaskService | undefined;
  const fake = new FakeSyscalls();
  const ctx = testServeContext({ fake, publisher, containerCount: () => svc?.containerCount() ?? 0, bundle: dir });
  const world = new FakeOciWorld(fake, ctx.monitor);
  svc = new RuncTaskService(ctx, fake, world.factory);
  return { impl: svc.impl, world, events };
}

function bundle(id: string): string {
  const b = join(dir, `${id}-${Math.random().toString(36).slice(2, 8)}`);
  mkdirSync(b, { recursive: true });
  writeFileSync(join(b, "config.json"), JSON.stringify({ linux: { namespaces: [{ type: "pid" }] } }));
  return b;
}

async function created(impl: ReturnType<typeof service>["impl"], id: string, extra: Record<string, unknown> = {}): Promise<number> {
  return (await answer<{ pid: number }>(impl.create!(create(CreateTaskRequestSchema, { id, bundle: bundle(id), ...extra }), call))).pid;
}

const execSpec = (args: string[]) => ({ typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process", value: new TextEncoder().encode(JSON.stringify({ args, cwd: "/" })) });

test("TaskExit never before TaskStart: an init that exits while runc start is still running", async () => {
  const { impl, world, events } = service();
  const pid = await created(impl, "c1");
  const release = world.hold("start", "c1");
  const starting = impl.start!({ id: "c1", execId: "" } as never, call);
  await Bun.sleep(5);
  world.exit(pid, 3); // the reaper sees the exit first
  await Bun.sleep(5);
  expect(events).toEqual(["/tasks/create c1/init"]);
  release();
  expect((await answer<{ pid: number }>(starting)).pid).toBe(pid);
  await Bun.sleep(5);
  expect(events).toEqual(["/tasks/create c1/init", "/tasks/start c1/init", "/tasks/exit c1/init"]);
  expect((await answer<{ exitStatus: number }>(impl.wait!({ id: "c1", execId: "" } as never, call))).exitStatus).toBe(3);
});

test("an exec's exit is reported before the exit of the init it died with", async () => {
  const { impl, world, events } = service();
  const pid = await created(impl, "c2");
  await impl.start!({ id: "c2", execId: "" } as never, call);
  await impl.exec!(create(ExecProcessRequestSchema, { id: "c2", execId: "e1", spec: execSpec(["sleep", "9"]) }), call);
  const execPid = (await answer<{ pid: number }>(impl.start!({ id: "c2", execId: "e1" } as never, call))).pid;
  expect(execPid).not.toBe(pid);
  world.exit(pid, 137); // init first, as the kernel may report it
  await Bun.sleep(20);
  world.exit(execPid, 137);
  await Bun.sleep(20);
  expect(events).toEqual(["/tasks/create c2/init", "/tasks/start c2/init", "/tasks/exec-added c2/e1", "/tasks/exec-started c2/e1", "/tasks/exit c2/e1", "/tasks/exit c2/init"]);
});

test("a failed restore leaves nothing in the runtime, refuses a second Start, and Delete frees the id", async () => {
  const { impl, world, events } = service();
  const image = join(dir, "image");
  mkdirSync(image, { recursive: true });
  await created(impl, "c3", { checkpoint: image });
  expect(world.calls).toEqual([]); // a restoring Create runs nothing
  world.fail("restore", "c3", new UnknownError("runc restore failed: criu failed"));
  await expect(Promise.resolve(impl.start!({ id: "c3", execId: "" } as never, call))).rejects.toThrow("criu failed");
  expect(world.calls).toEqual(["restore c3", "delete c3 force"]);
  expect(world.containers.size).toBe(0);
  expect(world.live.size).toBe(0);
  await expect(Promise.resolve(impl.start!({ id: "c3", execId: "" } as never, call))).rejects.toThrow(FailedPreconditionError);
  await impl.delete!({ id: "c3", execId: "" } as never, call);
  expect(events.filter((e) => e.startsWith("/tasks/start"))).toEqual([]);
  await created(impl, "c3");
});

test("kill of a stopped process is NotFound, without asking the runtime; a runtime that finds nothing to signal is NotFound too", async () => {
  const { impl, world } = service();
  const pid = await created(impl, "c4");
  await impl.start!({ id: "c4", execId: "" } as never, call);
  world.fail("kill", "c4", new NotFoundError("process already finished: not found"));
  await expect(Promise.resolve(impl.kill!({ id: "c4", execId: "", signal: 15, all: false } as never, call))).rejects.toThrow(NotFoundError);
  world.exit(pid, 0);
  await impl.wait!({ id: "c4", execId: "" } as never, call);
  const before = world.calls.length;
  await expect(Promise.resolve(impl.kill!({ id: "c4", execId: "", signal: 9, all: false } as never, call))).rejects.toThrow(NotFoundError);
  expect(world.calls.length).toBe(before);
});

test("a create the runtime refuses as 'already exists' force-deletes nothing; any other failure cleans up its own", async () => {
  const { impl, world } = service();
  world.fail("create", "c5", new AlreadyExistsError("runc create failed: container with id exists: c5"));
  await expect(created(impl, "c5")).rejects.toThrow(AlreadyExistsError);
  expect(world.calls).toEqual(["create c5"]);
  world.fail("create", "c6", new UnknownError("runc create failed: exec format error"));
  await expect(created(impl, "c6")).rejects.toThrow("exec format error");
  expect(world.calls).toEqual(["create c5", "create c6", "delete c6 force"]);
});

test("Delete of a running task is refused; of a created one, the runtime kills it and the exit is reported", async () => {
  const { impl, world } = service();
  await created(impl, "c7");
  await impl.start!({ id: "c7", execId: "" } as never, call);
  await expect(Promise.resolve(impl.delete!({ id: "c7", execId: "" } as never, call))).rejects.toThrow(FailedPreconditionError);
  await created(impl, "c8");
  const r = await answer<{ exitStatus: number }>(impl.delete!({ id: "c8", execId: "" } as never, call));
  expect(r.exitStatus).toBe(137);
  expect(world.calls.filter((c) => c.startsWith("delete"))).toEqual(["delete c8"]);
});
