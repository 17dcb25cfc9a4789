// The executor's pure parts: which exit events count, the event cursor across daemon restarts,
// the spec/runtime/signal conversions.
import { describe, expect, test } from "bun:test";
import { fromBinary } from "@bufbuild/protobuf";
import { InvalidArgumentError, NotFoundError } from "../../src/errdefs.ts";
import { OptionsSchema } from "../../src/gen/containerd/runc/v1/options_pb.ts";
import { applyShimGroup, parseRuntimeConfig } from "../../src/config/runtime-config.ts";
import { isTrackedInitExit, nextCursor } from "../../src/executor/exits.ts";
import { parseSignal, prepareSpec, resolveRuntime, withShimGroup } from "../../src/executor/request.ts";

const exit = (o: Partial<{ containerId: string; id: string; pid: number; exitedAt: Date }> = {}) => ({
  containerId: "c1",
  id: "c1",
  pid: 42,
  exitedAt: new Date(2_000),
  ...o,
});

describe("isTrackedInitExit", () => {
  test("with a known pid: the same pid, or 0 (a dead shim's report)", () => {
    const t = { pid: 42, since: 1_000 };
    expect(isTrackedInitExit(t, exit())).toBe(true);
    expect(isTrackedInitExit(t, exit({ pid: 0 }))).toBe(true);
    // A replayed exit of an earlier incarnation with the same id.
    expect(isTrackedInitExit(t, exit({ pid: 41 }))).toBe(false);
  });

  test("an exec's exit never ends the container", () => {
    expect(isTrackedInitExit({ pid: 42, since: 0 }, exit({ id: "exec-1" }))).toBe(false);
    expect(isTrackedInitExit({ pid: undefined, since: 0 }, exit({ id: "exec-1" }))).toBe(false);
    expect(isTrackedInitExit({ pid: 42, since: 0 }, exit({ id: "" }))).toBe(true);
  });

  test("before Start answered: only exits not older than our Create", () => {
    const t = { pid: undefined, since: 2_000 };
    expect(isTrackedInitExit(t, exit({ exitedAt: new Date(2_000) }))).toBe(true);
    expect(isTrackedInitExit(t, exit({ exitedAt: new Date(1_999) }))).toBe(false);
    expect(isTrackedInitExit(t, { ...exit(), exitedAt: undefined })).toBe(true);
  });
});

describe("nextCursor", () => {
  test("follows the daemon's newest seq", () => {
    expect(nextCursor(0n, 0n)).toBe(0n);
    expect(nextCursor(5n, 9n)).toBe(9n);
    expect(nextCursor(9n, 9n)).toBe(9n);
  });
  test("a seq below ours means a restarted daemon: start over", () => {
    expect(nextCursor(9n, 3n)).toBe(0n);
  });
});

describe("prepareSpec", () => {
  const spec = { ociVersion: "1.0.2", process: { args: ["sh"], terminal: false }, root: { path: "/srv/rootfs", readonly: true } };

  test("root.path becomes the bundle's rootfs; the caller's object is untouched", () => {
    const p = prepareSpec(spec);
    expect(p.rootfs).toBe("/srv/rootfs");
    expect(p.terminal).toBe(false);
    expect(JSON.parse(new TextDecoder().decode(p.json))).toEqual({ ...spec, root: { path: "rootfs", readonly: true } });
    expect(spec.root.path).toBe("/srv/rootfs");
    expect(prepareSpec({ ...spec, process: { args: ["sh"], terminal: true } }).terminal).toBe(true);
  });

  test("bad specs are InvalidArgument", () => {
    const bad: [unknown, RegExp][] = [
      [null, /must be an object/],
      [[], /must be an object/],
      [{ ...spec, root: { path: "rootfs" } }, /absolute path/],
      [{ ...spec, root: undefined }, /root.path/],
      [{ ...spec, process: { args: [] } }, /process.args/],
      [{ ...spec, n: 1n }, /cannot be serialized/],
    ];
    for (const [s, msg] of bad) {
      expect(() => prepareSpec(s)).toThrow(InvalidArgumentError);
      expect(() => prepareSpec(s)).toThrow(msg);
    }
  });
});

describe("resolveRuntime", () => {
  test("without a config: the default, the built-in names, types and paths as given", () => {
    expect(resolveRuntime(undefined, undefined)).toEqual({ runtime: "io.containerd.bunker.v1", options: undefined });
    expect(resolveRuntime("runc", undefined)).toEqual({ runtime: "io.containerd.runc.v2", options: undefined });
    expect(resolveRuntime("bunker", undefined)).toEqual({ runtime: "io.containerd.bunker.v1", options: undefined });
    expect(resolveRuntime("io.containerd.runc.v2", undefined).runtime).toBe("io.containerd.runc.v2");
    expect(resolveRuntime("/opt/shim", undefined).runtime).toBe("/opt/shim");
    expect(() => resolveRuntime("not a runtime", undefined)).toThrow(InvalidArgumentError);
  });

  test("through a config: the named or default runtime, its path, its options as the shim's Any", () => {
    const config = parseRuntimeConfig(`
default_runtime_name = "fast"
[runtimes.fast]
runtime_type = "io.containerd.runc.v2"
[runtimes.fast.options]
SystemdCgroup = true
BinaryName = "/usr/sbin/runc"
[runtimes.custom]
runtime_type = "io.containerd.bunker.v1"
runtime_path = "/opt/bunker/containerd-shim-bunker-v1"
`);
    const fast = resolveRuntime(undefined, config);
    expect(fast.runtime).toBe("io.containerd.runc.v2");
    expect(fast.options?.typeUrl).toBe("containerd.runc.v1.Options");
    const opts = fromBinary(OptionsSchema, fast.options!.value);
    expect([opts.systemdCgroup, opts.binaryName]).toEqual([true, "/usr/sbin/runc"]);
    expect(resolveRuntime("custom", config)).toEqual({ runtime: "/opt/bunker/containerd-shim-bunker-v1", options: undefined });
    expect(() => resolveRuntime("missing", config)).toThrow(NotFoundError);
  });
});

describe("parseSignal", () => {
  test("numbers and names", () => {
    expect(parseSignal(9)).toBe(9);
    expect(parseSignal("15")).toBe(15);
    expect(parseSignal("SIGTERM")).toBe(15);
    expect(parseSignal("kill")).toBe(9);
    expect(parseSignal("HUP")).toBe(1);
  });
  test("0, out of range and unknown names are refused", () => {
    for (const s of [0, -1, 65, 1.5, "SIGNOPE", "", "0"]) expect(() => parseSignal(s)).toThrow(InvalidArgumentError);
  });
});

describe("shim_group of the runtime config -> the spec's annotations", () => {
  const perContainer = parseRuntimeConfig('shim_group = "container"');
  const perNamespace = parseRuntimeConfig('shim_group = "namespace"');
  const BUNKER = "io.containerd.bunker.v1.group";

  test.each([
    ["no config", undefined, { a: "1" }, { a: "1" }],
    ["namespace (bunker's shim default) adds nothing", perNamespace, { a: "1" }, { a: "1" }],
    ["container, no group named: bunker's group annotation", perContainer, { a: "1" }, { a: "1", [BUNKER]: "container" }],
    ["container, a CRI sandbox id wins", perContainer, { "io.kubernetes.cri.sandbox-id": "p" }, { "io.kubernetes.cri.sandbox-id": "p" }],
    ["container, runc's group wins", perContainer, { "io.containerd.runc.v2.group": "g" }, { "io.containerd.runc.v2.group": "g" }],
    ["container, an explicit bunker group wins", perContainer, { [BUNKER]: "namespace" }, { [BUNKER]: "namespace" }],
    ["container, an empty sandbox id names no group", perContainer, { "io.kubernetes.cri.sandbox-id": "" }, { "io.kubernetes.cri.sandbox-id": "", [BUNKER]: "container" }],
  ])("%s", (_, config, annotations, want) => {
    const before = { ...annotations };
    expect(applyShimGroup(config, annotations)).toEqual(want);
    expect(annotations).toEqual(before);
  });

  test("withShimGroup rewrites the prepared spec only when it has to", () => {
    const prepared = prepareSpec({ process: { args: ["sh"] }, root: { path: "/r" } });
    expect(withShimGroup(prepared, perNamespace)).toBe(prepared);
    const shaped = withShimGroup(prepared, perContainer);
    expect(JSON.parse(new TextDecoder().decode(shaped.json))).toEqual({ process: { args: ["sh"] }, root: { path: "rootfs" }, annotations: { [BUNKER]: "container" } });
    expect(shaped.rootfs).toBe("/r");
  });
});
