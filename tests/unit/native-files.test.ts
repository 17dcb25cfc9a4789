// src/native.ts: where a non-compiled bunker finds libbunker.so and bunker-init (prebuilt for its
// architecture first, then the dev build) and the one-line error when neither is there.
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FailedPreconditionError } from "../../src/errdefs.ts";
import { isCompiled, locateNative, nativeCandidates, packageRoot } from "../../src/native.ts";

const root = mkdtempSync(join(tmpdir(), "bunker-native-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function touch(path: string): string {
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, "");
  return path;
}

test("the package root is the repo (package.json beside src/), and tests do not run compiled", () => {
  expect(Bun.file(join(packageRoot, "package.json")).size).toBeGreaterThan(0);
  expect(isCompiled()).toBe(false);
});

test("candidates: prebuilt for the architecture, then the dev build", () => {
  expect(nativeCandidates("libbunker.so", "arm64", "/p")).toEqual(["/p/native/prebuilt/linux-arm64/libbunker.so", "/p/native/libbunker.so"]);
});

test("locateNative prefers the prebuilt, falls back to the dev build, else names what to build", () => {
  const r = join(root, "pkg");
  expect(() => locateNative("bunker-init", { compiled: false, arch: "x64", root: r })).toThrow(FailedPreconditionError);
  let message = "";
  try {
    locateNative("libbunker.so", { compiled: false, arch: "riscv64", root: r });
  } catch (err) {
    message = (err as Error).message;
  }
  expect(message).toContain(`linux-riscv64`);
  expect(message).toContain(`make -C ${join(r, "native")}`);
  expect(message).not.toContain("\n");
  const dev = touch(join(r, "native", "libbunker.so"));
  expect(locateNative("libbunker.so", { compiled: false, arch: "x64", root: r })).toBe(dev);
  const prebuilt = touch(join(r, "native", "prebuilt", "linux-x64", "libbunker.so"));
  expect(locateNative("libbunker.so", { compiled: false, arch: "x64", root: r })).toBe(prebuilt);
  // another architecture's prebuilt is never taken
  expect(locateNative("libbunker.so", { compiled: false, arch: "arm64", root: r })).toBe(dev);
});
