// The store's cross-process locks over the real flock(2) (no root needed): conflicts between open
// file descriptions, the timed retry, and lock files deleted under waiters without two holders.
import { afterEach, beforeEach, expect, test } from "bun:test";
import * as fs from "node:fs";
import { join } from "node:path";
import { acquireLock, tryLock } from "../../src/sys/filelock.ts";

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync("/tmp/bunker-snapshots-lock-");
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

test("exclusive excludes everyone; shared holders coexist and exclude an exclusive one", () => {
  const path = join(dir, "chain.x");
  const ex = tryLock(path, "exclusive");
  expect(ex).not.toBeNull();
  expect(tryLock(path, "exclusive")).toBeNull(); // a second open file description, even in this process
  expect(tryLock(path, "shared")).toBeNull();
  ex!.release();
  const a = tryLock(path, "shared");
  const b = tryLock(path, "shared");
  expect([a, b].every(Boolean)).toBe(true);
  expect(tryLock(path, "exclusive")).toBeNull();
  a!.release();
  b!.release();
  const again = tryLock(path, "exclusive");
  expect(again).not.toBeNull();
  again!.release();
  again!.release(); // releasing twice is harmless
});

test("acquireLock waits with a timer (the event loop keeps running) and gets the lock once it is released", async () => {
  const path = join(dir, "chain.y");
  const held = tryLock(path, "exclusive")!;
  let waited = false;
  const pending = acquireLock(path, "exclusive", { onWait: () => (waited = true) });
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  // the loop keeps turning while the lock is awaited: a few ticks, however loaded the machine is
  for (let i = 0; i < 200 && ticks <= 3; i++) await Bun.sleep(10);
  expect(waited).toBe(true);
  expect(ticks).toBeGreaterThan(3);
  held.release();
  const got = await pending;
  clearInterval(timer);
  expect(got.mode).toBe("exclusive");
  got.release();
});

test("an abort signal ends the wait with its reason", async () => {
  const path = join(dir, "chain.z");
  const held = tryLock(path, "exclusive")!;
  const ctl = new AbortController();
  const pending = acquireLock(path, "shared", { signal: ctl.signal });
  ctl.abort(new Error("pull cancelled"));
  await expect(pending).rejects.toThrow("pull cancelled");
  held.release();
});

test("a lock file removed by its holder is re-created for the waiter, never shared by two holders", async () => {
  const path = join(dir, "key.c1");
  const first = tryLock(path, "exclusive")!;
  const waiter = acquireLock(path, "exclusive");
  await Bun.sleep(10);
  first.release({ removeFile: true });
  const second = await waiter;
  expect(fs.existsSync(path)).toBe(true); // the waiter locked a fresh file at the path, not the unlinked inode
  expect(tryLock(path, "exclusive")).toBeNull();
  second.release({ removeFile: true });
  expect(fs.existsSync(path)).toBe(false);
});

test("a shared hold never deletes the file", () => {
  const path = join(dir, "chain.s");
  tryLock(path, "shared")!.release({ removeFile: true });
  expect(fs.existsSync(path)).toBe(true);
});
