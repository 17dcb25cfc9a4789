// A container's changing state (containers/config.ts state.json): read, changed and written through
// a rename, and not written at all when a change leaves its text as it was (a restart policy's loop
// records each exit twice; every write under --root costs a new inode on the host's disk).
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readState, STATE_FILE, updateState } from "../../src/containers/config.ts";

let dir = "";
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "bunker-state-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("container state", () => {
  test("a missing state reads as never restarted, never stopped by a user; the first change writes it", () => {
    expect(readState(dir)).toEqual({ restartCount: 0, manuallyStopped: false });
    const s = updateState(dir, (st) => {
      st.lastExit = { status: 1, at: "2024-01-01T00:00:00.000Z" };
    });
    expect(s.lastExit).toEqual({ status: 1, at: "2024-01-01T00:00:00.000Z" });
    expect(JSON.parse(readFileSync(join(dir, STATE_FILE), "utf8"))).toEqual(s);
    expect(readdirSync(dir)).toEqual([STATE_FILE]); // the temp file went with the rename
  });

  test("even a change to the defaults writes a state that did not exist", () => {
    updateState(dir, () => {});
    expect(existsSync(join(dir, STATE_FILE))).toBe(true);
    expect(readState(dir)).toEqual({ restartCount: 0, manuallyStopped: false });
  });

  test("recording the same exit again leaves the file as it is (same inode: nothing was written)", () => {
    const exit = { status: 1, at: "2024-01-01T00:00:00.000Z" };
    updateState(dir, (s) => {
      s.lastExit = exit;
      s.restartCount = 3;
    });
    const before = statSync(join(dir, STATE_FILE)).ino;
    const s = updateState(dir, (st) => {
      st.lastExit = { ...exit };
    });
    expect(s).toEqual({ restartCount: 3, manuallyStopped: false, lastExit: exit });
    expect(statSync(join(dir, STATE_FILE)).ino).toBe(before);
  });

  test("a real change is written (a new file renamed over the old one)", () => {
    updateState(dir, (s) => {
      s.restartCount = 1;
    });
    const before = statSync(join(dir, STATE_FILE)).ino;
    updateState(dir, (s) => {
      s.restartCount++;
      s.startedAt = "2024-01-01T00:00:01.000Z";
    });
    expect(statSync(join(dir, STATE_FILE)).ino).not.toBe(before);
    expect(readState(dir)).toEqual({ restartCount: 2, manuallyStopped: false, startedAt: "2024-01-01T00:00:01.000Z" });
  });

  test("a state file in another shape (written by hand, or by an older bunker) is rewritten in ours on a change", () => {
    writeFileSync(join(dir, STATE_FILE), `{ "restartCount": 2, "extra": true }\n`);
    const s = updateState(dir, () => {});
    expect(s).toEqual({ restartCount: 2, manuallyStopped: false });
    expect(readFileSync(join(dir, STATE_FILE), "utf8")).toBe(JSON.stringify(s));
  });

  test("a record removed meanwhile is not made again by a change", () => {
    rmSync(dir, { recursive: true });
    expect(updateState(dir, (s) => void (s.restartCount = 1)).restartCount).toBe(1);
    expect(existsSync(dir)).toBe(false);
  });
});
