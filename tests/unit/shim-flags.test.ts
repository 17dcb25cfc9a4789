import { describe, expect, test } from "bun:test";
import { InvalidArgumentError } from "../../src/errdefs.ts";
import { FlagHelpError, parseFlags, serveArgs } from "../../src/shim/flags.ts";

describe("shim flags (Go flag package semantics)", () => {
  test("containerd's start command line", () => {
    // runtime/v2/shim/util.go Command + binary.go Start
    const f = parseFlags(["-namespace", "default", "-address", "/run/containerd/containerd.sock", "-publish-binary", "/usr/bin/containerd", "-id", "c1", "-debug", "start"]);
    expect(f).toMatchObject({ namespace: "default", address: "/run/containerd/containerd.sock", publishBinary: "/usr/bin/containerd", id: "c1", debug: true, action: "start", rest: [] });
  });

  test("containerd's delete command line carries -bundle", () => {
    const f = parseFlags(["-namespace", "ns", "-address", "/a", "-publish-binary", "/c", "-id", "x", "-bundle", "/run/b/x", "delete"]);
    expect(f.bundle).toBe("/run/b/x");
    expect(f.action).toBe("delete");
  });

  test("no action means serve; defaults match Go", () => {
    const f = parseFlags(["-namespace", "ns", "-id", "x", "-socket", "unix:///run/containerd/s/ab"]);
    expect(f.action).toBe("");
    expect(f.socket).toBe("unix:///run/containerd/s/ab");
    expect(f.publishBinary).toBe("containerd");
    expect(f.debug).toBe(false);
    expect(f.version).toBe(false);
  });

  test("-flag=value, --flag value and --flag=value", () => {
    expect(parseFlags(["-id=a"]).id).toBe("a");
    expect(parseFlags(["--id", "b"]).id).toBe("b");
    expect(parseFlags(["--id=c"]).id).toBe("c");
    expect(parseFlags(["-id="]).id).toBe("");
    expect(parseFlags(["-id", "x=y"]).id).toBe("x=y");
  });

  test("a string flag takes the next argument even when it looks like a flag", () => {
    const f = parseFlags(["-id", "-debug", "start"]);
    expect(f.id).toBe("-debug");
    expect(f.debug).toBe(false);
    expect(f.action).toBe("start");
  });

  test("bool flags never consume the next argument and accept strconv.ParseBool values", () => {
    const f = parseFlags(["-debug", "start"]);
    expect(f.debug).toBe(true);
    expect(f.action).toBe("start");
    expect(parseFlags(["-debug=false"]).debug).toBe(false);
    expect(parseFlags(["-debug=T"]).debug).toBe(true);
    expect(parseFlags(["-debug=0"]).debug).toBe(false);
    expect(parseFlags(["-v"]).version).toBe(true);
    expect(() => parseFlags(["-debug=yes"])).toThrow(InvalidArgumentError);
  });

  test("parsing stops at the first non-flag, at a lone '-' and after '--'", () => {
    const a = parseFlags(["-id", "x", "start", "-debug"]);
    expect(a.action).toBe("start");
    expect(a.rest).toEqual(["-debug"]);
    expect(a.debug).toBe(false);
    expect(parseFlags(["-", "-debug"]).action).toBe("-");
    const b = parseFlags(["--", "-debug"]);
    expect(b.action).toBe("-debug");
    expect(b.debug).toBe(false);
  });

  test("errors are Go's", () => {
    expect(() => parseFlags(["-bogus"])).toThrow("flag provided but not defined: -bogus");
    expect(() => parseFlags(["-id"])).toThrow("flag needs an argument: -id");
    expect(() => parseFlags(["---id", "x"])).toThrow("bad flag syntax: ---id");
    expect(() => parseFlags(["-=x"])).toThrow("bad flag syntax: -=x");
    expect(() => parseFlags(["-h"])).toThrow(FlagHelpError);
    expect(() => parseFlags(["--help"])).toThrow(FlagHelpError);
  });

  test("serveArgs round-trips through the parser with the socket", () => {
    const f = parseFlags(["-namespace", "ns", "-address", "/a.sock", "-publish-binary", "/usr/bin/containerd", "-id", "c", "-debug", "start"]);
    const again = parseFlags(serveArgs(f, "unix:///run/containerd/s/ff"));
    expect(again).toMatchObject({ namespace: "ns", address: "/a.sock", publishBinary: "/usr/bin/containerd", id: "c", debug: true, socket: "unix:///run/containerd/s/ff", action: "" });
  });
});
