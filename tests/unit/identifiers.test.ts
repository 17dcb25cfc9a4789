import { expect, test } from "bun:test";
import { InvalidArgumentError } from "../../src/errdefs.ts";
import { RESERVED_NAMESPACES, validateIdentifier, validateNamespace } from "../../src/identifiers.ts";

test.each(["a", "abc", "a.b", "a-b_c.d", "A1", "x".repeat(76)])("accepts %p", (id) => {
  expect(validateIdentifier(id)).toBe(id);
});

test.each(["", "../x", "a/b", "a..b", ".a", "a.", "-a", "a b", "a\0b", "x".repeat(77), "é", "a__b"])("refuses %p", (id) => {
  expect(() => validateIdentifier(id, "container id")).toThrow(InvalidArgumentError);
});

test("a namespace may not be named like a subsystem dir of --root/--state (runc, containers, content, snapshots, networks)", () => {
  for (const ns of RESERVED_NAMESPACES) expect(() => validateNamespace(ns)).toThrow(/reserved/);
  expect(validateNamespace("default")).toBe("default");
  expect(validateNamespace("runc2")).toBe("runc2");
  expect(() => validateNamespace("../x")).toThrow(/must match/);
});
