import { expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { InvalidArgumentError } from "../../src/errdefs.ts";
import { TaskDeleteSchema, TaskExitSchema, TaskStartSchema } from "../../src/gen/containerd/events/task_pb.ts";
import { type Envelope, Exchange, matches, publishDeadShimExit, Topics, unpackEvent } from "../../src/runtime/events.ts";

test("subscribers get what their filter selects, in order", () => {
  const ex = new Exchange();
  const all: string[] = [];
  const nsA: string[] = [];
  const exits: string[] = [];
  ex.subscribe({}, (e) => all.push(`${e.namespace}${e.topic}`));
  ex.subscribe({ namespace: "a" }, (e) => nsA.push(e.topic));
  const unsub = ex.subscribe({ topics: [Topics.TaskExit] }, (e) => exits.push(e.namespace));
  ex.subscribe({}, () => {
    throw new Error("a broken subscriber");
  });
  ex.publish("a", Topics.TaskStart, TaskStartSchema, create(TaskStartSchema, { containerId: "c", pid: 1 }));
  ex.publish("b", Topics.TaskExit, TaskExitSchema, create(TaskExitSchema, { containerId: "c" }));
  unsub();
  ex.publish("a", Topics.TaskExit, TaskExitSchema, create(TaskExitSchema, { containerId: "c" }));
  expect(all).toEqual(["a/tasks/start", "b/tasks/exit", "a/tasks/exit"]);
  expect(nsA).toEqual(["/tasks/start", "/tasks/exit"]);
  expect(exits).toEqual(["b"]);
  expect(ex.last).toBe(3n);
});

test("matches: prefixes", () => {
  expect(matches({ topics: ["/tasks/*"] }, { namespace: "x", topic: "/tasks/exit" })).toBe(true);
  expect(matches({ topics: ["/tasks/*"] }, { namespace: "x", topic: "/images/create" })).toBe(false);
});

test("invalid namespace or topic is refused", () => {
  const ex = new Exchange();
  const any = { $typeName: "google.protobuf.Any", typeUrl: "x", value: new Uint8Array() } as const;
  expect(() => ex.forward("../x", "/tasks/exit", any)).toThrow(InvalidArgumentError);
  expect(() => ex.forward("ns", "tasks", any)).toThrow(InvalidArgumentError);
  expect(ex.last).toBe(0n);
});

test("the log is bounded and since() resumes after a seq", () => {
  const ex = new Exchange(3);
  for (let i = 0; i < 5; i++) ex.publish("n", Topics.TaskStart, TaskStartSchema, create(TaskStartSchema, { pid: i }));
  expect(ex.since(0n).map((e) => e.seq)).toEqual([3n, 4n, 5n]);
  expect(ex.since(4n).map((e) => e.seq)).toEqual([5n]);
});

test("poll waits for a matching event, or times out empty", async () => {
  const ex = new Exchange();
  const p = ex.poll(0n, { topics: [Topics.TaskExit] }, 5000);
  ex.publish("n", Topics.TaskStart, TaskStartSchema, create(TaskStartSchema, {}));
  queueMicrotask(() => ex.publish("n", Topics.TaskExit, TaskExitSchema, create(TaskExitSchema, { exitStatus: 3 })));
  const got: Envelope[] = await p;
  expect(got.map((e) => e.topic)).toEqual([Topics.TaskExit]);
  expect(await ex.poll(ex.last, {}, 10)).toEqual([]);
  const ac = new AbortController();
  const aborted = ex.poll(ex.last, {}, 60_000, ac.signal);
  ac.abort();
  expect(await aborted).toEqual([]);
});

test("publishDeadShimExit: TaskExit then TaskDelete", () => {
  const ex = new Exchange();
  const at = new Date(1_700_000_000_000);
  publishDeadShimExit(ex, "ns", "c1", { pid: 42, exitStatus: 255, exitedAt: at });
  const [exit, del] = ex.since(0n);
  expect(exit!.topic).toBe(Topics.TaskExit);
  expect(exit!.event.typeUrl).toBe("containerd.events.TaskExit");
  const e = unpackEvent(exit!.event, TaskExitSchema)!;
  expect([e.containerId, e.id, e.pid, e.exitStatus, Number(e.exitedAt!.seconds)]).toEqual(["c1", "c1", 42, 255, 1_700_000_000]);
  expect(del!.topic).toBe(Topics.TaskDelete);
  expect(unpackEvent(del!.event, TaskDeleteSchema)!.exitStatus).toBe(255);
  expect(unpackEvent(del!.event, TaskExitSchema)).toBeUndefined();
  expect(unpackEvent({ ...exit!.event, typeUrl: "type.googleapis.com/containerd.events.TaskExit" }, TaskExitSchema)!.pid).toBe(42);
});
