// The executor's contract at its edges, without containers: bad options and inputs are refused
// with InvalidArgument before anything happens, failed calls end the outputs, and a daemon that is
// not there is Unavailable.
import { afterAll, afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import pino from "pino";
import { InvalidArgumentError, NotFoundError, UnavailableError } from "../../src/errdefs.ts";
import { Executor, type ExecutorOptions } from "../../src/executor/index.ts";

const dir = mkdtempSync("/tmp/bunker-executor-api-");
const open: Executor[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((e) => e.close()));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const base: ExecutorOptions = {
  address: join(dir, "nobody-listens.sock"),
  namespace: "plugins",
  rootDir: join(dir, "root"),
  exitHandler: { handleExitEvent: () => undefined },
  logger: pino({ level: "silent" }),
};

function make(o: Partial<ExecutorOptions> = {}): Executor {
  const e = new Executor({ ...base, ...o });
  open.push(e);
  return e;
}

test("options are checked up front", () => {
  const bad: [Partial<ExecutorOptions>, RegExp][] = [
    [{ address: undefined }, /exactly one of manager and address/],
    [{ manager: {} as never }, /exactly one of manager and address/],
    [{ namespace: "a/b" }, /namespace/],
    [{ rootDir: "relative" }, /rootDir must be an absolute path/],
    [{ stateDir: "run" }, /stateDir must be an absolute path/],
    [{ exitHandler: {} as never }, /handleExitEvent is required/],
    [{ runtime: "no such runtime" }, /must look like io.containerd.NAME.VERSION/],
  ];
  for (const [o, msg] of bad) {
    expect(() => make(o)).toThrow(InvalidArgumentError);
    expect(() => make(o)).toThrow(msg);
  }
});

test("bad ids, specs and signals are InvalidArgument; a failed create ends its outputs", async () => {
  const e = make();
  const ended: string[] = [];
  const cb = (name: string) => (c: Uint8Array | null) => void (c === null && ended.push(name));
  await expect(e.create("../x", { root: { path: "/r" }, process: { args: ["true"] } }, cb("a"), cb("b"))).rejects.toThrow(InvalidArgumentError);
  await expect(e.create("x", { root: { path: "rel" }, process: { args: ["true"] } }, cb("c"), null)).rejects.toThrow(/root.path/);
  expect(ended).toEqual(["a", "b", "c"]);
  await expect(e.signal("x", 0)).rejects.toThrow(InvalidArgumentError);
  await expect(e.restore("a..b", null, null)).rejects.toThrow(InvalidArgumentError);
});

test("without a daemon: Unavailable, naming the address; a missing runtime config is NotFound", async () => {
  const e = make();
  const ended: string[] = [];
  await expect(e.isRunning("x")).rejects.toThrow(UnavailableError);
  await expect(e.restore("x", (c) => void (c === null && ended.push("out")), null)).rejects.toThrow(/nobody-listens.sock is not reachable/);
  expect(ended).toEqual(["out"]);
  const spec = { root: { path: "/r" }, process: { args: ["true"] } };
  await expect(make({ runtimeConfig: join(dir, "missing.toml") }).create("x", spec, null, null)).rejects.toThrow(NotFoundError);
});
