// containerd.task.v2.DeleteResponse{pid=1 uint32, exit_status=2 uint32, exited_at=3 Timestamp}
// encoded by hand: the delete action runs on containerd's critical path after every container,
// and loading the generated descriptors would cost more than the whole action. The unit test
// checks these bytes against the generated schema.
import { encodeMessage } from "../ttrpc/wire.ts";
import type { DeleteResult } from "./types.ts";

export function encodeDeleteResponse(r: DeleteResult): Uint8Array {
  const ms = r.exitedAt.getTime();
  const seconds = Math.floor(ms / 1000);
  const nanos = (ms - seconds * 1000) * 1_000_000;
  const exitedAt = encodeMessage([
    { n: 1, varint: seconds },
    { n: 2, varint: nanos },
  ]);
  return encodeMessage([
    { n: 1, varint: r.pid >>> 0 },
    { n: 2, varint: r.exitStatus >>> 0 },
    { n: 3, message: exitedAt },
  ]);
}
