// The compiled shim's `-info` as containerd 2.x runs it (core/runtime/v2/task_manager.go
// getRuntimeInfo: `<shim> -info`, the runtime options on stdin, a RuntimeInfo protobuf on stdout)
// and reads it (internal/cri/server/service.go introspectRuntimeFeatures: the features Any must
// carry runtime-spec's features.Features as JSON under typeurl's URL). Decoded by protoc from a
// schema with containerd's field numbers, so the check does not go through bunker's own decoder.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { OptionsSchema as RuncOptionsSchema } from "../../src/gen/containerd/runc/v1/options_pb.ts";
import { OptionsSchema } from "../../src/gen/runtimeoptions/v1/api_pb.ts";
import { packAny } from "../../src/ttrpc/any.ts";
import { describeWith } from "../support/require.ts";
import { SHIM_BINARY, shimBinDir } from "../support/shim-env.ts";

// containerd api/types/introspection.proto's RuntimeInfo, field for field
const INTROSPECTION_PROTO = `syntax = "proto3";
package containerd.types;
import "google/protobuf/any.proto";
message RuntimeVersion { string version = 1; string revision = 2; }
message RuntimeInfo {
  string name = 1;
  RuntimeVersion version = 2;
  google.protobuf.Any options = 3;
  google.protobuf.Any features = 4;
  map<string, string> annotations = 5;
}
`;
const WKT = join(import.meta.dir, "../../proto/wkt");

describeWith(["bin:runc", "bin:protoc"], "the shim's -info, as containerd 2.x runs and reads it", () => {
  let dir: string;
  let shim: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "bunker-info-"));
    writeFileSync(join(dir, "introspection.proto"), INTROSPECTION_PROTO);
    shim = join(await shimBinDir(), SHIM_BINARY);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function info(stdin: Uint8Array): Promise<{ code: number; stdout: Uint8Array; stderr: string }> {
    // containerd's command line: the flag alone, no namespace, no id, no address
    const proc = Bun.spawn([shim, "-info"], { stdin, stdout: "pipe", stderr: "pipe" });
    const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).arrayBuffer(), new Response(proc.stderr).text()]);
    return { code, stdout: new Uint8Array(out), stderr: err };
  }

  function protocDecode(bytes: Uint8Array): string {
    const r = Bun.spawnSync(["protoc", `-I${dir}`, `-I${WKT}`, "--decode=containerd.types.RuntimeInfo", "introspection.proto"], { cwd: dir, stdin: bytes });
    expect(r.stderr.toString()).toBe("");
    expect(r.exitCode).toBe(0);
    return r.stdout.toString();
  }

  /** The features JSON as containerd's CRI gets it (typeurl JSON-unmarshals the Any's value). */
  function featuresOf(text: string): Record<string, unknown> {
    const m = /features \{\n\s*type_url: "([^"]*)"\n\s*value: "((?:[^"\\]|\\.)*)"/.exec(text);
    expect(m).not.toBeNull();
    expect(m![1]).toBe("types.containerd.io/opencontainers/runtime-spec/1/features/Features");
    // protoc prints bytes C-escaped
    const json = m![2]!.replace(/\\(["\\'])/g, "$1");
    return JSON.parse(json) as Record<string, unknown>;
  }

  const runcFeatures = () => JSON.parse(Bun.spawnSync(["runc", "features"]).stdout.toString()) as Record<string, unknown>;

  test("no options (a handler without an options table): the PATH's runc's features", async () => {
    const r = await info(new Uint8Array());
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const text = protocDecode(r.stdout);
    expect(text).toContain('name: "io.containerd.bunker.v1"');
    expect(text).toMatch(/version \{\n\s*version: "\d+\.\d+\.\d+[^"]*"\n\s*revision: "[^"]+"/);
    expect(featuresOf(text)).toEqual(runcFeatures());
  });

  test("runc's options (ctr, or a handler typed like runc): its BinaryName is the runc asked, the options come back", async () => {
    const runc = Bun.which("runc")!;
    const options = toBinary(AnySchema, packAny(RuncOptionsSchema, { binaryName: runc, root: "/run/containerd/runc" }));
    const r = await info(options);
    expect(r.code).toBe(0);
    const text = protocDecode(r.stdout);
    expect(text).toContain('type_url: "containerd.runc.v1.Options"');
    expect(featuresOf(text)).toEqual(runcFeatures());
    const missing = toBinary(AnySchema, packAny(RuncOptionsSchema, { binaryName: join(dir, "no-runc") }));
    const bad = await info(missing);
    expect(bad.code).toBe(1);
    expect(bad.stdout.length).toBe(0);
    expect(bad.stderr).toContain("io.containerd.bunker.v1:");
  });

  test("CRI's generic options for bunker, with BinaryName in the handler's table (config_body)", async () => {
    const runc = Bun.which("runc")!;
    const options = toBinary(AnySchema, packAny(OptionsSchema, { configBody: new TextEncoder().encode(`BinaryName = '${runc}'\ngroup = 'container'\n`) }));
    const r = await info(options);
    expect(r.code).toBe(0);
    expect(featuresOf(protocDecode(r.stdout))).toEqual(runcFeatures());
  });

  test("garbage options: a clear error on stderr, nothing on stdout", async () => {
    const r = await info(toBinary(AnySchema, create(AnySchema, { typeUrl: "runtimeoptions.v1.Options", value: new Uint8Array([0x12, 0x09, 0x61]) })));
    expect(r.code).toBe(1);
    expect(r.stdout.length).toBe(0);
    expect(r.stderr).toContain("runtime options:");
  });
});
