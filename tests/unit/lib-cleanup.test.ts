// The pure half of the library's cleanup: which containers a session owns and which are leftovers
// (session-labels.ts), and the reaper's decisions on its pipe and on a fake process table
// (reaper-protocol.ts). The processes themselves are tested in tests/integration/lib-cleanup.test.ts.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CleanupSession } from "../../src/lib/cleanup.ts";
import { processStartTime } from "../../src/proc.ts";
import { encodeMessage, type Message, parseMessage, ReaperState, type Target } from "../../src/lib/reaper-protocol.ts";
import { leftovers, ownerGone, ownerOf, sessionContainers, sessionLabels } from "../../src/lib/session-labels.ts";

const target: Target = { daemon: false, root: "/r", state: "/s", address: "/s/e.sock" };

function container(id: string, labels: Record<string, string>, namespace = "ns") {
  return { namespace, id, labels };
}

describe("session labels", () => {
  const a = sessionLabels({ session: "A", pid: 100, pidStart: "5000" });
  const b = sessionLabels({ session: "B", pid: 200, pidStart: "6000" });
  const all = [container("a1", a), container("a2", { ...a, user: "x" }, "other"), container("b1", b), container("plain", {}), container("fake", { "bunker.lib.session": "A" })];

  test("a session's containers are found in every namespace, and only with the library's mark", () => {
    expect(sessionContainers(all, "A").map((c) => c.id)).toEqual(["a1", "a2"]);
    expect(sessionContainers(all, "C")).toEqual([]);
  });

  test("the owner is read back from the labels; a container without them has none", () => {
    expect(ownerOf(all[0]!)).toEqual({ session: "A", pid: 100, pidStart: "5000" });
    expect(ownerOf(container("x", {}))).toBeUndefined();
    expect(ownerOf(container("x", { ...a, "bunker.lib.pid": "zero" }))).toBeUndefined();
  });

  test("an owner is gone when its pid is free or now names a process started at another time", () => {
    const owner = { session: "A", pid: 100, pidStart: "5000" };
    expect(ownerGone(owner, () => undefined)).toBe(true);
    expect(ownerGone(owner, () => "7777")).toBe(true);
    expect(ownerGone(owner, () => "5000")).toBe(false);
    // no start time recorded: only the pid can say
    expect(ownerGone({ ...owner, pidStart: "" }, () => "7777")).toBe(false);
  });

  test("leftovers are the containers of dead sessions, never a live one's, ours or a user's", () => {
    const table = new Map([[200, "6000"]]); // B lives; A's pid is free
    const looked: number[] = [];
    const startOf = (pid: number) => (looked.push(pid), table.get(pid));
    expect(leftovers(all, startOf).map((c) => c.id)).toEqual(["a1", "a2"]);
    expect(looked.filter((p) => p === 100)).toEqual([100]); // one look per session
    expect(leftovers(all, startOf, "A")).toEqual([]);
    table.set(200, "6001"); // B's pid reused
    expect(leftovers(all, () => table.get(200), "A").map((c) => c.id)).toEqual(["b1"]);
  });
});

describe("reaper protocol", () => {
  test("messages survive the pipe; unknown or malformed lines are ignored", () => {
    const msgs: Message[] = [{ t: "target", target }, { t: "net", net: { root: "/r", state: "/s", name: "n1" } }, { t: "reap" }, { t: "done" }];
    for (const m of msgs) expect(parseMessage(encodeMessage(m).trimEnd())).toEqual(m);
    for (const bad of ["", "{", "null", '{"t":"nuke"}', '{"t":"target","target":{"root":"/r"}}', '{"t":"net","net":{"name":1}}']) expect(parseMessage(bad)).toBeUndefined();
  });

  test("lines split across reads are joined; targets and networks are remembered once", () => {
    const s = new ReaperState(100, "5000");
    const text = encodeMessage({ t: "target", target }) + encodeMessage({ t: "target", target }) + encodeMessage({ t: "net", net: { root: "/r", state: "/s", name: "n1" } });
    for (let i = 0; i < text.length; i += 7) expect(s.onData(text.slice(i, i + 7))).toBe("wait");
    expect(s.targets).toEqual([target]);
    expect(s.networks.map((n) => n.name)).toEqual(["n1"]);
    s.onData(encodeMessage({ t: "unnet", net: { root: "/r", state: "/s", name: "n1" } }));
    expect(s.networks).toEqual([]);
  });

  test("the end of the pipe without done means the parent died: reap, once", () => {
    const s = new ReaperState(100, "5000");
    s.onData(encodeMessage({ t: "target", target }));
    expect(s.onEof()).toBe("reap");
    expect(s.onParentCheck(undefined)).toBe("wait");
    expect(s.onEof()).toBe("wait");
  });

  test("done ends the reaper without reaping, even when the pipe then ends", () => {
    const s = new ReaperState(100, "5000");
    expect(s.onData(encodeMessage({ t: "target", target }) + encodeMessage({ t: "done" }))).toBe("exit");
    expect(s.onEof()).toBe("wait");
  });

  test("reap asks for the removal now", () => {
    const s = new ReaperState(100, "5000");
    expect(s.onData(encodeMessage({ t: "target", target }) + encodeMessage({ t: "reap" }))).toBe("reap");
  });

  test("nothing registered: a dead parent leaves nothing to look for", () => {
    expect(new ReaperState(100, "5000").onEof()).toBe("exit");
  });

  test("the process table: the same start time is the parent; none, or another, is its death", () => {
    // A fake /proc over time: the parent lives, dies, and its pid is taken by another process.
    const table: (string | undefined)[] = ["5000", "5000", "9999"];
    const s = new ReaperState(100, "5000");
    s.onData(encodeMessage({ t: "target", target }));
    expect(s.onParentCheck(table[0])).toBe("wait");
    expect(s.onParentCheck(table[1])).toBe("wait");
    // dead: first read what the pipe still holds, then reap
    expect(s.onParentCheck(table[2])).toBe("drain");
    expect(s.onParentCheck(table[2])).toBe("wait");
    expect(s.onDrained()).toBe("reap");

    const gone = new ReaperState(100, "5000");
    gone.onData(encodeMessage({ t: "target", target }));
    expect(gone.onParentCheck(undefined)).toBe("drain");
    expect(gone.onEof()).toBe("reap");

    // a parent whose start time could not be read is checked by pid only
    const unknown = new ReaperState(100, "");
    unknown.onData(encodeMessage({ t: "target", target }));
    expect(unknown.onParentCheck("9999")).toBe("wait");
    expect(unknown.onParentCheck(undefined)).toBe("drain");
  });

  test("a parent dead before its reaper read the pipe: what it wrote is still reaped", () => {
    // seen in CI under load: the reaper started after its short-lived parent had tracked a
    // container and died; deciding on /proc alone found no target and left the container running
    const s = new ReaperState(100, "5000");
    expect(s.onParentCheck(undefined)).toBe("drain");
    expect(s.onData(encodeMessage({ t: "target", target }))).toBe("wait");
    expect(s.onEof()).toBe("reap");
    expect(s.targets).toEqual([target]);

    // a "done" still in the pipe is honoured; nothing at all in it: nothing to look for
    const done = new ReaperState(100, "5000");
    expect(done.onParentCheck(undefined)).toBe("drain");
    expect(done.onData(encodeMessage({ t: "target", target }) + encodeMessage({ t: "done" }))).toBe("exit");
    const empty = new ReaperState(100, "5000");
    expect(empty.onParentCheck(undefined)).toBe("drain");
    expect(empty.onDrained()).toBe("exit");
  });
});

describe("cleanup session", () => {
  const dir = mkdtempSync(join(tmpdir(), "lib-cleanup-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  // A stand-in reaper that records what the session told it (and its argv), then exits.
  function recordingSession(out: string): CleanupSession {
    // written whole (temp + rename): a test polling for the file must never read it half-written
    const script = `const t = await Bun.stdin.text(); const fs = require("node:fs"); fs.writeFileSync(${JSON.stringify(out + ".tmp")}, JSON.stringify({ argv: process.argv.slice(-3), text: t })); fs.renameSync(${JSON.stringify(out + ".tmp")}, ${JSON.stringify(out)});`;
    return new CleanupSession({ reaperCommand: () => [process.execPath, "-e", script], hookProcess: false });
  }
  const read = (out: string) => JSON.parse(readFileSync(out, "utf8")) as { argv: string[]; text: string };

  test("labels name the session, this process and its start time", () => {
    const s = new CleanupSession({ hookProcess: false });
    expect(s.labels["bunker.lib"]).toBe("1");
    expect(s.labels["bunker.lib.session"]).toBe(s.identity.session);
    expect(s.labels["bunker.lib.pid"]).toBe(String(process.pid));
    expect(s.labels["bunker.lib.pid.start"]).toBe(processStartTime(process.pid)!);
    expect(s.reaperPid).toBeUndefined(); // no reaper before the first container
  });

  test("the reaper learns each target once; a session with containers left ends with reap and waits for it", async () => {
    const out = join(dir, `told-${Math.random()}.json`);
    const s = recordingSession(out);
    s.track({ namespace: "ns", id: "a", ...target });
    s.track({ namespace: "ns", id: "b", ...target });
    s.trackNetwork({ root: "/r", state: "/s", name: "n1" });
    expect(s.reaperPid).toBeGreaterThan(0);
    await s.end();
    const told = read(out);
    expect(told.argv).toEqual([String(process.pid), processStartTime(process.pid)!, s.identity.session]);
    expect(told.text.split("\n").filter(Boolean).map((l) => parseMessage(l)?.t)).toEqual(["target", "net", "reap"]);
    expect(s.reaperPid).toBeUndefined();
  });

  test("a session whose containers were all removed ends with done", async () => {
    const out = join(dir, `told-${Math.random()}.json`);
    const s = recordingSession(out);
    s.track({ namespace: "ns", id: "a", ...target });
    s.untrack({ namespace: "ns", id: "a", ...target });
    const pid = s.reaperPid!;
    await s.end(); // does not wait for a reaper with nothing to do
    for (let i = 0; i < 1000 && !existsSync(out); i++) await Bun.sleep(10);
    expect(read(out).text.split("\n").filter(Boolean).map((l) => parseMessage(l)?.t)).toEqual(["target", "done"]);
    expect(pid).toBeGreaterThan(0);
  });
});
