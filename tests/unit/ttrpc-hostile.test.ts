// The server's limits against broken or hostile peers, over the in-memory duplex (which has flow
// control: a paused end is a peer that does not read). Each test also proves that a second, healthy
// connection on the same server keeps being answered.
import { describe, expect, test } from "bun:test";
import { heapStats } from "bun:jsc";
import { Code, InvalidArgumentError, ResourceExhaustedError } from "../../src/errdefs.ts";
import { Task } from "../../src/gen/containerd/task/v2/shim_pb.ts";
import {
  Channel,
  Client,
  FrameParser,
  FrameType,
  Server,
  encodeFrame,
  encodeHeader,
  memoryPair,
  type Duplex,
  type ServerConnection,
  type ServerOptions,
  type ServiceImpl,
} from "../../src/ttrpc/index.ts";
import { decodeResponse } from "../../src/ttrpc/wire-decode.ts";
import { encodeRequestFrame, type ResponseEnvelope } from "../../src/ttrpc/wire.ts";

const TASK = "containerd.task.v2.Task";

function taskServer(opts: ServerOptions = {}, impl: ServiceImpl<typeof Task> = {}): { server: Server; drops: Error[] } {
  const drops: Error[] = [];
  const server = new Server({ ...opts, onDrop: (e) => drops.push(e) });
  server.register(Task, { connect: (req) => ({ version: req.id, shimPid: 1 }), ...impl });
  return { server, drops };
}

/** A raw peer: writes frames, collects answers by stream id; `end.pause()` makes it stop reading. */
function rawPeer(server: Server): {
  end: Duplex;
  conn: ServerConnection;
  answers: Map<number, ResponseEnvelope>;
  closed: () => boolean;
} {
  const [a, b] = memoryPair();
  const conn = server.serve(b);
  const answers = new Map<number, ResponseEnvelope>();
  let closed = false;
  const parser = new FrameParser({ frame: (f) => answers.set(f.streamId, decodeResponse(f.data)), oversized: () => {} });
  a.onData((bytes) => parser.push(bytes));
  a.onClose(() => (closed = true));
  return { end: a, conn, answers, closed: () => closed };
}

function connectReq(id: number, payloadId = ""): Uint8Array {
  const payload = new TextEncoder().encode(payloadId);
  const body = payload.length === 0 ? new Uint8Array(0) : new Uint8Array([0x0a, ...varint(payload.length), ...payload]);
  return encodeRequestFrame(id, { service: TASK, method: "Connect", payload: body, timeoutNano: 0, metadata: [] });
}

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(1);
  }
}

function healthy(server: Server): Client {
  const [a, b] = memoryPair();
  server.serve(b);
  return new Client(a, { timeoutMs: 2000 });
}

describe("a peer that never reads its answers", () => {
  test("its requests stop being read past pauseBytes; answers stay bounded; reading again gets every answer", async () => {
    const { server, drops } = taskServer({ pauseBytes: 64 * 1024 });
    const peer = rawPeer(server);
    peer.end.pause!();
    const id = "x".repeat(4000); // each answer is ~4 KiB
    const n = 200;
    for (let i = 0; i < n; i++) peer.end.write(connectReq(2 * i + 1, id));
    await until(() => peer.conn.readPaused, "the server to stop reading");
    // Requests already read when the mark was crossed are still answered; then no more are read.
    await until(() => peer.conn.inFlight === 0, "calls in flight to finish");
    const queued = peer.conn.queuedBytes;
    expect(queued).toBeGreaterThanOrEqual(64 * 1024);
    expect(queued).toBeLessThan(64 * 1024 + 64 * 4100);
    expect((peer.end.buffered ?? 0) > 0).toBe(true); // the peer's own writes now wait: pushback reached it
    const c = healthy(server);
    expect((await c.service(Task).connect({ id: "ok" })).version).toBe("ok");
    peer.end.resume!();
    await until(() => peer.answers.size === n, "every answer");
    for (const a of peer.answers.values()) expect(a.status.code).toBe(Code.OK);
    expect(peer.conn.readPaused).toBe(false);
    expect(drops).toEqual([]);
  }, 20_000);

  test("past maxQueuedBytes the connection is dropped, its handlers' signals abort, others are untouched", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const aborted: unknown[] = [];
    const { server, drops } = taskServer(
      { pauseBytes: 64 * 1024, maxQueuedBytes: 256 * 1024 },
      {
        connect: async (req) => {
          await gate;
          return { version: req.id };
        },
        wait: (_r, ctx) => new Promise(() => ctx.signal.addEventListener("abort", () => aborted.push(ctx.signal.reason))),
      },
    );
    const peer = rawPeer(server);
    peer.end.pause!();
    peer.end.write(encodeRequestFrame(1, { service: TASK, method: "Wait", payload: new Uint8Array(0), timeoutNano: 0, metadata: [] }));
    // 8 calls whose 100 KiB answers all complete at once: 800 KiB for a peer that reads nothing.
    for (let i = 1; i <= 8; i++) peer.end.write(connectReq(2 * i + 1, "y".repeat(100 * 1024)));
    await until(() => peer.conn.inFlight === 9, "calls in flight");
    const c = healthy(server);
    release();
    await until(() => peer.conn.closed, "the drop");
    expect(drops.length).toBe(1);
    expect(drops[0]).toBeInstanceOf(ResourceExhaustedError);
    expect(drops[0]!.message).toContain("unread");
    await until(() => aborted.length === 1, "the Wait handler's abort");
    expect(server.connections).toBe(1);
    expect((await c.service(Task).connect({ id: "still" })).version).toBe("still");
  }, 20_000);
});

describe("calls in flight", () => {
  test("past maxInFlight a request is answered ResourceExhausted at once; the connection stays usable", async () => {
    const releases: (() => void)[] = [];
    const { server } = taskServer(
      { maxInFlight: 4 },
      { wait: () => new Promise((r) => releases.push(() => r({ exitStatus: 7 }))) },
    );
    const c = healthy(server);
    const waits = Array.from({ length: 4 }, () => c.service(Task).wait({ id: "w" }));
    await until(() => releases.length === 4, "4 waits in flight");
    const extra = await c.service(Task).wait({ id: "w" }).catch((e: unknown) => e);
    expect(extra).toBeInstanceOf(ResourceExhaustedError);
    expect((extra as Error).message).toContain("maximum is 4");
    releases[0]!();
    expect((await waits[0]!).exitStatus).toBe(7);
    expect((await c.service(Task).connect({ id: "room again" })).version).toBe("room again");
    for (const r of releases.slice(1)) r();
    await Promise.all(waits);
  });

  test("a flood of 5000 requests in one write: at most maxInFlight run, each gets one answer", async () => {
    let running = 0;
    let peak = 0;
    const { server } = taskServer(
      { maxInFlight: 64 },
      {
        state: async () => {
          peak = Math.max(peak, ++running);
          await Bun.sleep(1);
          running--;
          return {};
        },
      },
    );
    const peer = rawPeer(server);
    const frames: Uint8Array[] = [];
    for (let i = 0; i < 5000; i++) {
      frames.push(encodeRequestFrame(2 * i + 1, { service: TASK, method: "State", payload: new Uint8Array(0), timeoutNano: 0, metadata: [] }));
    }
    peer.end.write(Buffer.concat(frames));
    await until(() => peer.answers.size === 5000, "5000 answers");
    const codes = new Map<number, number>();
    for (const a of peer.answers.values()) codes.set(a.status.code, (codes.get(a.status.code) ?? 0) + 1);
    expect(peak).toBe(64);
    expect(codes.get(Code.OK)).toBe(64);
    expect(codes.get(Code.ResourceExhausted)).toBe(5000 - 64);
  }, 20_000);
});

describe("garbage", () => {
  test("a frame of unknown type drops that connection at once; the others keep being answered", async () => {
    const { server, drops } = taskServer();
    const c = healthy(server);
    const peer = rawPeer(server);
    peer.end.write(connectReq(1, "before"));
    await until(() => peer.answers.size === 1, "the first answer");
    peer.end.write(encodeFrame(3, 0x7f, new Uint8Array(16)));
    peer.end.write(connectReq(5, "after"));
    await until(() => peer.closed(), "the drop");
    expect(peer.answers.has(5)).toBe(false);
    expect(drops.length).toBe(1);
    expect(drops[0]).toBeInstanceOf(InvalidArgumentError);
    expect(drops[0]!.message).toContain("unknown type 127");
    expect((await c.service(Task).connect({ id: "fine" })).version).toBe("fine");
  });

  test("200 connections of random bytes: each is dropped or left skipping a lied length; a healthy one is answered", async () => {
    let seed = 99;
    const rand = (): number => ((seed = (seed * 1664525 + 1013904223) >>> 0), seed / 2 ** 32);
    const { server } = taskServer();
    const c = healthy(server);
    const peers = Array.from({ length: 200 }, () => rawPeer(server));
    for (const p of peers) {
      for (let k = 0; k < 8; k++) p.end.write(new Uint8Array(1 + Math.floor(rand() * 2048)).map(() => Math.floor(rand() * 256)));
    }
    const answered = await c.service(Task).connect({ id: "alive" });
    expect(answered.version).toBe("alive");
    await until(() => peers.every((p) => p.closed() || (p.end.buffered ?? 0) === 0), "every garbage byte delivered");
    const dropped = 201 - server.connections;
    // A random header has an unknown type 253 times in 256; the rest mostly claim > 4 MiB and are skipped.
    expect(dropped).toBeGreaterThan(180);
    await until(() => peers.filter((p) => p.closed()).length === dropped, "the dropped peers to see their end");
  }, 20_000);

  test("a header that lies about its length costs the bytes received, not the bytes claimed", () => {
    const before = heapStats().extraMemorySize;
    const parsers: FrameParser[] = [];
    for (let i = 0; i < 100; i++) {
      const p = new FrameParser({ frame: () => {}, oversized: () => {} });
      p.push(encodeHeader({ length: 4 << 20, streamId: 1, type: FrameType.Request, flags: 0 }));
      p.push(new Uint8Array(10));
      parsers.push(p);
    }
    // Pre-allocating each claimed body would be 400 MiB here.
    expect(heapStats().extraMemorySize - before).toBeLessThan(32 << 20);
    expect(parsers.every((p) => p.pending === 10)).toBe(true);
  });
});

describe("channel flow control without transport support", () => {
  test("a stream that cannot pause: input is held while paused, replayed in order, and capped", () => {
    let deliver!: (b: Uint8Array) => void;
    let closedWith: Error | undefined;
    let closes = 0;
    const bare: Duplex = {
      write: () => {},
      onData: (cb) => (deliver = cb),
      onClose: () => {},
      close: () => void closes++,
    };
    const seen: number[] = [];
    const ch = new Channel(bare, { frame: (f) => seen.push(f.streamId), oversized: () => {}, close: (e) => (closedWith = e) });
    ch.pause();
    deliver(encodeFrame(1, FrameType.Request, new Uint8Array(3)));
    deliver(encodeFrame(3, FrameType.Request, new Uint8Array(3)));
    expect(seen).toEqual([]);
    ch.resume();
    expect(seen).toEqual([1, 3]);
    ch.pause();
    for (let i = 0; i < 5; i++) deliver(new Uint8Array(1 << 20));
    expect(ch.closed).toBe(true);
    expect(closedWith).toBeInstanceOf(InvalidArgumentError);
    expect(closes).toBe(1);
  });
});
