/**
 * ttrpc for bunker: byte-exact with containerd/ttrpc 1.1/1.2 unary calls.
 *
 * Generated messages and services (protoc-gen-es v2, from proto/ by scripts/gen.sh):
 *   src/gen/ttrpc/request_pb.ts                              ttrpc.Request/Response/KeyValue (the wire.ts codec is what runs)
 *   src/gen/google/rpc/status_pb.ts                          google.rpc.Status
 *   src/gen/containerd/task/v2/shim_pb.ts                    service `Task` + CreateTaskRequest, ..., DeleteResponse, ...
 *   src/gen/containerd/types/mount_pb.ts                     containerd.types.Mount
 *   src/gen/containerd/types/task/task_pb.ts                 containerd.v1.types.Status enum, Process, ProcessInfo
 *   src/gen/containerd/events/task_pb.ts                     TaskCreate, TaskStart, TaskExit, TaskDelete, TaskIO, TaskOOM, ...
 *   src/gen/containerd/services/events/ttrpc/v1/events_pb.ts service `Events` (Forward), ForwardRequest, Envelope
 *   src/gen/containerd/runc/v1/options_pb.ts                 containerd.runc.v1.Options, CheckpointOptions, ProcessDetails
 *   src/gen/cgroups/v1/metrics_pb.ts, cgroups/v2/metrics_pb.ts  io.containerd.cgroups.v{1,2}.Metrics
 * Messages: `create(XSchema, {...})`, `toBinary(XSchema, m)`, `fromBinary(XSchema, bytes)` from "@bufbuild/protobuf";
 * well-known types from "@bufbuild/protobuf/wkt" (`timestampNow()`, `timestampFromDate(d)`, `timestampDate(t)`).
 * 64-bit integer fields (int64/uint64) are bigint. Any: `packAny(TaskExitSchema, {...})` / `unpackAny(any, Schema)`
 * below use containerd's bare type URLs ("containerd.events.TaskExit"), which is what containerd and ctr expect.
 *
 * Client:
 *   const client = await dial("unix:///run/containerd/s/abc", { namespace: "default", connectTimeoutMs: 5000 });
 *   const task = client.service(Task);                       // typed proxy, methods by localName
 *   const r = await task.connect({ id }, { timeoutMs: 5000 }); // r: ConnectResponse
 *   await client.call(Task.method.kill, { id, signal: 9 });  // same call, without the proxy
 *   client.onClose((err) => ...); client.close();
 *   new Client(duplex, { namespace?, metadata?, timeoutMs?, onClose? })  over any Duplex
 *   CallOptions: { timeoutMs?, metadata?: Record<string, string | string[]>, namespace?, signal? }
 *   Failures are errdefs classes: a status code -> fromCode(code, message) (NotFoundError, ...); connection gone ->
 *   UnavailableError("ttrpc: closed"); local deadline -> DeadlineExceededError; abort -> CanceledError;
 *   a request over 4 MiB -> ResourceExhaustedError without sending.
 *
 * Server:
 *   const server = new Server({ onError?, onDrop?, maxInFlight?, pauseBytes?, maxQueuedBytes? });
 *     per-connection limits (server.ts header says why): past maxInFlight (1024) calls a request is answered
 *     ResourceExhausted; past pauseBytes (1 MiB) of answers the peer has not read, its requests are not read;
 *     past maxQueuedBytes (16 MiB) the connection is dropped (onDrop sees why); a frame of unknown type drops it.
 *     server.connectionStats() -> [{ inFlight, queuedBytes, readPaused }]
 *   server.register(Task, { async create(req, ctx) { return { pid } }, async kill(req) {} , ... });
 *     handlers are keyed by localName; missing ones answer Unimplemented; returning nothing sends an empty
 *     message; a thrown errdefs error becomes its code (toCode), anything else Unknown.
 *     ctx: { service, method, metadata: ReadonlyMap<string, readonly string[]>, namespace, signal, deadline }
 *   const l = await listenUnix(server, path, { mode: 0o600, authorize: ({ fd }) => uidOf(fd) === 0 });
 *   server.serve(duplex)  (any Duplex); await server.shutdown() (drain, then close); server.close() (now); l.close()
 *
 * Lower layers: codec.ts (frame header + incremental FrameParser), wire.ts + wire-decode.ts (Request/Response envelopes),
 * channel.ts (Duplex interface + Channel with write batching and flow control: buffered/onDrain/pause/resume/destroy,
 * optional for a Duplex), memory.ts (memoryPair for tests/in-process, flow-controlled: a paused end never reads).
 */
export { anyIs, anyTypeName, packAny, unpackAny, unpackAnyWith } from "./any.ts";
export { Channel, type ChannelHandlers, type Duplex } from "./channel.ts";
export { Client, type CallOptions, type ClientOptions, type MetadataInit, type ServiceClient, type UnaryMethod } from "./client.ts";
export {
  FrameFlags,
  FrameParser,
  FrameType,
  HEADER_LENGTH,
  isKnownFrameType,
  MAX_DATA_LENGTH,
  decodeHeader,
  encodeFrame,
  encodeHeader,
  type Frame,
  type FrameHeader,
  type OversizedFrame,
} from "./codec.ts";
export { memoryPair } from "./memory.ts";
export {
  DEFAULT_MAX_IN_FLIGHT,
  DEFAULT_MAX_QUEUED_BYTES,
  DEFAULT_PAUSE_BYTES,
  Server,
  ServerConnection,
  type CallContext,
  type Handler,
  type Metadata,
  type ServerOptions,
  type ServiceImpl,
} from "./server.ts";
export { connectUnix, dial, listenUnix, socketPath, SocketDuplex, type ConnectOptions, type ListenOptions, type UnixListener } from "./unix.ts";
export { NAMESPACE_KEY } from "./wire.ts";
