// The manager's shim starter (src/runtime/shim-actions.ts) with a fake `start` action and fake
// connections: one start per live group however many creates arrive at once, a bounded pool for
// the starts that remain, and a fallback to `start` when the group's shim is going away.
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { socketAddress } from "../../src/contract/address.ts";
import { NAMESPACE_GROUP_KEY } from "../../src/contract/grouping.ts";
import { BUNKER_RUNTIME } from "../../src/contract/runtime.ts";
import { ResourceExhaustedError, UnavailableError } from "../../src/errdefs.ts";
import type { ShimConnection } from "../../src/runtime/shim.ts";
import { Pool, ShimActions } from "../../src/runtime/shim-actions.ts";
import type { ShimCommandConfig } from "../../src/runtime/shimproc.ts";

const dir = mkdtempSync(join(tmpdir(), "bunker-shim-actions-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const API = "/run/bunker-test/bunker.sock";

function cmd(id: string, annotations: Record<string, string> = {}): ShimCommandConfig {
  const path = join(dir, "ns", id);
  mkdirSync(path, { recursive: true });
  writeFileSync(join(path, "config.json"), JSON.stringify({ annotations }));
  return { binary: "/bin/false", bundle: { id, namespace: "ns", path }, address: API, ttrpcAddress: "", publishBinary: "" };
}

/** A connection whose Connect answers with the given sequence (then success), counting the calls. */
function fakeConn(answers: (Error | undefined)[] = []): ShimConnection & { connects: string[] } {
  const connects: string[] = [];
  return {
    closed: false,
    connects,
    task: {
      connect: async ({ id }: { id: string }) => {
        connects.push(id);
        const a = answers.shift();
        if (a) throw a;
        return { shimPid: 1, taskPid: 0 };
      },
    },
  } as unknown as ShimConnection & { connects: string[] };
}

/** The manager's connection table: connect() makes (and keeps) a fake connection per address. */
function table(make: () => ShimConnection = () => fakeConn()) {
  const conns = new Map<string, ShimConnection>();
  return {
    conns,
    liveConnection: (a: string) => conns.get(a),
    connect: async (a: string) => {
      let c = conns.get(a);
      if (!c) conns.set(a, (c = Object.assign(make(), { address: a })));
      return c;
    },
  };
}

test("200 concurrent creates in one group: one start, 199 reservations over the live connection", async () => {
  const conn = fakeConn();
  const t = table(() => conn);
  let inStart = 0;
  const starter = new ShimActions({
    apiAddress: API,
    ...t,
    start: async (c) => {
      inStart++;
      await Bun.sleep(30);
      return socketAddress(API, c.bundle.namespace, NAMESPACE_GROUP_KEY);
    },
  });
  const ids = Array.from({ length: 200 }, (_, i) => `c${i}`);
  const addresses = await Promise.all(ids.map((id) => starter.shimFor(BUNKER_RUNTIME, cmd(id), undefined).then((r) => r.conn.address)));
  const want = socketAddress(API, "ns", NAMESPACE_GROUP_KEY);
  expect(new Set(addresses)).toEqual(new Set([want]));
  expect(inStart).toBe(1);
  expect(starter.counts).toEqual({ spawned: 1, reused: 199 });
  expect(conn.connects.length).toBe(199);
  // a reused address is written where loading after a restart looks for it, as `start` does
  expect(readFileSync(join(dir, "ns", "c7", "address"), "utf8")).toBe(want);
});

test("different groups start their own shims; a group's annotation is honoured", async () => {
  const started: string[] = [];
  const starter = new ShimActions({
    apiAddress: API,
    ...table(),
    start: async (c) => {
      const group = c.bundle.id.startsWith("a") ? "pod-a" : "pod-b";
      started.push(group);
      return socketAddress(API, "ns", group);
    },
  });
  const jobs = ["a1", "a2", "b1", "b2"].map((id) =>
    starter.shimFor(BUNKER_RUNTIME, cmd(id, { "io.kubernetes.cri.sandbox-id": id.startsWith("a") ? "pod-a" : "pod-b" }), undefined).then((r) => r.conn.address),
  );
  const got = await Promise.all(jobs);
  expect(got[0]).toBe(got[1]!);
  expect(got[2]).toBe(got[3]!);
  expect(got[0]).not.toBe(got[2]!);
  expect(started.sort()).toEqual(["pod-a", "pod-b"]);
});

test("a shim that refuses the reservation (going away) is replaced through start", async () => {
  const address = socketAddress(API, "ns", NAMESPACE_GROUP_KEY);
  const dying = fakeConn([new UnavailableError("shim is shutting down")]);
  let starts = 0;
  const fresh = Object.assign(fakeConn(), { address });
  const starter = new ShimActions({
    apiAddress: API,
    liveConnection: () => dying,
    connect: async () => fresh,
    start: async () => {
      starts++;
      return address;
    },
  });
  expect(await starter.shimFor(BUNKER_RUNTIME, cmd("x1"), undefined)).toEqual({ conn: fresh, spawned: true });
  expect(starts).toBe(1);
});

test("too many pending reservations: the create waits for room instead of failing", async () => {
  const busy = fakeConn([new ResourceExhaustedError("too many pending reservations"), new ResourceExhaustedError("again")]);
  const starter = new ShimActions({ apiAddress: API, liveConnection: () => busy, connect: async () => busy, start: async () => "unix:///nowhere" });
  expect(await starter.shimFor(BUNKER_RUNTIME, cmd("y1"), undefined)).toEqual({ conn: busy, spawned: false });
  expect(busy.connects).toEqual(["y1", "y1", "y1"]);
  expect(starter.counts.spawned).toBe(0);
});

test("another runtime's starts all run, at most the pool's size at once", async () => {
  let now = 0;
  let peak = 0;
  const starter = new ShimActions({
    apiAddress: API,
    ...table(),
    pool: new Pool(3),
    start: async (c) => {
      peak = Math.max(peak, ++now);
      await Bun.sleep(5);
      now--;
      return `unix:///run/x/${c.bundle.id}`;
    },
  });
  const got = await Promise.all(Array.from({ length: 20 }, (_, i) => starter.shimFor("io.containerd.runc.v2", cmd(`r${i}`), undefined).then((r) => r.conn.address)));
  expect(new Set(got).size).toBe(20);
  expect(peak).toBe(3);
  expect(starter.counts.spawned).toBe(20);
});

test("a failed start is not cached: the next create of the group tries again", async () => {
  let n = 0;
  const starter = new ShimActions({
    apiAddress: API,
    ...table(),
    start: async () => {
      if (n++ === 0) throw new Error("shim start failed: boom");
      return socketAddress(API, "ns", NAMESPACE_GROUP_KEY);
    },
  });
  const first = starter.shimFor(BUNKER_RUNTIME, cmd("f1"), undefined);
  const second = starter.shimFor(BUNKER_RUNTIME, cmd("f2"), undefined);
  expect(first).rejects.toThrow("boom");
  // the create that waited on the failed start runs its own
  expect((await second).conn.address).toBe(socketAddress(API, "ns", NAMESPACE_GROUP_KEY));
  expect(starter.counts.spawned).toBe(2);
});

test("delete actions share the pool: 50 dead-shim cleanups run 2 at a time", async () => {
  let now = 0;
  let peak = 0;
  const actions = new ShimActions({
    apiAddress: API,
    ...table(),
    pool: new Pool(2),
    delete: async () => {
      peak = Math.max(peak, ++now);
      await Bun.sleep(2);
      now--;
      return { pid: 1, exitStatus: 137, exitedAt: new Date() };
    },
  });
  const exits = await Promise.all(Array.from({ length: 50 }, (_, i) => actions.delete(cmd(`d${i}`))));
  expect(exits.every((e) => e.exitStatus === 137)).toBe(true);
  expect(peak).toBe(2);
});
