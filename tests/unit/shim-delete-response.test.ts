import { describe, expect, test } from "bun:test";
import { fromBinary } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { DeleteResponseSchema, ConnectRequestSchema } from "../../src/gen/containerd/task/v2/shim_pb.ts";
import { encodeDeleteResponse } from "../../src/shim/delete-response.ts";
import { connectRequest } from "../../src/shim/start.ts";

describe("hand-encoded messages match the generated schema", () => {
  test("DeleteResponse", () => {
    for (const r of [
      { pid: 0, exitStatus: 137, exitedAt: new Date(1_700_000_000_123) },
      { pid: 4_000_000, exitStatus: 0, exitedAt: new Date(0) },
      { pid: 1, exitStatus: 255, exitedAt: new Date(1_700_000_000_000) },
    ]) {
      const m = fromBinary(DeleteResponseSchema, encodeDeleteResponse(r));
      expect(m.pid).toBe(r.pid);
      expect(m.exitStatus).toBe(r.exitStatus);
      expect(timestampDate(m.exitedAt!).getTime()).toBe(r.exitedAt.getTime());
    }
  });

  test("ConnectRequest", () => {
    expect(fromBinary(ConnectRequestSchema, connectRequest("abc-1")).id).toBe("abc-1");
    expect(fromBinary(ConnectRequestSchema, connectRequest("")).id).toBe("");
    // a length past 127 takes a two-byte varint (the hand encoder once refused it)
    expect(fromBinary(ConnectRequestSchema, connectRequest("x".repeat(200))).id).toBe("x".repeat(200));
  });
});
