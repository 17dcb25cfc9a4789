// Go's path.Dir and path.Base as the shim's start path computes them (src/gopath.ts): the
// socket's directory and the address file's temporary name must match what node:path gave before.
import { describe, expect, test } from "bun:test";
import { goBase, goClean, goDir, goJoin } from "../../src/gopath.ts";

describe("gopath", () => {
  test("goDir is Go's path.Dir", () => {
    expect(goDir("/run/containerd/s/abc")).toBe("/run/containerd/s");
    expect(goDir("/a")).toBe("/");
    expect(goDir("/a/b/")).toBe("/a/b");
    expect(goDir("a")).toBe(".");
    expect(goDir("")).toBe(".");
    expect(goDir("//x//y")).toBe("/x");
  });
  test("goBase is Go's path.Base", () => {
    expect(goBase("/bundle/address")).toBe("address");
    expect(goBase("/a/b//")).toBe("b");
    expect(goBase("/")).toBe("/");
    expect(goBase("///")).toBe("/");
    expect(goBase("")).toBe(".");
    expect(goBase("x")).toBe("x");
  });
  test("goJoin skips empty elements and cleans", () => {
    expect(goJoin()).toBe("");
    expect(goJoin("", "")).toBe("");
    expect(goJoin("a", "", "b")).toBe("a/b");
    expect(goJoin("", "/a")).toBe("/a");
    expect(goJoin("/run", "containerd", "../x")).toBe("/run/x");
    expect(goClean("a//b/")).toBe("a/b");
  });
});
