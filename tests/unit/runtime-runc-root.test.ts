// The runc root bunker's manager gives runc-type shims (src/runtime/runc-root.ts): set when no
// options name one, kept when they do, and packed under the bare type name the Go shims look up.
import { expect, test } from "bun:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { BUNKER_RUNTIME, RUNTIME_RUNC_V2 } from "../../src/contract/runtime.ts";
import { OptionsSchema } from "../../src/gen/containerd/runc/v1/options_pb.ts";
import { managerRuncRoot } from "../../src/runtime/paths.ts";
import { withRuncRoot } from "../../src/runtime/runc-root.ts";

const ROOT = managerRuncRoot("/run/bunker-x/");

test("the manager's runc root is under its state dir", () => {
  expect(ROOT).toBe("/run/bunker-x/runc");
});

test("no options: runc Options{root} under the bare type name, for bunker's shim and runc.v2", () => {
  for (const runtime of [BUNKER_RUNTIME, RUNTIME_RUNC_V2]) {
    const any = withRuncRoot(runtime, undefined, ROOT)!;
    // containerd 1.6's Go shims resolve "containerd.runc.v1.Options", not type.googleapis.com/...
    expect(any.typeUrl).toBe("containerd.runc.v1.Options");
    expect(fromBinary(OptionsSchema, any.value).root).toBe(ROOT);
  }
});

test("runc options without a root get it, the rest kept; a root the options name is kept", () => {
  const given = create(AnySchema, { typeUrl: "containerd.runc.v1.Options", value: toBinary(OptionsSchema, create(OptionsSchema, { binaryName: "/opt/runc", systemdCgroup: true })) });
  const o = fromBinary(OptionsSchema, withRuncRoot(BUNKER_RUNTIME, given, ROOT)!.value);
  expect({ root: o.root, binaryName: o.binaryName, systemdCgroup: o.systemdCgroup }).toEqual({ root: ROOT, binaryName: "/opt/runc", systemdCgroup: true });
  const named = create(AnySchema, { typeUrl: "type.googleapis.com/containerd.runc.v1.Options", value: toBinary(OptionsSchema, create(OptionsSchema, { root: "/elsewhere" })) });
  expect(withRuncRoot(BUNKER_RUNTIME, named, ROOT)).toBe(named);
});

test("other runtimes and other option types are left alone", () => {
  expect(withRuncRoot("io.containerd.kata.v2", undefined, ROOT)).toBeUndefined();
  const generic = create(AnySchema, { typeUrl: "runtimeoptions.v1.Options", value: new Uint8Array([0x12, 0x01, 0x61]) });
  expect(withRuncRoot(BUNKER_RUNTIME, generic, ROOT)).toBe(generic);
});
