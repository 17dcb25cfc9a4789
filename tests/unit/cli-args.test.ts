import { describe, expect, test } from "bun:test";
import { DEFAULT_GLOBALS, DEFAULT_RUNTIME, parseArgs, parseSignal } from "../../src/cli/args.ts";
import { InvalidArgumentError } from "../../src/errdefs.ts";

describe("parseArgs", () => {
  test("run keeps the container command's own flags", () => {
    const p = parseArgs(["run", "--rm", "--env", "A=1", "-e", "B=2", "--label", "k=v", "--rootfs", "/r", "c1", "/bin/ls", "-l", "--rm"]);
    expect(p.globals).toEqual(DEFAULT_GLOBALS);
    expect(p.command).toEqual({
      name: "run",
      opts: { rm: true, detach: false, tty: false, runtime: DEFAULT_RUNTIME, env: ["A=1", "B=2"], labels: { k: "v" }, rootfs: "/r", id: "c1", args: ["/bin/ls", "-l", "--rm"] },
    });
  });

  test("global flags, --flag=value and environment defaults", () => {
    const p = parseArgs(["--root=/x", "--state", "/s", "-n", "ns1", "--debug", "run", "-d", "--log", "/l", "--runtime=/opt/shim", "--rootfs=/r", "c", "sh"], {
      BUNKER_ADDRESS: "/tmp/b.sock",
    });
    expect(p.globals).toEqual({ root: "/x", state: "/s", address: "/tmp/b.sock", namespace: "ns1", debug: true });
    expect(p.command.name === "run" && p.command.opts).toMatchObject({ detach: true, log: "/l", runtime: "/opt/shim" });
  });

  test("exec, kill, rm, logs, ps", () => {
    expect(parseArgs(["exec", "-t", "c", "sh", "-c", "x"]).command).toEqual({ name: "exec", tty: true, detach: false, env: [], id: "c", args: ["sh", "-c", "x"] });
    expect(parseArgs(["kill", "-s", "SIGKILL", "c"]).command).toEqual({ name: "kill", signal: 9, all: false, id: "c" });
    expect(parseArgs(["kill", "c"]).command).toEqual({ name: "kill", signal: 15, all: false, id: "c" });
    expect(parseArgs(["rm", "-f", "a", "b"]).command).toEqual({ name: "rm", force: true, ids: ["a", "b"] });
    expect(parseArgs(["logs", "c"]).command).toEqual({ name: "logs", id: "c", follow: false });
    expect(parseArgs(["ps", "-q"]).command).toEqual({ name: "ps", quiet: true });
    expect(parseArgs([]).command).toEqual({ name: "help", topic: undefined });
  });

  test.each([
    [["run", "c", "sh"], /--rootfs/],
    [["run", "--rootfs", "/r", "c"], /command/],
    [["run", "--rootfs", "/r"], /container id/],
    [["run", "--rm", "-d", "--rootfs", "/r", "c", "sh"], /cannot be combined/],
    [["run", "--log", "/l", "--rootfs", "/r", "c", "sh"], /--detach/],
    [["run", "--env", "NOEQ", "--rootfs", "/r", "c", "sh"], /KEY=VALUE/],
    [["run", "--bogus", "--rootfs", "/r", "c", "sh"], /unknown flag --bogus/],
    [["run", "--rootfs"], /needs a value/],
    [["kill", "-s", "NOPE", "c"], /invalid signal/],
    [["kill", "a", "b"], /unexpected argument/],
    [["frobnicate"], /unknown command/],
    [["--rm", "ps"], /unknown flag/],
  ])("refuses %p", (argv, message) => {
    expect(() => parseArgs(argv)).toThrow(message);
    expect(() => parseArgs(argv)).toThrow(InvalidArgumentError);
  });
});

test("parseSignal", () => {
  expect(parseSignal("9")).toBe(9);
  expect(parseSignal("term")).toBe(15);
  expect(parseSignal("SIGUSR1")).toBe(10);
  expect(() => parseSignal("0")).toThrow(InvalidArgumentError);
  expect(() => parseSignal("65")).toThrow(InvalidArgumentError);
});
