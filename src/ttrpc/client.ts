// The ttrpc client: odd stream ids, any number of calls in flight on one connection, per-call
// deadline and metadata, typed errors from status codes, every pending call failed on close.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, DescMethod, DescService, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import {
  CanceledError,
  DeadlineExceededError,
  InvalidArgumentError,
  ResourceExhaustedError,
  UnavailableError,
  UnknownError,
  errorMessage,
  fromCode,
  type BunkerError,
} from "../errdefs.ts";
import { Channel, type Duplex } from "./channel.ts";
import { FrameType, MAX_DATA_LENGTH, type Frame, type OversizedFrame } from "./codec.ts";
import { decodeResponse } from "./wire-decode.ts";
import { encodeRequestFrame, NAMESPACE_KEY, type KeyValue } from "./wire.ts";

export type MetadataInit = Readonly<Record<string, string | readonly string[]>>;

export interface CallOptions {
  /** Deadline for this call; sent as timeout_nano and enforced here (DeadlineExceededError). */
  timeoutMs?: number;
  /** Extra metadata; keys are lowercased, as Go's ttrpc.MD does. */
  metadata?: MetadataInit;
  /** Sets `containerd-namespace-ttrpc` (overrides the client's namespace). */
  namespace?: string;
  /** Aborting fails the call with CanceledError; a late answer is dropped. */
  signal?: AbortSignal;
}

export interface ClientOptions {
  /** Namespace sent with every call unless a call names its own. */
  namespace?: string;
  /** Metadata sent with every call (a call's own metadata for the same key replaces it). */
  metadata?: MetadataInit;
  /** Deadline for calls that do not set timeoutMs. */
  timeoutMs?: number;
  /** Called once when the connection ends, with the transport's error if any. */
  onClose?: (err?: Error) => void;
}

/** A method descriptor with its message types, as generated services carry them (`Task.method.create`). */
export type UnaryMethod<I extends DescMessage, O extends DescMessage> = DescMethod & { input: I; output: O };

/** `client.service(Task).create(req, opts)`: one typed function per method, keyed by localName. */
export type ServiceClient<S extends DescService> = {
  [K in keyof S["method"]]: S["method"][K] extends { input: infer I extends DescMessage; output: infer O extends DescMessage }
    ? (req: MessageInitShape<I>, opts?: CallOptions) => Promise<MessageShape<O>>
    : never;
};

interface Pending {
  resolve(payload: Uint8Array): void;
  reject(err: BunkerError): void;
}

const MAX_STREAM_ID = 0xffffffff;

export class Client {
  private readonly channel: Channel;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closeHooks: ((err?: Error) => void)[] = [];
  private closeError: Error | undefined;
  private readonly baseMetadata: KeyValue[];

  constructor(
    stream: Duplex,
    private readonly options: ClientOptions = {},
  ) {
    this.baseMetadata = toKeyValues(options.metadata);
    if (options.onClose) this.closeHooks.push(options.onClose);
    this.channel = new Channel(stream, {
      frame: (f) => this.onFrame(f),
      oversized: (f) => this.onOversized(f),
      close: (err) => this.onClosed(err),
    });
  }

  get closed(): boolean {
    return this.channel.closed;
  }

  /** Calls sent and not yet answered. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Adds a hook run once when the connection ends (at once if it already has). */
  onClose(cb: (err?: Error) => void): void {
    if (this.channel.closed) cb(this.closeError);
    else this.closeHooks.push(cb);
  }

  /** Ends the connection; calls in flight fail with UnavailableError("ttrpc: closed"). */
  close(): void {
    this.channel.close();
  }

  /** A typed unary call: `client.call(Task.method.connect, { id })`. */
  call<I extends DescMessage, O extends DescMessage>(
    method: UnaryMethod<I, O>,
    req: MessageInitShape<I>,
    opts?: CallOptions,
  ): Promise<MessageShape<O>> {
    let payload: Uint8Array;
    try {
      payload = toBinary(method.input, create(method.input, req));
    } catch (err) {
      return Promise.reject(new InvalidArgumentError(`ttrpc: ${method.parent.typeName}/${method.name}: unencodable request: ${errorMessage(err)}`));
    }
    return this.callRaw(method.parent.typeName, method.name, payload, opts).then((out) => {
      try {
        return fromBinary(method.output, out);
      } catch (err) {
        throw new UnknownError(`ttrpc: ${method.parent.typeName}/${method.name}: undecodable response: ${errorMessage(err)}`);
      }
    });
  }

  /** A typed view of one service: `client.service(Task).wait({ id })`. */
  service<S extends DescService>(svc: S): ServiceClient<S> {
    const out: Record<string, unknown> = {};
    for (const m of svc.methods) {
      out[m.localName] = (req: MessageInitShape<DescMessage>, opts?: CallOptions) =>
        this.call(m as UnaryMethod<DescMessage, DescMessage>, req, opts);
    }
    return out as ServiceClient<S>;
  }

  /** An untyped call with an encoded payload; resolves to the encoded response payload. */
  callRaw(service: string, method: string, payload: Uint8Array, opts: CallOptions = {}): Promise<Uint8Array> {
    if (this.channel.closed) return Promise.reject(new UnavailableError("ttrpc: closed"));
    if (opts.signal?.aborted) return Promise.reject(new CanceledError(`ttrpc: ${service}/${method}: canceled`));
    const timeoutMs = opts.timeoutMs ?? this.options.timeoutMs;
    if (timeoutMs !== undefined && !(timeoutMs > 0)) {
      return Promise.reject(new DeadlineExceededError(`ttrpc: ${service}/${method}: deadline exceeded (timeout ${timeoutMs} ms)`));
    }
    const id = this.allocateId();
    const frame = encodeRequestFrame(id, {
      service,
      method,
      payload,
      timeoutNano: timeoutMs === undefined ? 0 : Math.round(timeoutMs * 1e6),
      metadata: this.metadataFor(opts),
    });
    if (frame.length - 10 > MAX_DATA_LENGTH) {
      return Promise.reject(
        new ResourceExhaustedError(`ttrpc: ${service}/${method}: request of ${frame.length - 10} bytes exceeds the maximum of ${MAX_DATA_LENGTH}`),
      );
    }
    return new Promise<Uint8Array>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const signal = opts.signal;
      const onAbort = (): void => {
        if (this.pending.delete(id)) finish();
        reject(new CanceledError(`ttrpc: ${service}/${method}: canceled`));
      };
      const finish = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      // Fast path: no timer and no signal means nothing to clean up.
      const entry: Pending =
        timeoutMs === undefined && signal === undefined
          ? { resolve, reject }
          : {
              resolve: (p) => (finish(), resolve(p)),
              reject: (e) => (finish(), reject(e)),
            };
      this.pending.set(id, entry);
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          if (!this.pending.delete(id)) return;
          finish();
          reject(new DeadlineExceededError(`ttrpc: ${service}/${method}: deadline exceeded after ${timeoutMs} ms`));
        }, timeoutMs);
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      this.channel.send(frame);
    });
  }

  private allocateId(): number {
    const id = this.nextId;
    this.nextId = id + 2 > MAX_STREAM_ID ? 1 : id + 2;
    return id;
  }

  private metadataFor(opts: CallOptions): KeyValue[] {
    const ns = opts.namespace ?? this.options.namespace;
    if (opts.metadata === undefined && ns === undefined) return this.baseMetadata;
    const own = toKeyValues(opts.metadata);
    const replaced = new Set(own.map((kv) => kv.key));
    if (ns !== undefined) replaced.add(NAMESPACE_KEY);
    const out = this.baseMetadata.filter((kv) => !replaced.has(kv.key));
    for (const kv of own) if (!(ns !== undefined && kv.key === NAMESPACE_KEY)) out.push(kv);
    if (ns !== undefined) out.push({ key: NAMESPACE_KEY, value: ns });
    return out;
  }

  private onFrame(f: Frame): void {
    if (f.type !== FrameType.Response) return;
    const p = this.pending.get(f.streamId);
    if (!p) return; // timed out or canceled already
    this.pending.delete(f.streamId);
    let resp;
    try {
      resp = decodeResponse(f.data);
    } catch (err) {
      p.reject(new UnknownError(`ttrpc: undecodable response: ${errorMessage(err)}`));
      return;
    }
    if (resp.status.code !== 0) p.reject(fromCode(resp.status.code, resp.status.message));
    else p.resolve(resp.payload);
  }

  private onOversized(f: OversizedFrame): void {
    const p = this.pending.get(f.streamId);
    if (!p) return;
    this.pending.delete(f.streamId);
    p.reject(new ResourceExhaustedError(`ttrpc: response of ${f.length} bytes exceeds the maximum of ${MAX_DATA_LENGTH}`));
  }

  private onClosed(err?: Error): void {
    this.closeError = err;
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(new UnavailableError("ttrpc: closed"));
    const hooks = this.closeHooks;
    this.closeHooks = [];
    for (const h of hooks) h(err);
  }
}

function toKeyValues(md: MetadataInit | undefined): KeyValue[] {
  const out: KeyValue[] = [];
  if (!md) return out;
  for (const [k, v] of Object.entries(md)) {
    const key = k.toLowerCase();
    if (typeof v === "string") out.push({ key, value: v });
    else for (const value of v as readonly string[]) out.push({ key, value });
  }
  return out;
}
