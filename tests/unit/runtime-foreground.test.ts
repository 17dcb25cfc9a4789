// The foreground record that lets other bunkers see a `run --rm` container with no shim: owner
// identity (pid + start time, so a recycled pid is not mistaken for the owner) and listing.
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { processStartTime } from "../../src/proc.ts";
import { foregroundPid, listLiveForeground, liveForeground, ownerAlive, readForeground, writeForeground } from "../../src/runtime/foreground.ts";

const state = mkdtempSync("/tmp/bunker-fg-unit-");
afterAll(() => rmSync(state, { recursive: true, force: true }));

function bundle(ns: string, id: string): string {
  const p = join(state, ns, id);
  mkdirSync(p, { recursive: true });
  return p;
}

test("processStartTime reads field 22 of /proc/PID/stat, and nothing for a missing pid", () => {
  const mine = processStartTime(process.pid);
  expect(mine).toMatch(/^\d+$/);
  expect(processStartTime(process.pid)).toBe(mine!);
  expect(processStartTime(2 ** 22 + 7)).toBeUndefined();
});

test("an owner is alive only with the same pid and start time", () => {
  const start = processStartTime(process.pid)!;
  expect(ownerAlive({ owner: process.pid, ownerStart: start, runc: "runc", runcRoot: "/r" })).toBe(true);
  expect(ownerAlive({ owner: process.pid, ownerStart: String(Number(start) + 1), runc: "runc", runcRoot: "/r" })).toBe(false);
  expect(ownerAlive({ owner: 2 ** 22 + 7, ownerStart: start, runc: "runc", runcRoot: "/r" })).toBe(false);
});

test("records round-trip; a missing, garbled or incomplete record is no record", () => {
  const p = bundle("ns1", "a");
  expect(readForeground(p)).toBeUndefined();
  const rec = { owner: 42, ownerStart: "1234", runc: "/usr/sbin/runc", runcRoot: "/run/containerd/runc/ns1" };
  writeForeground(p, rec);
  expect(readForeground(p)).toEqual(rec);
  expect(readdirSync(p)).toEqual(["foreground"]); // written through a temp file, renamed whole
  writeFileSync(join(p, "foreground"), "{not json");
  expect(readForeground(p)).toBeUndefined();
  writeFileSync(join(p, "foreground"), JSON.stringify({ owner: "42", ownerStart: "1", runc: "r", runcRoot: "/" }));
  expect(readForeground(p)).toBeUndefined();
});

test("foregroundPid is 0 until runc wrote a positive pid", () => {
  const p = bundle("ns1", "b");
  expect(foregroundPid(p)).toBe(0);
  writeFileSync(join(p, "init.pid"), "garbage");
  expect(foregroundPid(p)).toBe(0);
  writeFileSync(join(p, "init.pid"), "4321");
  expect(foregroundPid(p)).toBe(4321);
});

test("listing finds live foreground bundles only, skipping ids the caller owns and shims' bundles", () => {
  const live = { owner: process.pid, ownerStart: processStartTime(process.pid)!, runc: "runc", runcRoot: "/r" };
  writeForeground(bundle("ns2", "live"), live);
  writeForeground(bundle("ns2", "dead"), { ...live, ownerStart: "1" });
  writeForeground(bundle("ns2", "listed"), live);
  bundle("ns2", "shim-task"); // no record: a shim's bundle
  bundle("ns2", ".hidden");
  const found = listLiveForeground(state, ["ns2", "missing-ns"], (_ns, id) => id === "listed");
  expect(found.map((f) => f.id)).toEqual(["live"]);
  expect(found[0]).toMatchObject({ namespace: "ns2", bundlePath: join(state, "ns2", "live"), pid: 0, record: live });
  expect(liveForeground(state, "ns2", "dead")).toBeUndefined();
  expect(liveForeground(state, "ns2", "shim-task")).toBeUndefined();
});
