// One unary ttrpc call on a fresh connection, for the `start` action's reservation (Connect).
// The full client pulls in the protobuf runtime, and `start` runs once per container on
// containerd's critical path; this needs only the frame and envelope codecs.
import { fromCode, UnavailableError, DeadlineExceededError } from "../errdefs.ts";
import { decodeHeader, FrameType, HEADER_LENGTH } from "../ttrpc/codec.ts";
import { NAMESPACE_KEY, encodeRequestFrame } from "../ttrpc/wire.ts";
import { decodeResponse } from "../ttrpc/wire-decode.ts";
import { socketPath } from "../contract/address.ts";

export interface OneshotCall {
  address: string;
  service: string;
  method: string;
  payload: Uint8Array;
  namespace?: string;
  timeoutMs: number;
}

/** Resolves with the response payload; a status code becomes its errdefs error. */
export function oneshot(call: OneshotCall): Promise<Uint8Array> {
  const path = socketPath(call.address);
  const frame = encodeRequestFrame(1, {
    service: call.service,
    method: call.method,
    payload: call.payload,
    timeoutNano: call.timeoutMs * 1e6,
    metadata: call.namespace ? [{ key: NAMESPACE_KEY, value: call.namespace }] : [],
  });
  return new Promise<Uint8Array>((resolve, reject) => {
    let buf = new Uint8Array(0);
    let settled = false;
    let sock: { end(): void } | undefined;
    const finish = (err: Error | undefined, value?: Uint8Array): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock?.end();
      if (err) reject(err);
      else resolve(value!);
    };
    const timer = setTimeout(() => finish(new DeadlineExceededError(`ttrpc ${call.method} on ${path}: timed out`)), call.timeoutMs);
    Bun.connect({
      unix: path,
      socket: {
        open(s) {
          sock = s;
          s.write(frame);
        },
        data(_s, chunk) {
          const next = new Uint8Array(buf.length + chunk.length);
          next.set(buf);
          next.set(chunk, buf.length);
          buf = next;
          if (buf.length < HEADER_LENGTH) return;
          const h = decodeHeader(buf);
          if (buf.length < HEADER_LENGTH + h.length) return;
          if (h.type !== FrameType.Response || h.streamId !== 1) {
            finish(new UnavailableError(`ttrpc ${call.method}: unexpected frame type ${h.type} stream ${h.streamId}`));
            return;
          }
          try {
            const r = decodeResponse(buf.subarray(HEADER_LENGTH, HEADER_LENGTH + h.length));
            if (r.status.code !== 0) finish(fromCode(r.status.code, r.status.message));
            else finish(undefined, r.payload.slice());
          } catch (err) {
            finish(err instanceof Error ? err : new Error(String(err)));
          }
        },
        close() {
          finish(new UnavailableError(`ttrpc ${call.method} on ${path}: connection closed`));
        },
        error(_s, err) {
          finish(new UnavailableError(`ttrpc ${call.method} on ${path}: ${err.message}`));
        },
        connectError(_s, err) {
          finish(new UnavailableError(`ttrpc connect ${path}: ${err.message}`));
        },
      },
    }).catch((err: unknown) => finish(new UnavailableError(`ttrpc connect ${path}: ${String(err)}`)));
  });
}
