import { describe, expect, test } from "bun:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { TaskExitSchema } from "../../src/gen/containerd/events/task_pb.ts";
import { EnvelopeSchema } from "../../src/gen/containerd/services/events/ttrpc/v1/events_pb.ts";
import {
  ConnectRequestSchema,
  ConnectResponseSchema,
  DeleteResponseSchema,
  KillRequestSchema,
} from "../../src/gen/containerd/task/v2/shim_pb.ts";
import { RequestSchema, ResponseSchema } from "../../src/gen/ttrpc/request_pb.ts";
import { anyIs, packAny, unpackAny } from "../../src/ttrpc/any.ts";
import { FrameType, decodeHeader } from "../../src/ttrpc/codec.ts";
import { decodeRequest, decodeResponse, WireError } from "../../src/ttrpc/wire-decode.ts";
import { encodeRequest, encodeRequestFrame, encodeResponse, type RequestEnvelope } from "../../src/ttrpc/wire.ts";
import { InvalidArgumentError } from "../../src/errdefs.ts";

const ascii = (s: string): number[] => [...s].map((c) => c.charCodeAt(0));

// ConnectRequest{id: "abc"}: field 1 (tag 1<<3|2 = 0x0a), length 3, "abc".
const connectPayload = [0x0a, 0x03, ...ascii("abc")];

const goldenRequest = [
  // service = 1, string: tag 0x0a, length 23
  0x0a, 23, ...ascii("containerd.task.v2.Task"),
  // method = 2, string: tag 0x12, length 7
  0x12, 7, ...ascii("Connect"),
  // payload = 3, bytes: tag 0x1a, length 5
  0x1a, 5, ...connectPayload,
  // timeout_nano = 4, varint: tag 0x20; 5e9 = 0x12a05f200, 7 bits at a time from the low end:
  // 5e9 % 128 = 0 -> 0x80; 39062500 % 128 = 100 -> 0xe4; 305175 % 128 = 23 -> 0x97;
  // 2384 % 128 = 80 -> 0xd0; 18 -> 0x12 (last, no continuation bit)
  0x20, 0x80, 0xe4, 0x97, 0xd0, 0x12,
  // metadata = 5, KeyValue: tag 0x2a, length 2+26+2+7 = 37
  0x2a, 37,
  0x0a, 26, ...ascii("containerd-namespace-ttrpc"),
  0x12, 7, ...ascii("default"),
];

const goldenEnvelope: RequestEnvelope = {
  service: "containerd.task.v2.Task",
  method: "Connect",
  payload: new Uint8Array(connectPayload),
  timeoutNano: 5_000_000_000,
  metadata: [{ key: "containerd-namespace-ttrpc", value: "default" }],
};

// ConnectResponse{shim_pid: 1234, version: "v2"}: 1234 = 9*128 + 82 -> varint 0xd2 0x09.
const connectRespPayload = [0x08, 0xd2, 0x09, 0x1a, 0x02, ...ascii("v2")];
// Response{status: OK, payload}: Go always sends the status, so OK is an empty message (0x0a 0x00).
const goldenOkResponse = [0x0a, 0x00, 0x12, 7, ...connectRespPayload];
// Response{status: {code: 5, message: "not found"}}: status length 2 + 2 + 9 = 13.
const goldenErrResponse = [0x0a, 13, 0x08, 0x05, 0x12, 9, ...ascii("not found")];

describe("ttrpc.Request golden bytes", () => {
  test("encodes field by field as Go does", () => {
    expect([...encodeRequest(goldenEnvelope)]).toEqual(goldenRequest);
  });

  test("the request frame is header + the same bytes", () => {
    const f = encodeRequestFrame(3, goldenEnvelope);
    expect(decodeHeader(f)).toEqual({ length: goldenRequest.length, streamId: 3, type: FrameType.Request, flags: 0 });
    expect([...f.subarray(10)]).toEqual(goldenRequest);
  });

  test("decodes back to the same envelope", () => {
    const r = decodeRequest(new Uint8Array(goldenRequest));
    expect({ ...r, payload: [...r.payload] }).toEqual({ ...goldenEnvelope, payload: connectPayload } as never);
    expect(fromBinary(ConnectRequestSchema, r.payload).id).toBe("abc");
  });

  test("protobuf-es (the generated ttrpc.Request) produces the same bytes", () => {
    const m = create(RequestSchema, {
      service: goldenEnvelope.service,
      method: goldenEnvelope.method,
      payload: goldenEnvelope.payload,
      timeoutNano: 5_000_000_000n,
      metadata: goldenEnvelope.metadata,
    });
    expect([...toBinary(RequestSchema, m)]).toEqual(goldenRequest);
  });

  test("empty fields are omitted, as proto3 requires", () => {
    expect([...encodeRequest({ service: "", method: "", payload: new Uint8Array(0), timeoutNano: 0, metadata: [] })]).toEqual([]);
  });
});

describe("ttrpc.Response golden bytes", () => {
  test("OK response with payload", () => {
    const bytes = encodeResponse({ status: { code: 0, message: "", details: [] }, payload: new Uint8Array(connectRespPayload) });
    expect([...bytes]).toEqual(goldenOkResponse);
    const payload = decodeResponse(bytes).payload;
    expect(fromBinary(ConnectResponseSchema, payload)).toMatchObject({ shimPid: 1234, taskPid: 0, version: "v2" });
  });

  test("error response: status code and message, no payload", () => {
    const bytes = encodeResponse({ status: { code: 5, message: "not found", details: [] }, payload: new Uint8Array(0) });
    expect([...bytes]).toEqual(goldenErrResponse);
    expect(decodeResponse(bytes).status).toEqual({ code: 5, message: "not found", details: [] });
  });

  test("protobuf-es agrees on both", () => {
    const ok = create(ResponseSchema, { status: {}, payload: new Uint8Array(connectRespPayload) });
    expect([...toBinary(ResponseSchema, ok)]).toEqual(goldenOkResponse);
    const err = create(ResponseSchema, { status: { code: 5, message: "not found" } });
    expect([...toBinary(ResponseSchema, err)]).toEqual(goldenErrResponse);
  });

  test("a response without a status is OK", () => {
    expect(decodeResponse(new Uint8Array([0x12, 1, 0x08])).status.code).toBe(0);
  });
});

describe("envelope codec against protobuf-es on random input", () => {
  let seed = 99;
  const rand = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0), seed / 2 ** 32);
  const str = (): string =>
    Array.from({ length: Math.floor(rand() * 12) }, () =>
      rand() < 0.8 ? String.fromCharCode(32 + Math.floor(rand() * 90)) : rand() < 0.5 ? "é" : "😀",
    ).join("");

  test("500 random requests and responses encode identically and round-trip", () => {
    for (let i = 0; i < 500; i++) {
      const env: RequestEnvelope = {
        service: str(),
        method: str(),
        payload: new Uint8Array(Math.floor(rand() * 300)).map(() => Math.floor(rand() * 256)),
        timeoutNano: rand() < 0.5 ? 0 : Math.floor(rand() * 2 ** 40),
        metadata: Array.from({ length: Math.floor(rand() * 3) }, () => ({ key: str(), value: str() })),
      };
      const ours = encodeRequest(env);
      const theirs = toBinary(RequestSchema, create(RequestSchema, { ...env, timeoutNano: BigInt(env.timeoutNano) }));
      expect(ours).toEqual(theirs);
      const back = decodeRequest(theirs);
      expect(back.service).toBe(env.service);
      expect(back.metadata).toEqual(env.metadata);
      expect(back.timeoutNano).toBe(env.timeoutNano);

      const code = rand() < 0.2 ? -1 : Math.floor(rand() * 17);
      const resp = { status: { code, message: str(), details: [] }, payload: env.payload };
      const r1 = encodeResponse(resp);
      expect(r1).toEqual(toBinary(ResponseSchema, create(ResponseSchema, resp)));
      expect(decodeResponse(r1).status.code).toBe(code);
    }
  });

  test("unknown fields are skipped and field order does not matter", () => {
    // field 9 varint, field 2 method, field 10 fixed64, field 1 service, field 11 fixed32
    const b = new Uint8Array([0x48, 0x01, 0x12, 1, 0x6d, 0x51, 1, 2, 3, 4, 5, 6, 7, 8, 0x0a, 1, 0x73, 0x5d, 1, 2, 3, 4]);
    const r = decodeRequest(b);
    expect(r.service).toBe("s");
    expect(r.method).toBe("m");
  });

  test("malformed envelopes fail with WireError, never anything else", () => {
    const bad = [
      [0x0a, 5, 0x61], // length beyond the end
      [0x20, 0x80], // truncated varint
      [0x0a], // missing length
      [0x0b, 0x00], // wire type 3 (group) is not supported
      [0x00, 0x00], // field number 0
      [0x08, 0x01], // service as a varint: wrong wire type
      [0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], // varint over 64 bits
    ];
    for (const b of bad) expect(() => decodeRequest(new Uint8Array(b))).toThrow(WireError);
    expect(() => decodeResponse(new Uint8Array([0x0a, 3, 0x08]))).toThrow(WireError);
  });
});

describe("generated containerd messages carry containerd's field numbers", () => {
  test("KillRequest{id, signal=3, all=4}", () => {
    const b = toBinary(KillRequestSchema, create(KillRequestSchema, { id: "c1", signal: 9, all: true }));
    expect([...b]).toEqual([0x0a, 2, ...ascii("c1"), 0x18, 9, 0x20, 1]);
  });

  test("DeleteResponse{pid=1, exit_status=2, exited_at=3}", () => {
    const m = create(DeleteResponseSchema, { pid: 7, exitStatus: 137, exitedAt: { seconds: 1n, nanos: 0 } });
    // 137 = 1*128 + 9 -> 0x89 0x01; Timestamp{seconds=1} = 0x08 0x01
    expect([...toBinary(DeleteResponseSchema, m)]).toEqual([0x08, 7, 0x10, 0x89, 0x01, 0x1a, 2, 0x08, 1]);
  });

  test("Envelope{timestamp=1, namespace=2, topic=3, event=4} with a bare containerd type URL", () => {
    const event = packAny(TaskExitSchema, { containerId: "c", pid: 2, exitStatus: 1 });
    expect(event.typeUrl).toBe("containerd.events.TaskExit");
    // TaskExit{container_id=1 "c", pid=3 2, exit_status=4 1}
    expect([...event.value]).toEqual([0x0a, 1, 0x63, 0x18, 2, 0x20, 1]);
    const env = create(EnvelopeSchema, { timestamp: timestampFromMs(2000), namespace: "n", topic: "/t", event });
    const typeUrl = ascii("containerd.events.TaskExit");
    expect([...toBinary(EnvelopeSchema, env)]).toEqual([
      0x0a, 2, 0x08, 2, // timestamp{seconds: 2}
      0x12, 1, 0x6e, // namespace "n"
      0x1a, 2, ...ascii("/t"), // topic
      0x22, 2 + typeUrl.length + 2 + 7, 0x0a, typeUrl.length, ...typeUrl, 0x12, 7, 0x0a, 1, 0x63, 0x18, 2, 0x20, 1,
    ]);
  });

  test("unpackAny accepts bare and type.googleapis.com URLs and refuses other types", () => {
    const any = packAny(TaskExitSchema, { containerId: "x" });
    expect(unpackAny(any, TaskExitSchema).containerId).toBe("x");
    expect(unpackAny({ ...any, typeUrl: "type.googleapis.com/containerd.events.TaskExit" }, TaskExitSchema).containerId).toBe("x");
    expect(anyIs(any, EnvelopeSchema)).toBe(false);
    expect(() => unpackAny(any, EnvelopeSchema)).toThrow(InvalidArgumentError);
  });
});
