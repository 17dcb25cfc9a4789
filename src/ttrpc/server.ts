// The ttrpc server: services registered by full name with typed handlers, requests dispatched
// concurrently per connection, errors mapped to status codes here and nowhere else.
//
// Hostile or broken peers are bounded per connection, so one cannot hurt the others:
// - answers waiting for a peer that does not read: past `pauseBytes` the connection's requests
//   are no longer read (the kernel then blocks the peer's writes); past `maxQueuedBytes` (calls
//   already in flight kept answering) the connection is dropped;
// - calls in flight: past `maxInFlight` a request is answered ResourceExhausted at once. Go's ttrpc
//   has no cap (a goroutine per request). Waiting instead of answering would let a peer with
//   `maxInFlight` long Waits pending stall its own cheap calls (State, Connect) past containerd's
//   deadlines with no error to see; an immediate error is visible and keeps the connection usable;
// - a frame of unknown type means the peer is not speaking ttrpc: the connection is dropped (Go
//   ignores such frames); malformed requests in well-formed frames are answered, as Go does.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, DescMethod, DescService, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import {
  AlreadyExistsError,
  BunkerError,
  CanceledError,
  Code,
  InvalidArgumentError,
  ResourceExhaustedError,
  errorMessage,
  toCode,
} from "../errdefs.ts";
import { Channel, type Duplex } from "./channel.ts";
import { FrameType, MAX_DATA_LENGTH, type Frame, type OversizedFrame } from "./codec.ts";
import { decodeRequest } from "./wire-decode.ts";
import { encodeResponseFrame, EMPTY, NAMESPACE_KEY, type RequestEnvelope } from "./wire.ts";


export type Metadata = ReadonlyMap<string, readonly string[]>;

/** What a handler knows about its call besides the request message. */
export interface CallContext {
  readonly service: string;
  readonly method: string;
  readonly metadata: Metadata;
  /** The first `containerd-namespace-ttrpc` value, if any. */
  readonly namespace: string | undefined;
  /** Aborts at the deadline (reason: TimeoutError) or when the connection closes (CanceledError). */
  readonly signal: AbortSignal;
  /** Deadline in Date.now() milliseconds, from the request's timeout_nano; undefined if none. */
  readonly deadline: number | undefined;
}

/** A handler returns the response (a message or its init shape; nothing means an empty message). */
export type Handler<I extends DescMessage, O extends DescMessage> = (
  req: MessageShape<I>,
  ctx: CallContext,
) => MessageInitShape<O> | void | Promise<MessageInitShape<O> | void>;

/** Handlers by the method's localName (e.g. `create`, `resizePty`); missing ones answer Unimplemented. */
export type ServiceImpl<S extends DescService> = {
  [K in keyof S["method"]]?: S["method"][K] extends { input: infer I extends DescMessage; output: infer O extends DescMessage }
    ? Handler<I, O>
    : never;
};

export interface ServerOptions {
  /** Sees every handler error that maps to Unknown (a bug or an unexpected failure), for logging. */
  onError?: (err: unknown, info: { service: string; method: string }) => void;
  /** Sees why the server dropped a connection (garbage, a peer that stopped reading), for logging. */
  onDrop?: (err: Error) => void;
  /** Calls handled at once per connection; more are answered ResourceExhausted. Default 1024. */
  maxInFlight?: number;
  /** Stop reading a connection's requests while this many answer bytes wait for its peer. Default 1 MiB. */
  pauseBytes?: number;
  /** Drop a connection when this many answer bytes wait for its peer. Default 16 MiB. */
  maxQueuedBytes?: number;
}

export const DEFAULT_MAX_IN_FLIGHT = 1024;
export const DEFAULT_PAUSE_BYTES = 1 << 20;
export const DEFAULT_MAX_QUEUED_BYTES = 16 << 20;

interface Limits {
  maxInFlight: number;
  pauseBytes: number;
  maxQueuedBytes: number;
}

interface Registered {
  desc: DescMethod;
  handler: Handler<DescMessage, DescMessage>;
}

class Context implements CallContext {
  private sig: AbortSignal | undefined;
  private meta: Map<string, string[]> | undefined;
  readonly deadline: number | undefined;

  constructor(
    private readonly req: RequestEnvelope,
    private readonly connSignal: AbortSignal,
  ) {
    this.deadline = req.timeoutNano > 0 ? Date.now() + req.timeoutNano / 1e6 : undefined;
  }
  get service(): string {
    return this.req.service;
  }
  get method(): string {
    return this.req.method;
  }
  // Built on first use: most handlers never look, and the hot path should not pay for it.
  get metadata(): Metadata {
    if (!this.meta) {
      this.meta = new Map();
      for (const { key, value } of this.req.metadata) {
        const list = this.meta.get(key);
        if (list) list.push(value);
        else this.meta.set(key, [value]);
      }
    }
    return this.meta;
  }
  get namespace(): string | undefined {
    for (const kv of this.req.metadata) if (kv.key === NAMESPACE_KEY) return kv.value;
    return undefined;
  }
  get signal(): AbortSignal {
    if (!this.sig) {
      this.sig =
        this.deadline === undefined
          ? this.connSignal
          : AbortSignal.any([this.connSignal, AbortSignal.timeout(Math.max(0, this.deadline - Date.now()))]);
    }
    return this.sig;
  }
}

export class Server {
  private readonly services = new Map<string, Map<string, Registered>>();
  private readonly conns = new Set<ServerConnection>();
  private shuttingDown = false;
  /** @internal */
  readonly limits: Limits;

  constructor(private readonly options: ServerOptions = {}) {
    const positive = (name: string, v: number | undefined, dflt: number): number => {
      if (v === undefined) return dflt;
      if (!(Number.isInteger(v) && v > 0)) throw new InvalidArgumentError(`ttrpc: ${name} must be a positive integer, got ${v}`);
      return v;
    };
    this.limits = {
      maxInFlight: positive("maxInFlight", options.maxInFlight, DEFAULT_MAX_IN_FLIGHT),
      pauseBytes: positive("pauseBytes", options.pauseBytes, DEFAULT_PAUSE_BYTES),
      maxQueuedBytes: positive("maxQueuedBytes", options.maxQueuedBytes, DEFAULT_MAX_QUEUED_BYTES),
    };
  }

  /** Registers a generated service (e.g. `Task` from src/gen/containerd/task/v2/shim_pb.ts). */
  register<S extends DescService>(service: S, impl: ServiceImpl<S>): void {
    if (this.services.has(service.typeName)) {
      throw new AlreadyExistsError(`ttrpc: service ${service.typeName} already registered`);
    }
    const methods = new Map<string, Registered>();
    const handlers = impl as Record<string, Handler<DescMessage, DescMessage> | undefined>;
    for (const desc of service.methods) {
      const handler = handlers[desc.localName];
      if (handler === undefined) continue;
      if (desc.methodKind !== "unary") {
        throw new InvalidArgumentError(`ttrpc: ${service.typeName}/${desc.name} is ${desc.methodKind}; only unary methods are served`);
      }
      methods.set(desc.name, { desc, handler: handler.bind(impl) });
    }
    for (const key of Object.keys(handlers)) {
      if (!service.methods.some((m) => m.localName === key)) {
        throw new InvalidArgumentError(`ttrpc: ${service.typeName} has no method ${key}`);
      }
    }
    this.services.set(service.typeName, methods);
  }

  /** Serves ttrpc on a connected stream until it closes. */
  serve(stream: Duplex): ServerConnection {
    const conn = new ServerConnection(this, stream);
    if (this.shuttingDown) {
      conn.close();
      return conn;
    }
    this.conns.add(conn);
    return conn;
  }

  get connections(): number {
    return this.conns.size;
  }

  /** Per open connection: calls in flight, answer bytes waiting for the peer, reads paused (for logs and tests). */
  connectionStats(): { inFlight: number; queuedBytes: number; readPaused: boolean }[] {
    return [...this.conns].map((c) => ({ inFlight: c.inFlight, queuedBytes: c.queuedBytes, readPaused: c.readPaused }));
  }

  /** Ends every connection now; calls in flight get their signal aborted and their answers dropped. */
  close(): void {
    this.shuttingDown = true;
    for (const c of this.conns) c.close();
  }

  /** Refuses new connections, waits for calls in flight to be answered, then closes every connection. */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    await Promise.all([...this.conns].map((c) => c.idle()));
    this.close();
  }

  /** @internal */
  lookup(service: string, method: string): Registered | string {
    const svc = this.services.get(service);
    if (!svc) return `service ${service}`;
    return svc.get(method) ?? `method ${method}`;
  }

  /** @internal */
  forget(conn: ServerConnection): void {
    this.conns.delete(conn);
  }

  /** @internal */
  reportError(err: unknown, service: string, method: string): void {
    this.options.onError?.(err, { service, method });
  }

  /** @internal */
  reportDrop(err: Error): void {
    this.options.onDrop?.(err);
  }
}

export class ServerConnection {
  private readonly channel: Channel;
  private readonly abort = new AbortController();
  private active = 0;
  private idleWaiters: (() => void)[] = [];
  private readonly limits: Limits;

  constructor(
    private readonly server: Server,
    stream: Duplex,
  ) {
    this.limits = server.limits;
    this.channel = new Channel(stream, {
      frame: (f) => this.onFrame(f),
      oversized: (f) => this.onOversized(f),
      close: (err) => this.onClosed(err),
      drain: () => this.onDrain(),
    });
  }

  get closed(): boolean {
    return this.channel.closed;
  }

  /** Calls being handled right now. */
  get inFlight(): number {
    return this.active;
  }

  /** Answer bytes waiting for the peer. */
  get queuedBytes(): number {
    return this.channel.outstanding;
  }

  /** True while requests are not read because the peer is not reading its answers. */
  get readPaused(): boolean {
    return this.channel.readPaused;
  }

  close(): void {
    this.channel.close();
  }

  /** Resolves when no call is in flight (at once if none is). */
  idle(): Promise<void> {
    if (this.active === 0 || this.channel.closed) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private onClosed(err?: Error): void {
    if (err instanceof BunkerError) this.server.reportDrop(err);
    this.abort.abort(new CanceledError("ttrpc: connection closed"));
    this.server.forget(this);
    this.wakeIdle();
  }

  private wakeIdle(): void {
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of w) resolve();
  }

  private sendStatus(streamId: number, code: Code, message: string): void {
    this.send(encodeResponseFrame(streamId, { status: { code, message, details: [] }, payload: EMPTY }));
  }

  private send(frame: Uint8Array): void {
    if (!this.channel.send(frame)) return;
    const out = this.channel.outstanding;
    if (out > this.limits.maxQueuedBytes) {
      this.channel.destroy(
        new ResourceExhaustedError(`ttrpc: dropped a connection whose peer left ${out} bytes of answers unread`),
      );
    } else if (out >= this.limits.pauseBytes) {
      this.channel.pause();
    }
  }

  private onDrain(): void {
    // Resume only well below the mark, so a peer reading slowly does not flip reads on and off per chunk.
    if (this.channel.readPaused && this.channel.outstanding <= this.limits.pauseBytes / 2) this.channel.resume();
  }

  private onOversized(f: OversizedFrame): void {
    // Go answers on the offending stream whatever the frame type was; so do we.
    this.sendStatus(
      f.streamId,
      Code.ResourceExhausted,
      `message length ${f.length} exceed maximum message size of ${MAX_DATA_LENGTH}`,
    );
  }

  private onFrame(f: Frame): void {
    if (f.type !== FrameType.Request) return; // ignored for forward compatibility, as Go does
    let req: RequestEnvelope;
    try {
      req = decodeRequest(f.data);
    } catch (err) {
      this.sendStatus(f.streamId, Code.InvalidArgument, `unmarshal request error: ${errorMessage(err)}`);
      return;
    }
    if (f.streamId % 2 !== 1) {
      this.sendStatus(f.streamId, Code.InvalidArgument, "StreamID must be odd for client initiated streams");
      return;
    }
    if (this.active >= this.limits.maxInFlight) {
      this.sendStatus(
        f.streamId,
        Code.ResourceExhausted,
        `ttrpc: ${this.active} calls in flight on this connection, the maximum is ${this.limits.maxInFlight}`,
      );
      return;
    }
    const found = this.server.lookup(req.service, req.method);
    if (typeof found === "string") {
      this.sendStatus(f.streamId, Code.Unimplemented, found);
      return;
    }
    let input: MessageShape<DescMessage>;
    try {
      input = fromBinary(found.desc.input, req.payload);
    } catch (err) {
      this.sendStatus(f.streamId, Code.InvalidArgument, `ttrpc: error unmarshalling payload: ${errorMessage(err)}`);
      return;
    }
    this.active++;
    void this.run(f.streamId, req, found, input);
  }

  private async run(
    streamId: number,
    req: RequestEnvelope,
    found: Registered,
    input: MessageShape<DescMessage>,
  ): Promise<void> {
    let frame: Uint8Array;
    try {
      const out = await found.handler(input, new Context(req, this.abort.signal));
      const payload = toBinary(found.desc.output, create(found.desc.output, out ?? undefined));
      frame =
        payload.length > MAX_DATA_LENGTH
          ? encodeResponseFrame(streamId, {
              status: {
                code: Code.ResourceExhausted,
                message: `ttrpc: response of ${payload.length} bytes exceeds the maximum of ${MAX_DATA_LENGTH}`,
                details: [],
              },
              payload: EMPTY,
            })
          : encodeResponseFrame(streamId, { status: { code: Code.OK, message: "", details: [] }, payload });
    } catch (err) {
      const code = toCode(err);
      if (code === Code.Unknown) this.server.reportError(err, req.service, req.method);
      frame = encodeResponseFrame(streamId, { status: { code, message: errorMessage(err), details: [] }, payload: EMPTY });
    }
    this.send(frame);
    if (--this.active === 0) this.wakeIdle();
  }
}
