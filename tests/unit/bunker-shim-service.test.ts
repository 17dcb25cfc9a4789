// The task service's request handling that needs no container: lookups, refusals, reservations,
// Shutdown. Container lifecycles against real runc and containerd are in tests/integration/shim*.
import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, ResourceExhaustedError, UnavailableError } from "../../src/errdefs.ts";
import { CreateTaskRequestSchema } from "../../src/gen/containerd/task/v2/shim_pb.ts";
import { Status } from "../../src/gen/containerd/types/task/task_pb.ts";
import { MAX_RESERVATIONS, RuncTaskService } from "../../src/shims/bunker/service.ts";
import type { Publisher } from "../../src/shim/publisher.ts";
import { FakeSyscalls } from "../../src/sys/index.ts";
import { testServeContext } from "../support/serve-context.ts";
import type { CallContext } from "../../src/ttrpc/server.ts";

function service() {
  const published: string[] = [];
  const publisher: Publisher = { publish: (topic) => void published.push(topic), flush: async () => {}, close() {} };
  let svc: RuncTaskService | undefined;
  const fake = new FakeSyscalls();
  const ctx = testServeContext({ fake, publisher, containerCount: () => svc?.containerCount() ?? 0 });
  const lifecycle = ctx.lifecycle;
  svc = new RuncTaskService(ctx, fake);
  return { svc, impl: svc.impl, lifecycle, published, fake };
}

const call = {} as CallContext;

describe("runc task service without containers", () => {
  test("requests for unknown containers are NotFound", async () => {
    const { impl } = service();
    expect(() => impl.state!({ id: "nope", execId: "" } as never, call)).toThrow(NotFoundError);
    await expect(Promise.resolve().then(() => impl.kill!({ id: "nope", execId: "", signal: 9, all: false } as never, call))).rejects.toThrow(NotFoundError);
    await expect(Promise.resolve().then(() => impl.wait!({ id: "nope", execId: "" } as never, call))).rejects.toThrow(NotFoundError);
  });

  test("checkpoint, exec, stats, exec state of unknown containers are NotFound; restore from no directory is InvalidArgument", async () => {
    const { impl } = service();
    await expect(Promise.resolve().then(() => impl.checkpoint!({ id: "x", path: "/tmp/cp" } as never, call))).rejects.toThrow(NotFoundError);
    expect(() => impl.exec!({ id: "x", execId: "e1" } as never, call)).toThrow(NotFoundError);
    expect(() => impl.stats!({ id: "x" } as never, call)).toThrow(NotFoundError);
    expect(() => impl.state!({ id: "x", execId: "e1" } as never, call)).toThrow(NotFoundError);
    const restore = create(CreateTaskRequestSchema, { id: "r1", bundle: "/tmp/b", checkpoint: "/nonexistent/cp" });
    await expect(Promise.resolve().then(() => impl.create!(restore, call))).rejects.toThrow(InvalidArgumentError);
  });

  test("a bad Create fails alone: nothing published, nothing left counted", async () => {
    const { impl, svc, published } = service();
    const bad = create(CreateTaskRequestSchema, { id: "../escape", bundle: "/tmp/b" });
    await expect(Promise.resolve().then(() => impl.create!(bad, call))).rejects.toThrow("must match");
    const relative = create(CreateTaskRequestSchema, { id: "ok", bundle: "relative/b" });
    await expect(Promise.resolve().then(() => impl.create!(relative, call))).rejects.toThrow("must be absolute");
    expect(published).toEqual([]);
    expect(svc.containerCount()).toBe(0);
  });

  test("Connect for an unknown id reserves the shim; Shutdown then waits; a stopping shim refuses", async () => {
    const { impl, lifecycle } = service();
    const r = impl.connect!({ id: "soon" } as never, call) as { shimPid: number; taskPid: number };
    expect(r).toEqual({ shimPid: process.pid, taskPid: 0 });
    expect(lifecycle.reserved).toBe(1);
    impl.shutdown!({ id: "other", now: false } as never, call);
    expect(lifecycle.shuttingDown).toBe(false);
    lifecycle.release("soon");
    impl.shutdown!({ id: "other", now: false } as never, call);
    expect(lifecycle.shuttingDown).toBe(true);
    expect(() => impl.connect!({ id: "late" } as never, call)).toThrow(UnavailableError);
    await lifecycle.done;
  });

  test("Connect reserves only valid ids, and only a bounded number at once", () => {
    const { impl, lifecycle } = service();
    expect(() => impl.connect!({ id: "x".repeat(1024) } as never, call)).toThrow(InvalidArgumentError);
    expect(() => impl.connect!({ id: "../up" } as never, call)).toThrow(InvalidArgumentError);
    expect(lifecycle.reserved).toBe(0);
    for (let i = 0; i < MAX_RESERVATIONS; i++) impl.connect!({ id: `c${i}` } as never, call);
    expect(lifecycle.reserved).toBe(MAX_RESERVATIONS);
    expect(() => impl.connect!({ id: "onemore" } as never, call)).toThrow(ResourceExhaustedError);
    // renewing a held reservation is not a new one
    expect(impl.connect!({ id: "c0" } as never, call)).toEqual({ shimPid: process.pid, taskPid: 0 });
    expect(lifecycle.reserved).toBe(MAX_RESERVATIONS);
    lifecycle.stop();
  });

  test("a restoring Create runs nothing yet (go: createCheckpointedState): pid 0, TaskCreate, created; exec and checkpoint refused", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bunker-svc-restore-"));
    try {
      mkdirSync(join(dir, "cp"));
      mkdirSync(join(dir, "bundle"));
      const { impl, svc, published } = service();
      const req = create(CreateTaskRequestSchema, { id: "r1", bundle: join(dir, "bundle"), checkpoint: join(dir, "cp") });
      expect(await impl.create!(req, call)).toEqual({ pid: 0 });
      expect(published).toEqual(["/tasks/create"]);
      expect(svc.containerCount()).toBe(1);
      const state = (await impl.state!({ id: "r1", execId: "" } as never, call)) as { pid: number; status: number };
      expect({ pid: state.pid, status: state.status }).toEqual({ pid: 0, status: Status.CREATED });
      expect(() => impl.exec!({ id: "r1", execId: "e1" } as never, call)).toThrow(new FailedPreconditionError("cannot exec in a created state"));
      await expect(Promise.resolve().then(() => impl.checkpoint!({ id: "r1", path: join(dir, "cp2") } as never, call))).rejects.toThrow(
        "cannot checkpoint a task in created state",
      );
      expect(published).toEqual(["/tasks/create"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
