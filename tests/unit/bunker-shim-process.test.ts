import { describe, expect, test } from "bun:test";
import { FailedPreconditionError, NotFoundError } from "../../src/errdefs.ts";
import { ProcessState } from "../../src/shims/bunker/process.ts";

describe("process state machine", () => {
  test("created -> running -> paused -> running -> stopped -> deleted", () => {
    const p = new ProcessState("c");
    expect(p.status).toBe("created");
    p.apply("start");
    expect(p.status).toBe("running");
    p.apply("pause");
    expect(p.status).toBe("paused");
    p.apply("resume");
    expect(p.status).toBe("running");
    p.setExited(7);
    expect(p.status).toBe("stopped");
    expect(p.exited?.exitStatus).toBe(7);
    p.apply("delete");
    expect(p.status).toBe("deleted");
  });

  test("refusals are FailedPrecondition with containerd's wording", () => {
    const p = new ProcessState("c");
    expect(() => p.check("pause")).toThrow(new FailedPreconditionError("cannot pause task in created state"));
    p.apply("start");
    expect(() => p.check("start")).toThrow("cannot start a running process");
    expect(() => p.check("delete")).toThrow(FailedPreconditionError);
    p.apply("pause");
    expect(() => p.check("delete")).toThrow("cannot delete a paused process");
    expect(() => p.check("exec")).toThrow(FailedPreconditionError);
    p.setExited(137);
    expect(() => p.check("start")).toThrow("cannot start a stopped process");
    expect(() => p.check("update")).toThrow(FailedPreconditionError);
    p.apply("delete");
    expect(() => p.check("delete")).toThrow(FailedPreconditionError);
  });

  test("signalling a finished process is NotFound", () => {
    const p = new ProcessState("c");
    p.apply("start");
    p.check("kill");
    p.setExited(0);
    expect(() => p.check("kill")).toThrow(NotFoundError);
    p.apply("delete");
    expect(() => p.check("kill")).toThrow(NotFoundError);
  });

  test("a created process can be deleted without starting", () => {
    const p = new ProcessState("c");
    p.apply("delete");
    expect(p.status).toBe("deleted");
  });

  test("an exit that races an operation wins", () => {
    const p = new ProcessState("c");
    p.check("start");
    p.setExited(0); // the container ended while `runc start` was still replying
    p.apply("start");
    expect(p.status).toBe("stopped");
  });

  test("wait blocks from created on and resolves once with the first exit", async () => {
    const p = new ProcessState("c");
    let resolved = false;
    const w = p.wait().then((e) => {
      resolved = true;
      return e;
    });
    await Promise.resolve();
    expect(resolved).toBe(false);
    const at = new Date(1_700_000_000_000);
    p.setExited(3, at);
    p.setExited(9);
    expect(await w).toEqual({ exitStatus: 3, exitedAt: at });
    expect(await p.wait()).toEqual({ exitStatus: 3, exitedAt: at });
  });
});
