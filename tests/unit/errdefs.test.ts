import { expect, test } from "bun:test";
import { Code, NotFoundError, fromCode, toCode, NotImplementedError, UnknownError, FailedPreconditionError } from "../../src/errdefs.ts";

test("errors map to codes and back", () => {
  for (const [code, Cls] of [[5, NotFoundError], [12, NotImplementedError], [9, FailedPreconditionError]] as const) {
    expect(toCode(new Cls("x"))).toBe(code);
    const back = fromCode(code, "msg");
    expect(back).toBeInstanceOf(Cls);
    expect(back.message).toBe("msg");
  }
});

test("foreign errors are Unknown, unknown codes are UnknownError", () => {
  expect(toCode(new Error("x"))).toBe(Code.Unknown);
  expect(fromCode(99, "m")).toBeInstanceOf(UnknownError);
});
