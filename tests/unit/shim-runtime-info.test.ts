// The -info flag through the shim library (flags, stdin, the encoder) and bunker's option reading
// (tests/integration/shim-info.test.ts runs the compiled shim over the real runc). The RuntimeInfo
// vector was encoded by protoc --encode from containerd's api/types/introspection.proto, not by
// bunker's encoder.
import { describe, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { InvalidArgumentError } from "../../src/errdefs.ts";
import { OptionsSchema as RuncOptionsSchema } from "../../src/gen/containerd/runc/v1/options_pb.ts";
import { OptionsSchema } from "../../src/gen/runtimeoptions/v1/api_pb.ts";
import { parseFlags } from "../../src/shim/flags.ts";
import { run } from "../../src/shim/run.ts";
import { encodeRuntimeInfo, FEATURES_TYPE_URL, type RuntimeInfo } from "../../src/shim/runtime-info.ts";
import type { Shim, StartOpts } from "../../src/shim/types.ts";
import { binaryNameFromOptions, bunkerRuntimeInfo } from "../../src/shims/bunker/info.ts";
import { packAny } from "../../src/ttrpc/any.ts";
import { delimitedFields } from "../../src/ttrpc/wire-decode.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const runcOptions = (o: { binaryName?: string; root?: string }) => toBinary(AnySchema, packAny(RuncOptionsSchema, o));
const handlerOptions = (body: string) => toBinary(AnySchema, packAny(OptionsSchema, { configBody: new TextEncoder().encode(body) }));

describe("RuntimeInfo encoding", () => {
  test("byte for byte what Go's proto.Marshal writes (protoc's vector)", () => {
    const info: RuntimeInfo = {
      name: "io.containerd.bunker.v1",
      version: { version: "0.1.0", revision: "abc123" },
      options: runcOptions({ binaryName: "runc" }),
      features: { ociVersionMin: "1.0.0", linux: { namespaces: ["user"] } },
      annotations: { b: "2", a: "1" },
    };
    expect(hex(encodeRuntimeInfo(info))).toBe(
      "0a17696f2e636f6e7461696e6572642e62756e6b65722e7631120f0a05302e312e3012066162633132331a240a1a636f6e7461696e6572642e72756e632e76312e4f7074696f6e731206320472756e632280010a4374797065732e636f6e7461696e6572642e696f2f6f70656e636f6e7461696e6572732f72756e74696d652d737065632f312f66656174757265732f466561747572657312397b226f636956657273696f6e4d696e223a22312e302e30222c226c696e7578223a7b226e616d65737061636573223a5b2275736572225d7d7d2a060a01611201312a060a0162120132",
    );
  });

  test("no options and no features: both fields left out, as runc.v2 does", () => {
    const b = encodeRuntimeInfo({ name: "n", version: { version: "1", revision: "r" } });
    expect([...delimitedFields(b).keys()]).toEqual([1, 2]);
  });
});

describe("-info through the shim library", () => {
  const fakeShim = (seen: Uint8Array[]): Shim => ({
    name: "io.containerd.test.v1",
    start: async () => "unused",
    delete: async () => ({ pid: 0, exitStatus: 0, exitedAt: new Date() }),
    createTaskService: () => {
      throw new Error("unused");
    },
    info: async (options) => {
      seen.push(options);
      return { name: "io.containerd.test.v1", version: { version: "9", revision: "r" }, options, features: { ociVersionMax: "1.2.0" } };
    },
  });

  test("-info is a flag (containerd runs `<shim> -info`, no namespace): stdin in, RuntimeInfo out", async () => {
    expect(parseFlags(["-info"])).toMatchObject({ info: true, action: "" });
    const seen: Uint8Array[] = [];
    const out: Uint8Array[] = [];
    const stdin = runcOptions({ binaryName: "crun" });
    const code = await run(["-info"], fakeShim(seen), { stdin: async () => stdin, stdout: async (d) => void out.push(typeof d === "string" ? new TextEncoder().encode(d) : d) });
    expect(code).toBe(0);
    expect(hex(seen[0]!)).toBe(hex(stdin));
    const fields = delimitedFields(out[0]!);
    expect(new TextDecoder().decode(fields.get(1))).toBe("io.containerd.test.v1");
    expect(hex(fields.get(3)!)).toBe(hex(stdin));
    const features = delimitedFields(fields.get(4)!);
    expect(new TextDecoder().decode(features.get(1))).toBe(FEATURES_TYPE_URL);
    expect(JSON.parse(new TextDecoder().decode(features.get(2)))).toEqual({ ociVersionMax: "1.2.0" });
  });

  test("start takes the runtime options out of a BootstrapParams (containerd 2.3+)", async () => {
    let got: StartOpts | undefined;
    const shim = { ...fakeShim([]), start: async (o: StartOpts) => ((got = o), "unix:///run/containerd/s/x") };
    const any = handlerOptions("group = 'container'\n");
    // BootstrapParams{instance_id: "c1", namespace: "default", containerd_version: "2.3.0", extensions: [{value: any}]}
    const ext = Uint8Array.from([0x0a, any.length, ...any]);
    const params = Uint8Array.from([0x0a, 2, 0x63, 0x31, 0x12, 7, ...new TextEncoder().encode("default"), 0x22, 5, ...new TextEncoder().encode("2.3.0"), 0x42, ext.length, ...ext]);
    const out: string[] = [];
    const code = await run(["-namespace", "default", "-id", "c1", "start"], shim, { stdin: async () => params, stdout: async (d) => void out.push(String(d)) });
    expect(code).toBe(0);
    expect(hex(got!.options)).toBe(hex(any));
    expect(out).toEqual(["unix:///run/containerd/s/x"]); // the plain address every containerd accepts
  });
});

describe("bunker's -info", () => {
  test("the binary the options name: runc's Options.binary_name or a CRI handler's BinaryName", () => {
    expect(binaryNameFromOptions(new Uint8Array())).toBe("");
    expect(binaryNameFromOptions(runcOptions({ binaryName: "/opt/runc", root: "/r" }))).toBe("/opt/runc");
    expect(binaryNameFromOptions(handlerOptions("BinaryName = '/usr/sbin/runc'\nSystemdCgroup = true\n"))).toBe("/usr/sbin/runc");
    expect(binaryNameFromOptions(handlerOptions("group = 'g'\n"))).toBe("");
    expect(() => binaryNameFromOptions(handlerOptions("BinaryName = 1\n"))).toThrow(InvalidArgumentError);
    const other = toBinary(AnySchema, create(AnySchema, { typeUrl: "example.Other", value: new Uint8Array([1]) }));
    expect(binaryNameFromOptions(other)).toBe("");
  });

  test("a runc that cannot be found is refused, as runc.v2 refuses it", async () => {
    await expect(bunkerRuntimeInfo(runcOptions({ binaryName: "no-such-runc-binary" }), { version: "1" })).rejects.toThrow('failed to look up the path of "no-such-runc-binary"');
  });
});
