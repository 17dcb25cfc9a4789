import { describe, expect, test } from "bun:test";
import { fromBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InvalidArgumentError, NotFoundError } from "../../src/errdefs.ts";
import { OptionsSchema } from "../../src/gen/containerd/runc/v1/options_pb.ts";
import {
  GENERIC_OPTIONS_TYPE_URL,
  RUNC_OPTIONS_TYPE_URL,
  RUNTIME_BUNKER_V1,
  RUNTIME_RUNC_V2,
  defaultRuntimeConfig,
  generateRuntimeOptions,
  getRuntime,
  loadRuntimeConfig,
  marshalRuntimeOptions,
  parseRuntimeConfig,
  type RuntimeEntry,
} from "../../src/config/runtime-config.ts";
import { marshalToml } from "../../src/config/toml.ts";

const FULL = `
default_runtime_name = "runc"
shim_group = "container"

[runtimes.runc]
runtime_type = "io.containerd.runc.v2"
runtime_path = "/usr/bin/containerd-shim-runc-v2"
pod_annotations = ["io.kubernetes.cri.*", "example.com/*"]
container_annotations = ["example.com/gpu"]
privileged_without_host_devices = true
[runtimes.runc.options]
BinaryName = "/usr/sbin/runc"
SystemdCgroup = true
IoUid = 1000
IoGid = 1001
Root = "/run/runc-k8s"
NoPivotRoot = true
NoNewKeyring = true
ShimCgroup = "/shims"
CriuPath = "/usr/sbin/criu"
CriuImagePath = "/var/criu/img"
CriuWorkPath = "/var/criu/work"

[runtimes.gvisor]
runtime_type = "io.containerd.runsc.v1"
[runtimes.gvisor.options]
TypeUrl = "io.containerd.runsc.v1.options"
debug = true
[runtimes.gvisor.options.net]
mode = "sandbox"
`;

describe("parseRuntimeConfig", () => {
  test("a full config", () => {
    const c = parseRuntimeConfig(FULL);
    expect(c.defaultRuntimeName).toBe("runc");
    expect(c.shimGroup).toBe("container");
    expect(Object.keys(c.runtimes).sort()).toEqual(["bunker", "gvisor", "runc"]); // the built-in bunker stays
    const runc = getRuntime(c);
    expect(runc).toMatchObject({
      name: "runc",
      type: RUNTIME_RUNC_V2,
      path: "/usr/bin/containerd-shim-runc-v2",
      podAnnotations: ["io.kubernetes.cri.*", "example.com/*"],
      containerAnnotations: ["example.com/gpu"],
      privilegedWithoutHostDevices: true,
    });
    expect(getRuntime(c, "gvisor").type).toBe("io.containerd.runsc.v1");
  });

  test("an empty file gives the defaults: bunker by default, runc available, grouping by namespace", () => {
    const c = parseRuntimeConfig("");
    expect(c).toEqual(defaultRuntimeConfig());
    expect(getRuntime(c).type).toBe(RUNTIME_BUNKER_V1);
    expect(getRuntime(c, "runc").type).toBe(RUNTIME_RUNC_V2);
    expect(c.shimGroup).toBe("namespace");
  });

  test("an absolute runtime_type is accepted", () => {
    const c = parseRuntimeConfig('[runtimes.x]\nruntime_type = "/opt/bin/containerd-shim-x-v1"');
    expect(getRuntime(c, "x").type).toBe("/opt/bin/containerd-shim-x-v1");
  });

  test.each([
    ["TOML syntax", "a = ", /runtime config: /],
    ["unknown top-level key", 'snapshotter = "overlayfs"', /unknown key "snapshotter"/],
    ["unknown runtime key", '[runtimes.r]\nruntime_type = "io.containerd.runc.v2"\nruntime_engine = "x"', /unknown key "runtime_engine"/],
    ["missing runtime_type", "[runtimes.r]\nruntime_path = '/x'", /runtime_type is required/],
    ["runtime_type not a string", "[runtimes.r]\nruntime_type = 2", /runtime_type must be a string, got a number/],
    ["runtime_type without dots", '[runtimes.r]\nruntime_type = "runc"', /must look like io.containerd.NAME.VERSION/],
    ["runtime_type relative path", '[runtimes.r]\nruntime_type = "bin/shim.v1"', /path separator/],
    ["v1 linux runtime", '[runtimes.r]\nruntime_type = "io.containerd.runtime.v1.linux"', /v1 shims are not supported/],
    ["relative runtime_path", '[runtimes.r]\nruntime_type = "io.containerd.runc.v2"\nruntime_path = "shim"', /must be absolute/],
    ["pod_annotations not an array", '[runtimes.r]\nruntime_type = "io.containerd.runc.v2"\npod_annotations = "a.*"', /array of strings/],
    ["pod_annotations item", '[runtimes.r]\nruntime_type = "io.containerd.runc.v2"\npod_annotations = [1]', /pod_annotations\[0\] must be a string/],
    ["malformed glob", '[runtimes.r]\nruntime_type = "io.containerd.runc.v2"\ncontainer_annotations = ["a[" ]', /syntax error in pattern "a\["/],
    ["privileged flag type", '[runtimes.r]\nruntime_type = "io.containerd.runc.v2"\nprivileged_without_host_devices = "yes"', /must be a boolean/],
    ["options not a table", '[runtimes.r]\nruntime_type = "io.containerd.runc.v2"\noptions = 3', /options must be a table/],
    ["runtimes not a table", "runtimes = 1", /runtimes must be a table/],
    ["runtime not a table", "[runtimes]\nr = 1", /\[runtimes.r\] must be a table/],
    ["default runtime missing", 'default_runtime_name = "kata"', /no runtime configured for default_runtime_name "kata"/],
    ["bad shim_group", 'shim_group = "pod"', /shim_group must be one of namespace, container/],
    ["shim_group type", "shim_group = true", /shim_group must be a string/],
    ["runc option wrong type", '[runtimes.r]\nruntime_type = "io.containerd.runc.v2"\n[runtimes.r.options]\nSystemdCgroup = "true"', /SystemdCgroup must be a boolean, got a string/],
    ["runc uid out of range", '[runtimes.r]\nruntime_type = "io.containerd.runc.v2"\n[runtimes.r.options]\nIoUid = -1', /IoUid must be an integer from 0 to 4294967295/],
    ["runc unknown option", '[runtimes.r]\nruntime_type = "io.containerd.bunker.v1"\n[runtimes.r.options]\nSystemdCgroups = true', /unknown runc option "SystemdCgroups"/],
    ["two spellings of one field", '[runtimes.r]\nruntime_type = "io.containerd.runc.v2"\n[runtimes.r.options]\nRoot = "/a"\nroot = "/b"', /Root and root both set Root/],
    ["generic ConfigPath type", '[runtimes.r]\nruntime_type = "io.containerd.kata.v2"\n[runtimes.r.options]\nConfigPath = 1', /ConfigPath must be a string/],
  ])("refuses: %s", (_name, text, message) => {
    expect(() => parseRuntimeConfig(text)).toThrow(InvalidArgumentError);
    expect(() => parseRuntimeConfig(text)).toThrow(message);
  });

  test("getRuntime names what is configured", () => {
    expect(() => getRuntime(defaultRuntimeConfig(), "kata")).toThrow(NotFoundError);
    expect(() => getRuntime(defaultRuntimeConfig(), "kata")).toThrow(/have bunker, runc/);
  });
});

describe("loadRuntimeConfig", () => {
  test("reads a file, and a missing file is NotFound", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bunker-cri-"));
    try {
      const path = join(dir, "runtimes.toml");
      writeFileSync(path, FULL);
      expect((await loadRuntimeConfig(path)).defaultRuntimeName).toBe("runc");
      await expect(loadRuntimeConfig(join(dir, "absent.toml"))).rejects.toThrow(NotFoundError);
      writeFileSync(path, "shim_group = 1");
      await expect(loadRuntimeConfig(path)).rejects.toThrow(new RegExp(`^${path}: shim_group must be a string`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function runtime(type: string, options?: Record<string, unknown>): RuntimeEntry {
  const text = `[runtimes.r]\nruntime_type = ${JSON.stringify(type)}\n`;
  const entry = getRuntime(parseRuntimeConfig(text), "r");
  return options === undefined ? entry : { ...entry, options: options as RuntimeEntry["options"] };
}

describe("generateRuntimeOptions", () => {
  test("no options table: nothing to send", () => {
    expect(generateRuntimeOptions(runtime(RUNTIME_RUNC_V2))).toBeNull();
    expect(generateRuntimeOptions(runtime("io.containerd.kata.v2"))).toBeNull();
  });

  test("runc runtime types decode every field of containerd.runc.v1.Options", () => {
    const c = parseRuntimeConfig(FULL);
    const generated = generateRuntimeOptions(getRuntime(c, "runc"));
    expect(generated?.typeUrl).toBe(RUNC_OPTIONS_TYPE_URL);
    expect(generated?.options).toMatchObject({
      noPivotRoot: true,
      noNewKeyring: true,
      shimCgroup: "/shims",
      ioUid: 1000,
      ioGid: 1001,
      binaryName: "/usr/sbin/runc",
      root: "/run/runc-k8s",
      criuPath: "/usr/sbin/criu",
      systemdCgroup: true,
      criuImagePath: "/var/criu/img",
      criuWorkPath: "/var/criu/work",
    });
  });

  test.each(["io.containerd.runc.v1", "io.containerd.runc.v2", "io.containerd.bunker.v1"])("%s takes runc options", (type) => {
    expect(generateRuntimeOptions(runtime(type, { SystemdCgroup: true }))?.typeUrl).toBe(RUNC_OPTIONS_TYPE_URL);
  });

  test("go-toml's other spellings of a field name are accepted", () => {
    const opts = generateRuntimeOptions(runtime(RUNTIME_RUNC_V2, { systemdcgroup: true, BINARYNAME: "/x", ioUid: 5 }));
    expect(opts?.options).toMatchObject({ systemdCgroup: true, binaryName: "/x", ioUid: 5 });
  });

  test("other runtime types get the generic options with the TOML body when no ConfigPath is given", () => {
    const generated = generateRuntimeOptions(getRuntime(parseRuntimeConfig(FULL), "gvisor"));
    expect(generated?.typeUrl).toBe(GENERIC_OPTIONS_TYPE_URL);
    if (generated?.typeUrl !== GENERIC_OPTIONS_TYPE_URL) throw new Error("unreachable");
    expect(generated.options.typeUrl).toBe("io.containerd.runsc.v1.options");
    expect(generated.options.configPath).toBe("");
    const body = new TextDecoder().decode(generated.options.configBody);
    expect(body).toBe('TypeUrl = "io.containerd.runsc.v1.options"\ndebug = true\n\n[net]\n  mode = "sandbox"\n');
    expect(Bun.TOML.parse(body)).toEqual({ TypeUrl: "io.containerd.runsc.v1.options", debug: true, net: { mode: "sandbox" } });
  });

  test("with a ConfigPath the body stays empty", () => {
    const generated = generateRuntimeOptions(runtime("io.containerd.runsc.v1", { TypeUrl: "t", ConfigPath: "/etc/runsc.toml", x: 1 }));
    expect(generated?.options).toEqual({ typeUrl: "t", configPath: "/etc/runsc.toml", configBody: new Uint8Array(0) });
  });
});

describe("marshalRuntimeOptions (the Any a shim's start reads on stdin)", () => {
  test("runc options round-trip under containerd's type URL", () => {
    const generated = generateRuntimeOptions(runtime(RUNTIME_RUNC_V2, { BinaryName: "/usr/sbin/runc", SystemdCgroup: true, IoUid: 7 }))!;
    const any = fromBinary(AnySchema, marshalRuntimeOptions(generated));
    expect(any.typeUrl).toBe("containerd.runc.v1.Options");
    expect(fromBinary(OptionsSchema, any.value)).toMatchObject({ binaryName: "/usr/sbin/runc", systemdCgroup: true, ioUid: 7 });
  });

  test("generic options encode fields 1, 2 and 3 of runtimeoptions.v1.Options", () => {
    const generated = generateRuntimeOptions(runtime("io.containerd.kata.v2", { TypeUrl: "k", a: "b" }))!;
    const any = fromBinary(AnySchema, marshalRuntimeOptions(generated));
    expect(any.typeUrl).toBe("runtimeoptions.v1.Options");
    const reader = new BinaryReader(any.value);
    const fields: [number, string][] = [];
    while (reader.pos < reader.len) {
      const [no] = reader.tag();
      fields.push([no, new TextDecoder().decode(reader.bytes())]);
    }
    expect(fields).toEqual([[1, "k"], [3, 'TypeUrl = "k"\na = "b"\n']]);
  });
});

describe("marshalToml (go-toml v1 Tree.Marshal layout)", () => {
  test("plain keys sorted first, then tables and arrays of tables, nested tables indented", () => {
    const table = Bun.TOML.parse(`
z = 1
"quoted key" = "v"
a = [1, 2]
f = 0.5
big = 1e22
tiny = 1.5e-7
s = "tab\\tquote\\"ctl\\u0001"
[t.inner]
x = true
[[list]]
n = 1
[[list]]
n = 2
`) as Parameters<typeof marshalToml>[0];
    expect(marshalToml(table)).toBe(
      [
        'a = [1, 2]',
        "big = 10000000000000000000000.0",
        "f = 0.5",
        '"quoted key" = "v"',
        's = "tab\\tquote\\"ctl\\u0001"',
        "tiny = 0.00000015",
        "z = 1",
        "",
        "[[list]]",
        "  n = 1",
        "",
        "[[list]]",
        "  n = 2",
        "",
        "[t]",
        "",
        "  [t.inner]",
        "    x = true",
        "",
      ].join("\n"),
    );
  });
});
