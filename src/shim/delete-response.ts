// containerd.task.v2.DeleteResponse{pid=1 uint32, exit_status=2 uint32, exited_at=3 Timestamp}
// encoded by hand: the delete action runs on containerd's critical path after every container,
// and loading the generated descriptors would cost more than the whole action. The unit test
// checks these bytes against the generated schema.
import type { DeleteResult } from "./types.ts";

function varint(out: number[], v: number | bigint): void {
  let n = BigInt(v);
  if (n < 0n) n = BigInt.asUintN(64, n);
  while (n >= 0x80n) {
    out.push(Number(n & 0x7fn) | 0x80);
    n >>= 7n;
  }
  out.push(Number(n));
}

export function encodeDeleteResponse(r: DeleteResult): Uint8Array {
  const ms = r.exitedAt.getTime();
  const seconds = Math.floor(ms / 1000);
  const nanos = (ms - seconds * 1000) * 1_000_000;
  const ts: number[] = [];
  if (seconds !== 0) {
    ts.push(0x08);
    varint(ts, seconds);
  }
  if (nanos !== 0) {
    ts.push(0x10);
    varint(ts, nanos);
  }
  const out: number[] = [];
  if (r.pid !== 0) {
    out.push(0x08);
    varint(out, r.pid >>> 0);
  }
  if (r.exitStatus !== 0) {
    out.push(0x10);
    varint(out, r.exitStatus >>> 0);
  }
  out.push(0x1a);
  varint(out, ts.length);
  out.push(...ts);
  return new Uint8Array(out);
}
