// Client and server over an in-memory duplex: every behaviour that does not need a socket.
import { describe, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  AlreadyExistsError,
  CanceledError,
  Code,
  DeadlineExceededError,
  InvalidArgumentError,
  NotFoundError,
  NotImplementedError,
  ResourceExhaustedError,
  UnavailableError,
  UnknownError,
} from "../../src/errdefs.ts";
import { Events, ForwardRequestSchema } from "../../src/gen/containerd/services/events/ttrpc/v1/events_pb.ts";
import { StateRequestSchema, Task, WaitResponseSchema, type WaitResponse } from "../../src/gen/containerd/task/v2/shim_pb.ts";
import type { CallContext, Duplex, ServiceImpl } from "../../src/ttrpc/index.ts";
import { Client, FrameParser, FrameType, Server, encodeFrame, memoryPair } from "../../src/ttrpc/index.ts";
import { decodeResponse } from "../../src/ttrpc/wire-decode.ts";
import { encodeRequestFrame, encodeResponseFrame, type ResponseEnvelope } from "../../src/ttrpc/wire.ts";

function connect(server: Server, opts?: ConstructorParameters<typeof Client>[1]): Client {
  const [a, b] = memoryPair();
  server.serve(b);
  return new Client(a, opts);
}

/** A raw peer: writes frames, collects decoded responses by stream id. */
function rawPeer(server: Server): { end: Duplex; responses: Map<number, ResponseEnvelope>; next(n: number): Promise<void> } {
  const [a, b] = memoryPair();
  server.serve(b);
  const responses = new Map<number, ResponseEnvelope>();
  let waiters: (() => void)[] = [];
  const parser = new FrameParser({
    frame: (f) => {
      expect(f.type).toBe(FrameType.Response);
      responses.set(f.streamId, decodeResponse(f.data));
      const w = waiters;
      waiters = [];
      for (const fn of w) fn();
    },
    oversized: () => {
      throw new Error("unexpected oversized response");
    },
  });
  a.onData((bytes) => parser.push(bytes));
  a.onClose(() => {});
  const next = async (n: number): Promise<void> => {
    while (responses.size < n) await new Promise<void>((r) => waiters.push(r));
  };
  return { end: a, responses, next };
}

function taskServer(overrides: ServiceImpl<typeof Task> = {}): Server {
  const server = new Server();
  server.register(Task, {
    connect: (req, ctx) => ({ shimPid: 10, taskPid: 20, version: `${req.id}@${ctx.namespace ?? "-"}` }),
    ...overrides,
  });
  return server;
}

describe("typed calls", () => {
  test("call() and the service proxy return decoded responses", async () => {
    const c = connect(taskServer(), { namespace: "k8s.io" });
    const viaCall = await c.call(Task.method.connect, { id: "a" });
    expect(viaCall).toMatchObject({ shimPid: 10, taskPid: 20, version: "a@k8s.io" });
    const viaProxy = await c.service(Task).connect({ id: "b" }, { namespace: "other" });
    expect(viaProxy.version).toBe("b@other");
    c.close();
  });

  test("a handler that returns nothing answers an empty message", async () => {
    const seen: number[] = [];
    const server = taskServer({ kill: (req) => void seen.push(req.signal) });
    const c = connect(server);
    const out = await c.service(Task).kill({ id: "x", signal: 9 });
    expect(out.$typeName).toBe("google.protobuf.Empty");
    expect(seen).toEqual([9]);
  });

  test("metadata: keys lowercased, multi-valued, client defaults overridden per call", async () => {
    let got: CallContext | undefined;
    const server = taskServer({
      state: (_req: unknown, ctx: CallContext) => {
        got = ctx;
        return {};
      },
    });
    const c = connect(server, { metadata: { "X-Base": "1", Keep: "k" } });
    await c.service(Task).state({ id: "a" }, { metadata: { "x-base": ["2", "3"], Extra: "e" } });
    expect([...got!.metadata.entries()].sort()).toEqual([
      ["extra", ["e"]],
      ["keep", ["k"]],
      ["x-base", ["2", "3"]],
    ]);
    expect(got!.namespace).toBeUndefined();
    expect(got!.service).toBe("containerd.task.v2.Task");
    expect(got!.method).toBe("State");
  });
});

describe("concurrency", () => {
  test("200 calls in flight on one connection, answered out of order, each gets its own answer", async () => {
    const release: (() => void)[] = [];
    const server = taskServer({
      connect: async (req) => {
        await new Promise<void>((r) => release.push(r));
        return { version: req.id };
      },
    });
    const c = connect(server);
    const calls = Array.from({ length: 200 }, (_, i) => c.service(Task).connect({ id: `c${i}` }));
    while (release.length < 200) await Bun.sleep(0);
    expect(c.inFlight).toBe(200);
    for (const r of release.reverse()) r();
    const out = await Promise.all(calls);
    expect(out.map((o) => o.version)).toEqual(Array.from({ length: 200 }, (_, i) => `c${i}`));
  });

  test("stream ids are odd, start at 1 and step by 2", async () => {
    const [a, b] = memoryPair();
    const ids: number[] = [];
    b.onData((bytes) => parser.push(bytes));
    b.onClose(() => {});
    const parser = new FrameParser({
      frame: (f) => {
        ids.push(f.streamId);
        b.write(encodeResponseFrame(f.streamId, { status: { code: 0, message: "", details: [] }, payload: new Uint8Array(0) }));
      },
      oversized: () => {},
    });
    const c = new Client(a);
    for (let i = 0; i < 4; i++) await c.call(Task.method.connect, { id: "x" });
    expect(ids).toEqual([1, 3, 5, 7]);
  });
});


describe("deadlines and cancellation", () => {
  test("timeoutMs becomes the handler's deadline and the client fails with DeadlineExceeded", async () => {
    let ctxSeen: CallContext | undefined;
    let abortReason: unknown;
    const server = taskServer({
      wait: (_req: unknown, ctx: CallContext) => {
        ctxSeen = ctx;
        return new Promise((_, reject) =>
          ctx.signal.addEventListener("abort", () => {
            abortReason = ctx.signal.reason;
            reject(ctx.signal.reason);
          }),
        );
      },
    });
    const c = connect(server);
    const t0 = Date.now();
    const err = await c.service(Task).wait({ id: "x" }, { timeoutMs: 80 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeadlineExceededError);
    expect(ctxSeen!.deadline).toBeGreaterThanOrEqual(t0 + 70);
    expect(ctxSeen!.deadline).toBeLessThanOrEqual(Date.now() + 80);
    while (abortReason === undefined) await Bun.sleep(5);
    expect((abortReason as Error).name).toBe("TimeoutError");
  });

  test("the server answers DeadlineExceeded (4) when its handler gives up at timeout_nano", async () => {
    const server = taskServer({
      wait: (_req: unknown, ctx: CallContext) =>
        new Promise((_, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason))),
    });
    const peer = rawPeer(server);
    const waitReq = { service: "containerd.task.v2.Task", method: "Wait", payload: new Uint8Array(0), metadata: [] };
    peer.end.write(encodeRequestFrame(1, { ...waitReq, timeoutNano: 30e6 }));
    await peer.next(1);
    expect(peer.responses.get(1)!.status.code).toBe(Code.DeadlineExceeded);
  });

  test("aborting a call's signal fails it with CanceledError; a later answer is dropped", async () => {
    let release!: () => void;
    const server = taskServer({ wait: () => new Promise<WaitResponse>((r) => (release = () => r(create(WaitResponseSchema))))});
    const c = connect(server);
    const ac = new AbortController();
    const p = c.service(Task).wait({ id: "x" }, { signal: ac.signal });
    while (!release) await Bun.sleep(0);
    ac.abort();
    expect(await p.catch((e: unknown) => e)).toBeInstanceOf(CanceledError);
    release();
    expect((await c.service(Task).connect({ id: "still" })).version).toBe("still@-");
    expect(c.inFlight).toBe(0);
  });

  test("a request the schema cannot encode fails locally with InvalidArgumentError", async () => {
    const c = connect(taskServer());
    const err = await c.service(Task).kill({ id: "x", signal: -1 }).catch((e: unknown) => e); // not a uint32
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(c.inFlight).toBe(0);
  });

  test("non-positive timeouts fail at once", async () => {
    const c = connect(taskServer());
    expect(await c.service(Task).connect({}, { timeoutMs: 0 }).catch((e: unknown) => e)).toBeInstanceOf(DeadlineExceededError);
  });
});

describe("status codes", () => {
  test("errdefs errors thrown by handlers arrive as the same classes with their messages", async () => {
    const server = taskServer({
      state: () => {
        throw new NotFoundError("container x: not found");
      },
      pids: async () => {
        throw new AlreadyExistsError("dup");
      },
    });
    const c = connect(server);
    const e1 = await c.service(Task).state({ id: "x" }).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(NotFoundError);
    expect((e1 as Error).message).toBe("container x: not found");
    expect(await c.service(Task).pids({}).catch((e: unknown) => e)).toBeInstanceOf(AlreadyExistsError);
  });

  test("other errors are Unknown and reported to onError", async () => {
    const reported: string[] = [];
    const server = new Server({ onError: (err, info) => reported.push(`${info.method}: ${(err as Error).message}`) });
    server.register(Task, {
      state: () => {
        throw new TypeError("boom");
      },
    });
    const c = connect(server);
    const err = await c.service(Task).state({}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnknownError);
    expect((err as Error).message).toBe("boom");
    expect(reported).toEqual(["State: boom"]);
  });

  test("unknown service and unregistered method answer Unimplemented (12)", async () => {
    const c = connect(taskServer());
    const e1 = await c.service(Events).forward({}).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(NotImplementedError);
    expect((e1 as Error).message).toBe("service containerd.services.events.ttrpc.v1.Events");
    const e2 = await c.service(Task).shutdown({}).catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(NotImplementedError);
    expect((e2 as Error).message).toBe("method Shutdown");
  });

  test("an undecodable payload answers InvalidArgument (3)", async () => {
    const c = connect(taskServer({ state: () => ({}) }));
    const err = await c
      .callRaw("containerd.task.v2.Task", "State", new Uint8Array([0x0a, 0x09, 0x01]))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
  });
});

describe("raw frames", () => {
  const stateReq = toBinary(StateRequestSchema, create(StateRequestSchema, { id: "x" }));
  const req = (service = "containerd.task.v2.Task", method = "Connect") => ({
    service,
    method,
    payload: stateReq,
    timeoutNano: 0,
    metadata: [],
  });

  test("an even stream id answers InvalidArgument on that stream id", async () => {
    const peer = rawPeer(taskServer());
    peer.end.write(encodeRequestFrame(2, req()));
    await peer.next(1);
    expect(peer.responses.get(2)!.status).toMatchObject({ code: Code.InvalidArgument });
  });

  test("an undecodable request envelope answers InvalidArgument", async () => {
    const peer = rawPeer(taskServer());
    peer.end.write(encodeFrame(5, FrameType.Request, new Uint8Array([0x0a, 0x7f])));
    await peer.next(1);
    expect(peer.responses.get(5)!.status.code).toBe(Code.InvalidArgument);
  });

  test("an oversized frame answers ResourceExhausted, and the connection keeps answering", async () => {
    const peer = rawPeer(taskServer());
    const big = encodeFrame(7, FrameType.Request, new Uint8Array((4 << 20) + 1));
    // Delivered in pieces, as a socket would.
    for (let i = 0; i < big.length; i += 1 << 18) peer.end.write(big.subarray(i, i + (1 << 18)));
    peer.end.write(encodeRequestFrame(9, req()));
    await peer.next(2);
    expect(peer.responses.get(7)!.status.code).toBe(Code.ResourceExhausted);
    expect(peer.responses.get(9)!.status.code).toBe(Code.OK);
  });

  test("response and data frames sent to a server are ignored", async () => {
    const peer = rawPeer(taskServer());
    peer.end.write(encodeFrame(1, FrameType.Response, new Uint8Array([1, 2])));
    peer.end.write(encodeFrame(3, FrameType.Data, new Uint8Array([1, 2])));
    peer.end.write(encodeRequestFrame(5, req()));
    await peer.next(1);
    expect([...peer.responses.keys()]).toEqual([5]);
  });
});

describe("garbage from the peer", () => {
  // Deterministic so that a failure reproduces.
  let seed = 1234;
  const rand = (): number => ((seed = (seed * 1664525 + 1013904223) >>> 0), seed / 2 ** 32);
  const bytes = (n: number): Uint8Array => new Uint8Array(n).map(() => Math.floor(rand() * 256));

  test("every request frame, however malformed, gets exactly one answer and the server keeps serving", async () => {
    const peer = rawPeer(taskServer({ state: () => ({}) }));
    const valid = (service: string, method: string, payload: Uint8Array) =>
      encodeRequestFrame(0, { service, method, payload, timeoutNano: 0, metadata: [] }).subarray(10);
    const n = 300;
    for (let i = 0; i < n; i++) {
      const kind = i % 4;
      // random envelope bytes; a real envelope with a random payload; random service/method; an even id
      const data =
        kind === 0
          ? bytes(Math.floor(rand() * 64))
          : kind === 1
            ? valid("containerd.task.v2.Task", "State", bytes(Math.floor(rand() * 32)))
            : valid(String.fromCharCode(...bytes(8)), "State", new Uint8Array(0));
      const id = kind === 3 ? 2 * i + 2 : 2 * i + 1;
      peer.end.write(encodeFrame(id, FrameType.Request, data));
    }
    await peer.next(n);
    expect(peer.responses.size).toBe(n);
    const codes = new Set([...peer.responses.values()].map((r) => r.status.code));
    for (const c of codes) expect([Code.OK, Code.InvalidArgument, Code.Unimplemented]).toContain(c as never);
    peer.end.write(encodeRequestFrame(100001, { service: "containerd.task.v2.Task", method: "Connect", payload: new Uint8Array(0), timeoutNano: 0, metadata: [] }));
    await peer.next(n + 1);
    expect(peer.responses.get(100001)!.status.code).toBe(Code.OK);
  });

  test("garbage response frames never break a client: unknown ids are dropped, bad envelopes fail only their call", async () => {
    const [a, b] = memoryPair();
    b.onData(() => {});
    b.onClose(() => {});
    const c = new Client(a);
    const pending = c.callRaw("s", "m", new Uint8Array(0)).catch((e: unknown) => e); // stream 1
    for (let i = 0; i < 200; i++) b.write(encodeFrame(1001 + 2 * i, FrameType.Response, bytes(Math.floor(rand() * 40))));
    b.write(encodeFrame(1, FrameType.Response, new Uint8Array([0x0a, 0x7f])));
    expect(await pending).toBeInstanceOf(UnknownError);
    expect(c.closed).toBe(false);
    const next = c.callRaw("s", "m", new Uint8Array(0)); // stream 3
    b.write(encodeResponseFrame(3, { status: { code: 0, message: "", details: [] }, payload: new Uint8Array([7]) }));
    expect([...(await next)]).toEqual([7]);
  });
});

describe("size limits", () => {
  test("a request over 4 MiB fails locally with ResourceExhausted and sends nothing", async () => {
    const c = connect(taskServer());
    const err = await c.callRaw("containerd.task.v2.Task", "Connect", new Uint8Array(4 << 20)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ResourceExhaustedError);
    expect(c.inFlight).toBe(0);
    expect((await c.service(Task).connect({ id: "ok" })).version).toBe("ok@-");
  });

  test("a response over 4 MiB is answered ResourceExhausted instead", async () => {
    const server = new Server();
    server.register(Events, { forward: () => ({}) });
    server.register(Task, { connect: () => ({ version: "v".repeat((4 << 20) + 10) }) });
    const c = connect(server);
    expect(await c.service(Task).connect({}).catch((e: unknown) => e)).toBeInstanceOf(ResourceExhaustedError);
    expect((await c.service(Events).forward(create(ForwardRequestSchema, {}))).$typeName).toBe("google.protobuf.Empty");
  });
});

describe("connection end", () => {
  test("closing fails every pending call with UnavailableError('ttrpc: closed') and runs onClose hooks", async () => {
    const server = taskServer({ wait: () => new Promise(() => {}) });
    const closes: string[] = [];
    const c = connect(server, { onClose: () => closes.push("option") });
    c.onClose(() => closes.push("hook"));
    const pending = [c.service(Task).wait({ id: "1" }), c.service(Task).wait({ id: "2" })];
    while (server.connections === 0 || c.inFlight < 2) await Bun.sleep(0);
    await Bun.sleep(1);
    server.close();
    for (const p of pending) {
      const err = await p.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnavailableError);
      expect((err as Error).message).toBe("ttrpc: closed");
    }
    expect(closes).toEqual(["option", "hook"]);
    expect(await c.service(Task).connect({}).catch((e: unknown) => e)).toBeInstanceOf(UnavailableError);
    let late = false;
    c.onClose(() => (late = true));
    expect(late).toBe(true);
  });

  test("a client closing aborts the signal of the server's handlers", async () => {
    let aborted: unknown;
    const server = taskServer({
      wait: (_r: unknown, ctx: CallContext) =>
        new Promise(() => ctx.signal.addEventListener("abort", () => (aborted = ctx.signal.reason))),
    });
    const c = connect(server);
    const p = c.service(Task).wait({}).catch((e: unknown) => e);
    while (server.connections === 0) await Bun.sleep(0);
    await Bun.sleep(1);
    c.close();
    expect(await p).toBeInstanceOf(UnavailableError);
    while (aborted === undefined) await Bun.sleep(1);
    expect(aborted).toBeInstanceOf(CanceledError);
    expect(server.connections).toBe(0);
  });

  test("shutdown() lets calls in flight finish, then closes", async () => {
    let release!: () => void;
    const server = taskServer({ wait: () => new Promise<WaitResponse>((r) => (release = () => r(create(WaitResponseSchema, { exitStatus: 3 }))))});
    const c = connect(server);
    const p = c.service(Task).wait({});
    while (!release) await Bun.sleep(0);
    const done = server.shutdown();
    release();
    expect((await p).exitStatus).toBe(3);
    await done;
    while (!c.closed) await Bun.sleep(1);
    expect(server.connections).toBe(0);
  });
});

describe("registration", () => {
  test("a service registers once; unknown handler names are refused", () => {
    const server = taskServer();
    expect(() => server.register(Task, {})).toThrow(AlreadyExistsError);
    expect(() => new Server().register(Task, { conect: () => ({}) } as never)).toThrow(InvalidArgumentError);
  });
});
