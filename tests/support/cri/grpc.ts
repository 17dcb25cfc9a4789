// A minimal gRPC client over a unix socket for the CRI test harness: unary calls only, HTTP/2 from
// Bun's `node:http2` with the connection made by `net.connect(socketPath)`. It speaks what
// containerd's grpc-go server expects (content-type application/grpc, `te: trailers`, each message
// behind a 5-byte prefix: a compressed flag and a big-endian length) and reads the status from
// `grpc-status`/`grpc-message` in the trailers, or in the headers for a "trailers-only" answer.
// Written by hand rather than with @grpc/grpc-js because the harness needs only unary calls and
// the project adds no dependency for tests; the typed service client is built from protobuf-es
// descriptors so every CRI call is checked by tsc against the generated api.proto types.
import { connect as http2Connect, type ClientHttp2Session, type IncomingHttpHeaders } from "node:http2";
import { connect as netConnect } from "node:net";
import { create, fromBinary, toBinary, type DescMessage, type DescService, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";

/** gRPC status codes by number (google.rpc.Code), for messages a reader can act on. */
const CODE_NAMES = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
  "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
  "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
] as const;

export class GrpcError extends Error {
  override readonly name = "GrpcError";
  constructor(
    readonly method: string,
    readonly code: number,
    readonly details: string,
  ) {
    super(`${method}: ${CODE_NAMES[code] ?? `code ${code}`}: ${details}`);
  }

  get codeName(): string {
    return CODE_NAMES[this.code] ?? `code ${this.code}`;
  }
}

export interface CallOptions {
  /** Deadline sent as grpc-timeout and enforced here (the stream is cancelled). Default 60 s. */
  timeoutMs?: number;
}

/** One HTTP/2 connection to a gRPC server on a unix socket; calls are multiplexed on it. */
export class GrpcChannel {
  private session: ClientHttp2Session | undefined;

  constructor(readonly socketPath: string) {}

  private open(): ClientHttp2Session {
    if (this.session && !this.session.closed && !this.session.destroyed) return this.session;
    const session = http2Connect("http://localhost", { createConnection: () => netConnect(this.socketPath) });
    // A dropped connection (containerd restarted) fails the calls in flight; the next call reconnects.
    session.on("error", () => undefined);
    session.on("close", () => {
      if (this.session === session) this.session = undefined;
    });
    this.session = session;
    return session;
  }

  /** Sends one request message to `path` (/package.Service/Method) and returns the one reply message. */
  unary(path: string, request: Uint8Array, opts: CallOptions = {}): Promise<Uint8Array> {
    const timeoutMs = opts.timeoutMs ?? 60_000;
    return new Promise<Uint8Array>((resolve, reject) => {
      let stream;
      try {
        stream = this.open().request({
          ":method": "POST",
          ":path": path,
          "content-type": "application/grpc",
          te: "trailers",
          "grpc-timeout": `${Math.max(1, Math.ceil(timeoutMs))}m`,
        });
      } catch (err) {
        reject(new GrpcError(path, 14, `cannot open a stream: ${(err as Error).message}`));
        return;
      }
      const chunks: Buffer[] = [];
      let status: { code: number; message: string } | undefined;
      let settled = false;
      const finish = (err?: Error, value?: Uint8Array) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(value!);
      };
      const timer = setTimeout(() => {
        stream.close();
        finish(new GrpcError(path, 4, `no answer within ${timeoutMs} ms`));
      }, timeoutMs + 1000);
      const readStatus = (headers: IncomingHttpHeaders) => {
        const code = headers["grpc-status"];
        if (code === undefined) return;
        const raw = headers["grpc-message"];
        const message = typeof raw === "string" ? decodeURIComponent(raw) : "";
        status = { code: Number(code), message };
      };
      const complete = () => {
        if (!status) return finish(new GrpcError(path, 14, "the stream ended without a grpc-status"));
        if (status.code !== 0) return finish(new GrpcError(path, status.code, status.message));
        const body = Buffer.concat(chunks);
        if (body.length < 5) return finish(new GrpcError(path, 13, `a reply of ${body.length} bytes has no message`));
        if (body[0] !== 0) return finish(new GrpcError(path, 13, "the reply is compressed, and no compression was offered"));
        const length = body.readUInt32BE(1);
        if (body.length < 5 + length) return finish(new GrpcError(path, 13, `a reply message of ${length} bytes arrived with ${body.length - 5}`));
        finish(undefined, body.subarray(5, 5 + length));
      };
      stream.on("response", (headers) => {
        const httpStatus = Number(headers[":status"]);
        if (httpStatus !== 200) return finish(new GrpcError(path, 2, `HTTP status ${httpStatus}`));
        readStatus(headers);
        // A "trailers-only" reply (an error, with no message) carries its status in the headers and
        // ends the stream there; Bun may then signal neither 'end' nor 'close' promptly.
        if (status) complete();
      });
      stream.on("trailers", readStatus);
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("error", (err: Error) => finish(new GrpcError(path, 14, err.message)));
      stream.on("end", complete);
      stream.on("close", complete);
      const frame = Buffer.alloc(5 + request.length);
      frame.writeUInt32BE(request.length, 1);
      frame.set(request, 5);
      stream.end(frame);
    });
  }

  close(): void {
    this.session?.close();
    this.session = undefined;
  }
}

type UnaryMethods<S extends DescService> = {
  [K in keyof S["method"]]: S["method"][K] extends { methodKind: "unary"; input: infer I extends DescMessage; output: infer O extends DescMessage }
    ? (request: MessageInitShape<I>, opts?: CallOptions) => Promise<MessageShape<O>>
    : never;
};

/** A typed client of one service: `client.runPodSandbox({...})` → the decoded reply. */
export function serviceClient<S extends DescService>(channel: GrpcChannel, service: S): UnaryMethods<S> {
  const client: Record<string, unknown> = {};
  for (const method of service.methods) {
    if (method.methodKind !== "unary") continue;
    const path = `/${service.typeName}/${method.name}`;
    client[method.localName] = async (request: MessageInitShape<DescMessage>, opts?: CallOptions) => {
      const bytes = toBinary(method.input, create(method.input, request));
      return fromBinary(method.output, await channel.unary(path, bytes, opts));
    };
  }
  return client as UnaryMethods<S>;
}
