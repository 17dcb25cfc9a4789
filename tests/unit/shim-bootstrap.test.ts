// start's stdin in both of containerd's forms. The byte vectors were encoded by protoc --encode from
// containerd's own .proto files (api/runtime/bootstrap/v1/bootstrap.proto, google/protobuf/any.proto),
// not by bunker's encoder, so they pin the wire layout containerd writes.
import { describe, expect, test } from "bun:test";
import { InvalidArgumentError } from "../../src/errdefs.ts";
import { parseStartInput } from "../../src/contract/bootstrap.ts";
import { groupFromOptions } from "../../src/contract/start-options.ts";

const hex = (s: string) => Uint8Array.from(Buffer.from(s, "hex"));
const ascii = (b: Uint8Array) => Buffer.from(b).toString("latin1");

// Any{type_url: "runtimeoptions.v1.Options", value: Options{config_body: "group = 'container'\n"}}
const ANY_RUNTIME_OPTIONS = "0a1972756e74696d656f7074696f6e732e76312e4f7074696f6e7312161a1467726f7570203d2027636f6e7461696e6572270a";
// BootstrapParams as containerd 2.3's Command writes it: every field, the same Any as the one extension
const FULL_BOOTSTRAP =
  "0a02633112066b38732e696f18fcffffffffffffffff012205322e332e302a252f72756e2f636f6e7461696e6572642f636f6e7461696e6572642e736f636b2e7474727063321f2f72756e2f636f6e7461696e6572642f636f6e7461696e6572642e736f636b3a132f7573722f62696e2f636f6e7461696e65726442350a330a1972756e74696d656f7074696f6e732e76312e4f7074696f6e7312161a1467726f7570203d2027636f6e7461696e6572270a4a082f72756e2f632f73";
// two extensions, an NRI config first and the runtime options (group = 'p') second
const TWO_EXTENSIONS =
  "0a026331120764656661756c742205322e332e30422a0a280a21636f6e7461696e6572642e696f2f6e72692e76312e506c7567696e436f6e66696712030a0178422d0a2b0a1972756e74696d656f7074696f6e732e76312e4f7074696f6e73120e1a0c67726f7570203d202770270a";
// a runtime with no options: no extension at all
const NO_EXTENSIONS = "0a026331120764656661756c742205322e332e303a132f7573722f62696e2f636f6e7461696e657264";

describe("start's stdin: containerd ≤ 2.2's Any or 2.3+'s BootstrapParams", () => {
  test("a bare Any is the runtime options themselves", () => {
    const input = parseStartInput(hex(ANY_RUNTIME_OPTIONS));
    expect(input.form).toBe("any");
    expect(ascii(input.options)).toBe(ascii(hex(ANY_RUNTIME_OPTIONS)));
    expect(groupFromOptions(input.options)).toBe("container");
  });

  test("empty stdin: no options (ctr, or a runtime without an options table)", () => {
    const input = parseStartInput(new Uint8Array());
    expect(input).toMatchObject({ form: "any", socketDir: undefined });
    expect(input.options.length).toBe(0);
  });

  test("BootstrapParams: every field, the runtime options from its extension (the group is not lost)", () => {
    const input = parseStartInput(hex(FULL_BOOTSTRAP));
    expect(input).toMatchObject({
      form: "bootstrap",
      instanceId: "c1",
      namespace: "k8s.io",
      logLevel: -4,
      containerdVersion: "2.3.0",
      ttrpcAddress: "/run/containerd/containerd.sock.ttrpc",
      grpcAddress: "/run/containerd/containerd.sock",
      containerdBinary: "/usr/bin/containerd",
      socketDir: "/run/c/s",
    });
    expect(ascii(input.options)).toBe(ascii(hex(ANY_RUNTIME_OPTIONS)));
    expect(groupFromOptions(input.options)).toBe("container");
  });

  test("BootstrapParams: the runtime options are found among other extensions", () => {
    const input = parseStartInput(hex(TWO_EXTENSIONS));
    expect(input.form).toBe("bootstrap");
    expect(groupFromOptions(input.options)).toBe("p");
  });

  test("BootstrapParams with no extension: no options", () => {
    const input = parseStartInput(hex(NO_EXTENSIONS));
    expect(input).toMatchObject({ form: "bootstrap", instanceId: "c1", namespace: "default", containerdBinary: "/usr/bin/containerd" });
    expect(input.options.length).toBe(0);
    expect(groupFromOptions(input.options)).toBeUndefined();
  });

  test("a later containerd's unknown fields beside known ones are ignored, as protobuf does", () => {
    // field 12 (a string) appended to a full BootstrapParams
    const extended = hex(`${NO_EXTENSIONS}6203616263`);
    expect(parseStartInput(extended)).toMatchObject({ form: "bootstrap", containerdBinary: "/usr/bin/containerd" });
  });

  test("garbage is a clear InvalidArgument, never options silently lost", () => {
    const bad = (b: Uint8Array) => () => parseStartInput(b);
    const msg = "start: stdin is neither containerd's runtime options (a protobuf Any) nor its BootstrapParams";
    // JSON (the old JSON bootstrap some shims answer with) starts with '{': wire type 3
    expect(bad(new TextEncoder().encode('{"group":"x"}'))).toThrow(msg);
    expect(bad(new TextEncoder().encode('{"group":"x"}'))).toThrow(InvalidArgumentError);
    // truncated: a length past the end
    expect(bad(hex("0a05616263"))).toThrow("length-delimited field exceeds its message");
    // only unknown fields
    expect(bad(hex("6203616263"))).toThrow("only unknown fields (12)");
    // the right field numbers with the wrong wire types
    expect(bad(hex("0a02633118fc"))).toThrow("truncated varint");
    expect(bad(hex("0a02633122020a00100a"))).toThrow("wire type 0, want 2");
    expect(bad(hex("1a020a00"))).toThrow("log_level has wire type 2, want 0");
    expect(bad(hex("0801"))).toThrow("Any field 1 has wire type 0, want 2");
    // an extension whose body is not a message
    expect(bad(hex("2205322e332e304202ffff"))).toThrow(msg);
    // a type URL that is not text
    expect(bad(hex("0a02ff80"))).toThrow("field 1 is not UTF-8 text");
  });
});
