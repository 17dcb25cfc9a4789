import { afterAll, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FailedPreconditionError, InvalidArgumentError } from "../../src/errdefs.ts";
import { type BundleSys, deleteBundle, listNamespaces, loadBundle, newBundle } from "../../src/runtime/bundle.ts";

const dir = mkdtempSync(join(tmpdir(), "bunker-bundle-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

class FakeSys implements BundleSys {
  calls: string[] = [];
  failMkfifo = false;
  failUnmount = false;
  mkfifo(path: string, mode: number): void {
    this.calls.push(`mkfifo ${path} ${mode.toString(8)}`);
    if (this.failMkfifo) throw new Error("mkfifo: EPERM");
    writeFileSync(path, "");
  }
  unmountAll(path: string): void {
    this.calls.push(`unmountAll ${path}`);
    if (this.failUnmount) throw new Error("umount2: EBUSY");
  }
}

function roots(name: string): { root: string; state: string } {
  return { root: join(dir, name, "root"), state: join(dir, name, "state") };
}

test("newBundle lays out state and work dirs", () => {
  const sys = new FakeSys();
  const { root, state } = roots("ok");
  const b = newBundle({ root, state, namespace: "ns", id: "c1", spec: '{"a":1}', sys });
  expect(b).toEqual({ id: "c1", namespace: "ns", path: join(state, "ns", "c1") });
  expect(statSync(b.path).mode & 0o777).toBe(0o700);
  expect(readFileSync(join(b.path, "config.json"), "utf8")).toBe('{"a":1}');
  expect(statSync(join(b.path, "rootfs")).isDirectory()).toBe(true);
  expect(readlinkSync(join(b.path, "work"))).toBe(join(root, "ns", "c1"));
  expect(sys.calls).toEqual([`mkfifo ${join(b.path, "log")} 700`]);
  expect(() => newBundle({ root, state, namespace: "ns", id: "c1", spec: "{}", sys })).toThrow(FailedPreconditionError);
  // the refused second bundle must not have damaged the first
  expect(existsSync(join(b.path, "config.json"))).toBe(true);

  deleteBundle(b, sys);
  expect(sys.calls.at(-1)).toBe(`unmountAll ${join(b.path, "rootfs")}`);
  expect(readdirSync(join(state, "ns"))).toEqual([]);
  expect(readdirSync(join(root, "ns"))).toEqual([]);
  deleteBundle(b, sys); // idempotent
});

test("a stale work dir is replaced", () => {
  const sys = new FakeSys();
  const { root, state } = roots("stale");
  mkdirSync(join(root, "ns", "c1"), { recursive: true });
  writeFileSync(join(root, "ns", "c1", "old"), "x");
  const b = newBundle({ root, state, namespace: "ns", id: "c1", spec: "{}", sys });
  expect(readdirSync(join(root, "ns", "c1"))).toEqual([]);
  deleteBundle(b, sys);
});

test.each(["../x", "", "x".repeat(77), "a..b", "a/b"])("invalid id %p: refused before touching disk", (id) => {
  const { root, state } = roots("bad");
  expect(() => newBundle({ root, state, namespace: "ns", id, spec: "{}", sys: new FakeSys() })).toThrow(InvalidArgumentError);
  expect(() => newBundle({ root, state, namespace: id, id: "ok", spec: "{}", sys: new FakeSys() })).toThrow(InvalidArgumentError);
  expect(existsSync(join(dir, "bad"))).toBe(false);
  expect(() => loadBundle(state, "ns", id)).toThrow(InvalidArgumentError);
});

test("a failure half-way rolls back everything it made", () => {
  const sys = new FakeSys();
  sys.failMkfifo = true;
  const { root, state } = roots("rollback");
  expect(() => newBundle({ root, state, namespace: "ns", id: "c1", spec: "{}", sys })).toThrow("EPERM");
  expect(readdirSync(join(state, "ns"))).toEqual([]);
  expect(readdirSync(join(root, "ns"))).toEqual([]);
});

test("deleteBundle keeps everything when the rootfs cannot be unmounted", () => {
  const sys = new FakeSys();
  const { root, state } = roots("busy");
  const b = newBundle({ root, state, namespace: "ns", id: "c1", spec: "{}", sys });
  writeFileSync(join(b.path, "rootfs", "data"), "precious");
  sys.failUnmount = true;
  expect(() => deleteBundle(b, sys)).toThrow(/unmount rootfs/);
  sys.failUnmount = false;
  // still mounted-looking (non-empty) rootfs: never recursed into
  expect(() => deleteBundle(b, sys)).toThrow(/remove bundle rootfs/);
  expect(readFileSync(join(b.path, "rootfs", "data"), "utf8")).toBe("precious");
  expect(lstatSync(join(b.path, "work")).isSymbolicLink()).toBe(true);
});

test("loadBundle", () => {
  expect(loadBundle("/run/x", "ns", "c")).toEqual({ id: "c", namespace: "ns", path: "/run/x/ns/c" });
});

test("<state>/runc (runc's root) and other subsystem dirs are never listed as namespaces", () => {
  const state = mkdtempSync(join(tmpdir(), "bunker-ns-"));
  try {
    for (const d of ["runc/default/c1", "containers/x", "default/c1", "ns2/c2", ".hidden/c3"]) mkdirSync(join(state, d), { recursive: true });
    expect(listNamespaces(state).sort()).toEqual(["default", "ns2"]);
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
});
