import { afterAll, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InvalidArgumentError, NotFoundError } from "../../src/errdefs.ts";
import { binaryName } from "../../src/contract/runtime.ts";
import { resolveShimBinary } from "../../src/runtime/binary.ts";

const dir = mkdtempSync(join(tmpdir(), "bunker-binary-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function exe(path: string): string {
  writeFileSync(path, "#!/bin/sh\n");
  chmodSync(path, 0o755);
  return path;
}

test("binaryName", () => {
  expect(binaryName("io.containerd.runc.v2")).toBe("containerd-shim-runc-v2");
  expect(binaryName("io.containerd.bunker.v1")).toBe("containerd-shim-bunker-v1");
  expect(binaryName("runc.v2")).toBe("containerd-shim-runc-v2");
  for (const bad of ["", "runc", "io.containerd..v2", "io.containerd.x.", "sub/io.containerd.x.v1", "../x.v1", "io.containerd.a b.v1"]) {
    expect(() => binaryName(bad)).toThrow(InvalidArgumentError);
  }
});

test("resolveShimBinary: PATH first, then beside bunker, then NotFound", () => {
  const pathDir = join(dir, "path");
  const selfDir = join(dir, "self");
  mkdirSync(pathDir);
  mkdirSync(selfDir);
  const beside = exe(join(selfDir, "containerd-shim-x-v1"));
  expect(resolveShimBinary("io.containerd.x.v1", { path: pathDir, selfDir })).toBe(beside);
  const onPath = exe(join(pathDir, "containerd-shim-x-v1"));
  expect(resolveShimBinary("io.containerd.x.v1", { path: `relative:${pathDir}`, selfDir })).toBe(onPath);
  writeFileSync(join(pathDir, "containerd-shim-y-v1"), "not executable");
  expect(() => resolveShimBinary("io.containerd.y.v1", { path: pathDir, selfDir })).toThrow(NotFoundError);
  expect(() => resolveShimBinary("io.containerd.nope.v9", { path: pathDir, selfDir })).toThrow(/containerd-shim-nope-v9 not found/);
});

test("resolveShimBinary: absolute paths are the binary itself", () => {
  const abs = exe(join(dir, "my-shim"));
  expect(resolveShimBinary(abs)).toBe(abs);
  expect(() => resolveShimBinary(join(dir, "missing"))).toThrow(NotFoundError);
  expect(() => resolveShimBinary(dir)).toThrow(NotFoundError);
  expect(() => resolveShimBinary("bin/containerd-shim-x-v1")).toThrow(InvalidArgumentError);
});

test("resolveShimBinary: the package's bin/ launcher comes last, after PATH and beside bunker", () => {
  const pathDir = join(dir, "pkg-path");
  const selfDir = join(dir, "pkg-self");
  const pkgBin = join(dir, "pkg-bin");
  for (const d of [pathDir, selfDir, pkgBin]) mkdirSync(d);
  const packageBin = (name: string) => join(pkgBin, name);
  const launcher = exe(join(pkgBin, "containerd-shim-z-v1"));
  expect(resolveShimBinary("io.containerd.z.v1", { path: pathDir, selfDir, packageBin })).toBe(launcher);
  const beside = exe(join(selfDir, "containerd-shim-z-v1"));
  expect(resolveShimBinary("io.containerd.z.v1", { path: pathDir, selfDir, packageBin })).toBe(beside);
  expect(() => resolveShimBinary("io.containerd.w.v1", { path: pathDir, selfDir, packageBin })).toThrow(`not found in PATH or ${selfDir} or ${pkgBin}`);
  // inside a compiled binary there is no package to look in
  expect(() => resolveShimBinary("io.containerd.w.v1", { path: pathDir, selfDir, packageBin: () => undefined })).toThrow(`not found in PATH or ${selfDir}`);
});

test("resolveShimBinary: this package's own launcher for the bunker shim, with no PATH and no selfDir", () => {
  const found = resolveShimBinary("io.containerd.bunker.v1", { path: "", selfDir: join(dir, "nowhere") });
  expect(found).toBe(join(import.meta.dir, "../../bin/containerd-shim-bunker-v1"));
});
