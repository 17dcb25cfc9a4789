import { describe, expect, test } from "bun:test";
import { InvalidArgumentError } from "../../src/errdefs.ts";
import { BadPatternError, goQuote, parseInt64, pathClean, pathJoin, pathMatch } from "../../src/gostd.ts";

// Expected answers are those of Go's path.Match (its own test table plus annotation-shaped cases).
const BAD = "bad";
const matchCases: [pattern: string, name: string, want: boolean | typeof BAD][] = [
  ["abc", "abc", true],
  ["*", "abc", true],
  ["*c", "abc", true],
  ["a*", "a", true],
  ["a*", "abc", true],
  ["a*", "ab/c", false],
  ["a*/b", "abc/b", true],
  ["a*/b", "a/c/b", false],
  ["a*b*c*d*e*/f", "axbxcxdxe/f", true],
  ["a*b*c*d*e*/f", "axbxcxdxexxx/f", true],
  ["a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false],
  ["a*b*c*d*e*/f", "axbxcxdxexxx/fff", false],
  ["a*b?c*x", "abxbbxdbxebxczzx", true],
  ["a*b?c*x", "abxbbxdbxebxczzy", false],
  ["ab[c]", "abc", true],
  ["ab[b-d]", "abc", true],
  ["ab[e-g]", "abc", false],
  ["ab[^c]", "abc", false],
  ["ab[^b-d]", "abc", false],
  ["ab[^e-g]", "abc", true],
  ["a\\*b", "a*b", true],
  ["a\\*b", "ab", false],
  ["a?b", "a☺b", true],
  ["a[^a]b", "a☺b", true],
  ["a???b", "a☺b", false],
  ["a[^a][^a][^a]b", "a☺b", false],
  ["[a-ζ]*", "α", true],
  ["*[a-ζ]", "A", false],
  ["a?b", "a/b", false],
  ["a*b", "a/b", false],
  ["[\\]a]", "]", true],
  ["[\\-]", "-", true],
  ["[x\\-]", "x", true],
  ["[x\\-]", "-", true],
  ["[x\\-]", "z", false],
  ["[\\-x]", "x", true],
  ["[\\-x]", "-", true],
  ["[\\-x]", "a", false],
  ["[]a]", "]", BAD],
  ["[-]", "-", BAD],
  ["[x-]", "x", BAD],
  ["[x-]", "-", BAD],
  ["[x-]", "z", BAD],
  ["[-x]", "x", BAD],
  ["[-x]", "-", BAD],
  ["[-x]", "a", BAD],
  ["\\", "a", BAD],
  ["[a-b-c]", "a", BAD],
  ["[", "a", BAD],
  ["[^", "a", BAD],
  ["[^bc", "a", BAD],
  ["a[", "a", BAD],
  ["a[", "ab", BAD],
  ["a[", "x", BAD],
  ["a/b[", "x", BAD],
  ["*x", "xxx", true],
  // Annotation keys: a `*` must not cross the `/` between prefix and name.
  ["io.kubernetes.cri.*", "io.kubernetes.cri.sandbox-id", true],
  ["io.kubernetes.cri.*", "io.kubernetes.cri/sandbox-id", false],
  ["example.com/*", "example.com/gpu", true],
  ["example.com/*", "example.com/a/b", false],
  ["*", "example.com/gpu", false],
  ["*/*", "example.com/gpu", true],
  ["example.com/gpu-[0-9]", "example.com/gpu-7", true],
  ["example.com/gpu-[^0-9]", "example.com/gpu-7", false],
  ["[/]", "/", true], // a class may name `/` explicitly
  ["", "", true],
  ["", "a", false],
  ["a*", "", false],
];

describe("pathMatch (Go path.Match)", () => {
  test.each(matchCases)("%p ~ %p -> %p", (pattern, name, want) => {
    if (want === BAD) {
      expect(() => pathMatch(pattern, name)).toThrow(BadPatternError);
      expect(() => pathMatch(pattern, name)).toThrow(InvalidArgumentError);
    } else {
      expect(pathMatch(pattern, name)).toBe(want);
    }
  });

  test("a malformed tail is reported even when the head already failed", () => {
    expect(() => pathMatch("x*[", "abc")).toThrow(BadPatternError);
    expect(() => pathMatch("a*b*[", "zzz")).toThrow(BadPatternError);
  });
});

describe("pathClean and pathJoin (Go path.Clean/Join)", () => {
  test.each([
    ["", "."],
    ["/", "/"],
    ["abc", "abc"],
    ["abc/", "abc"],
    ["a//b", "a/b"],
    ["/../a", "/a"],
    ["a/../..", ".."],
    ["../../a", "../../a"],
    ["a/./b/.", "a/b"],
    ["/a/b/../../..", "/"],
    ["abc/def/../../..", ".."],
  ])("Clean(%p) = %p", (input, want) => {
    expect(pathClean(input)).toBe(want);
  });

  test("Join skips empty elements and cleans", () => {
    expect(pathJoin("/var/lib/bunker/", "sandboxes", "abc")).toBe("/var/lib/bunker/sandboxes/abc");
    expect(pathJoin("", "", "a", "", "b")).toBe("a/b");
    expect(pathJoin("", "")).toBe("");
    expect(pathJoin("/a", "../b")).toBe("/b");
  });
});

describe("goQuote (Go strconv.Quote)", () => {
  test.each([
    ["abc", '"abc"'],
    ["", '""'],
    ['a"b\\c', '"a\\"b\\\\c"'],
    ["tab\there\nnl", '"tab\\there\\nnl"'],
    ["\x07\x08\x0c\x0d\x0b", '"\\a\\b\\f\\r\\v"'],
    ["\x00\x1f\x7f", '"\\x00\\x1f\\x7f"'],
    ["héllo ☺ 𝄞", '"héllo ☺ 𝄞"'],
    ["\u00a0", '"\\u00a0"'], // no-break space is not printable for Go
    ["\u200b", '"\\u200b"'],
    ["\u{e0001}", '"\\U000e0001"'],
    ["\ud800", '"\\xed\\xa0\\x80"'], // a lone surrogate is invalid UTF-8 to Go
  ])("Quote(%p) = %s", (input, want) => {
    expect(goQuote(input)).toBe(want);
  });
});

describe("parseInt64 (strconv.ParseInt base 10)", () => {
  test.each([
    ["0", 0n],
    ["1000", 1000n],
    ["+7", 7n],
    ["-1", -1n],
    ["007", 7n],
    ["9223372036854775807", 9223372036854775807n],
    ["-9223372036854775808", -9223372036854775808n],
    ["9223372036854775808", null],
    ["", null],
    ["1_000", null],
    ["0x10", null],
    [" 1", null],
    ["1.0", null],
    ["root", null],
  ])("%p -> %p", (input, want) => {
    expect(parseInt64(input)).toBe(want);
  });
});
