import { expect, test } from "bun:test";
import { InvalidArgumentError } from "../../src/errdefs.ts";
import { validateIdentifier } from "../../src/identifiers.ts";

test.each(["a", "abc", "a.b", "a-b_c.d", "A1", "x".repeat(76)])("accepts %p", (id) => {
  expect(validateIdentifier(id)).toBe(id);
});

test.each(["", "../x", "a/b", "a..b", ".a", "a.", "-a", "a b", "a\0b", "x".repeat(77), "é", "a__b"])("refuses %p", (id) => {
  expect(() => validateIdentifier(id, "container id")).toThrow(InvalidArgumentError);
});
