import { describe, expect, test } from "bun:test";
import { InvalidArgumentError } from "../../src/errdefs.ts";
import { handlerConfigValues } from "../../src/contract/handler-config.ts";

describe("a CRI runtime handler's options table (config_path or config_body)", () => {
  test("go-toml's output: literal strings, booleans, integers", () => {
    const body = "BinaryName = '/usr/local/bin/runc'\nIoGid = 0\nRoot = ''\nSystemdCgroup = true\ngroup = 'container'\n";
    expect(handlerConfigValues(body)).toEqual({ BinaryName: "/usr/local/bin/runc", IoGid: 0, Root: "", SystemdCgroup: true, group: "container" });
  });

  test("basic strings with escapes, quoted keys, comments, and no sub-tables", () => {
    const body = '# handler\n"quoted key" = "a\\"b\\\\c\\u00e9"  # trailing\nn = 1_000\n\n[sub]\ngroup = "not-mine"\n';
    expect(handlerConfigValues(body)).toEqual({ "quoted key": 'a"b\\cé', n: 1000 });
  });

  test("values it does not read are skipped, not refused (the table may be shared)", () => {
    expect(handlerConfigValues("Arr = [1, 2]\nInline = { a = 1 }\ngroup = 'g'\n")).toEqual({ group: "g" });
  });

  test("a JSON object, for a config file written by hand", () => {
    expect(handlerConfigValues('{"group": "pods", "SystemdCgroup": true, "nested": {"x": 1}}')).toEqual({ group: "pods", SystemdCgroup: true });
    expect(() => handlerConfigValues("{ broken", "f.json")).toThrow(InvalidArgumentError);
    expect(() => handlerConfigValues('k = "bad \\q escape"', "body")).toThrow("body: invalid escape \\q");
  });
});
