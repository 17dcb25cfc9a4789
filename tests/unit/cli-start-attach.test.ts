// `bunker start -a`'s parsing (docker's -a/--attach, one container only) and the --since form that
// makes it follow only the run it started.
import { describe, expect, test } from "bun:test";
import { parseArgs } from "../../src/cli/args.ts";
import { parseTimeArg } from "../../src/cli/log-time.ts";
import { unixSecondsArg } from "../../src/cli/start-attach.ts";

describe("start -a", () => {
  test("parses -a and --attach; without them start is as before", () => {
    expect(parseArgs(["start", "-a", "c"]).command).toEqual({ name: "start", ids: ["c"], attach: true });
    expect(parseArgs(["start", "--attach", "c"]).command).toEqual({ name: "start", ids: ["c"], attach: true });
    expect(parseArgs(["start", "a", "b"]).command).toEqual({ name: "start", ids: ["a", "b"] });
  });

  test("one container only, as docker", () => {
    expect(() => parseArgs(["start", "-a", "a", "b"])).toThrow("you cannot start and attach multiple containers at once");
    expect(() => parseArgs(["start", "-a"])).toThrow("a container id is required");
  });

  test("the start time goes to --since whole, to the nanosecond", () => {
    for (const ns of [1_700_000_000_123_456_789n, 1_700_000_000_000_000_001n, 5n]) expect(parseTimeArg(unixSecondsArg(ns), 0n, "--since")).toBe(ns);
  });
});
