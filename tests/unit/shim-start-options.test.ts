import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InvalidArgumentError } from "../../src/errdefs.ts";
import { OptionsSchema as RuncOptionsSchema } from "../../src/gen/containerd/runc/v1/options_pb.ts";
import { OptionsSchema } from "../../src/gen/runtimeoptions/v1/api_pb.ts";
import { groupFromConfig, groupFromOptions } from "../../src/contract/start-options.ts";
import { packAny } from "../../src/ttrpc/any.ts";

describe("group from the runtime options on start's stdin", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "bunker-opts-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const anyBytes = (configPath: string) => toBinary(AnySchema, packAny(OptionsSchema, { typeUrl: "bunker", configPath }));

  test("CRI's runtimeoptions.v1.Options pointing at a TOML or JSON file", () => {
    writeFileSync(join(dir, "shim.toml"), '# bunker shim\nlinger = 3\ngroup = "container" # one shim each\n');
    expect(groupFromOptions(anyBytes(join(dir, "shim.toml")))).toBe("container");
    writeFileSync(join(dir, "shim.json"), JSON.stringify({ group: "pods" }));
    expect(groupFromOptions(anyBytes(join(dir, "shim.json")))).toBe("pods");
  });

  test("no options, other option types, or no group: nothing", () => {
    expect(groupFromOptions(new Uint8Array())).toBeUndefined();
    expect(groupFromOptions(toBinary(AnySchema, packAny(RuncOptionsSchema, { binaryName: "runc" })))).toBeUndefined();
    expect(groupFromOptions(anyBytes(""))).toBeUndefined();
    expect(groupFromConfig("other = 1\n")).toBeUndefined();
    // a type URL with a host prefix is the same type
    const prefixed = create(AnySchema, { typeUrl: "type.googleapis.com/runtimeoptions.v1.Options", value: toBinary(OptionsSchema, create(OptionsSchema, { configPath: join(dir, "x.toml") })) });
    writeFileSync(join(dir, "x.toml"), "group = 'g1'\n");
    expect(groupFromOptions(toBinary(AnySchema, prefixed))).toBe("g1");
  });

  test("containerd 1.7+'s config_body: the handler's options table inline, as go-toml writes it", () => {
    const body = (toml: string) => toBinary(AnySchema, packAny(OptionsSchema, { typeUrl: "", configBody: new TextEncoder().encode(toml) }));
    expect(groupFromOptions(body("BinaryName = '/usr/bin/runc'\nSystemdCgroup = true\ngroup = 'container'\n"))).toBe("container");
    expect(groupFromOptions(body('group = "pods"\n'))).toBe("pods");
    expect(groupFromOptions(body("SystemdCgroup = true\n"))).toBeUndefined();
    // a config_path wins over a body (containerd fills the body only when there is no path)
    writeFileSync(join(dir, "p.toml"), "group = 'from-file'\n");
    const both = toBinary(AnySchema, packAny(OptionsSchema, { configPath: join(dir, "p.toml"), configBody: new TextEncoder().encode("group = 'from-body'\n") }));
    expect(groupFromOptions(both)).toBe("from-file");
    expect(() => groupFromOptions(body("group = 3\n"))).toThrow("config_body: group must be a string");
  });

  test("broken input is InvalidArgument, a missing file is an error", () => {
    expect(() => groupFromOptions(new Uint8Array([0x0a, 0x05, 0x61]))).toThrow(InvalidArgumentError);
    expect(() => groupFromConfig("{ bad json", "f")).toThrow(InvalidArgumentError);
    expect(() => groupFromConfig('{"group": 3}', "f")).toThrow("group must be a string");
    expect(() => groupFromOptions(anyBytes(join(dir, "missing.toml")))).toThrow();
  });
});
