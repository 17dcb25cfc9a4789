// What the ttrpc fuzzer sends: valid Task requests (re-encoded from random fields), their
// mutations, and raw garbage. Pure and seeded: the same seed gives the same byte sequence.
//
// Only methods that cannot change a live shim's state when aimed at an id it does not hold are
// sent (ids are random `fuzz-...` strings): never Create, Start, Shutdown, Checkpoint or Update.
import { create, toBinary, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { Task } from "../../src/gen/containerd/task/v2/shim_pb.ts";
import { FrameType, HEADER_LENGTH, encodeHeader } from "../../src/ttrpc/codec.ts";
import { encodeRequestFrame, NAMESPACE_KEY, type KeyValue } from "../../src/ttrpc/wire.ts";

export type Rng = () => number;

/** sfc32: small, fast, and good enough to spread mutations; seeded so runs reproduce. */
export function rng(seed: number): Rng {
  let a = 0x9e3779b9 ^ seed;
  let b = 0x243f6a88;
  let c = 0xb7e15162;
  let d = seed >>> 0;
  const next = (): number => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 12; i++) next();
  return next;
}

export const int = (r: Rng, n: number): number => Math.floor(r() * n);
export const pick = <T>(r: Rng, xs: readonly T[]): T => xs[int(r, xs.length)]!;

export function randomBytes(r: Rng, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = int(r, 256);
  return out;
}

const HOSTILE_IDS = ["", "..", "../../etc", "a/b", "x\u0000y", "ü-名前", "-lead", "a".repeat(77), "\u{1F600}", " "];

/** Mostly well-formed ids no shim holds; sometimes hostile ones, sometimes long ones. */
export function randomId(r: Rng): string {
  const k = r();
  if (k < 0.7) return `fuzz-${int(r, 0xffffffff).toString(16)}`;
  if (k < 0.9) return pick(r, HOSTILE_IDS);
  return "f".repeat(1 + int(r, 8192));
}

type Init = Record<string, unknown>;
/** Methods safe to aim at ids the target does not hold, with a random request for each. */
const SAFE: Record<string, (r: Rng, id: string) => Init> = {
  state: (r, id) => ({ id, execId: r() < 0.3 ? randomId(r) : "" }),
  delete: (r, id) => ({ id, execId: r() < 0.5 ? randomId(r) : "" }),
  pids: (_r, id) => ({ id }),
  pause: (_r, id) => ({ id }),
  resume: (_r, id) => ({ id }),
  kill: (r, id) => ({ id, execId: r() < 0.3 ? randomId(r) : "", signal: int(r, 70), all: r() < 0.5 }),
  exec: (r, id) => ({ id, execId: randomId(r), terminal: r() < 0.5, stdin: "/dev/null", stdout: "", stderr: "" }),
  resizePty: (r, id) => ({ id, execId: "", width: int(r, 500), height: int(r, 500) }),
  closeIO: (r, id) => ({ id, execId: "", stdin: r() < 0.5 }),
  wait: (r, id) => ({ id, execId: r() < 0.3 ? randomId(r) : "" }),
  stats: (_r, id) => ({ id }),
  connect: (_r, id) => ({ id }),
};
export const SAFE_METHODS = Object.keys(SAFE);

const methodsByLocal = new Map(Task.methods.map((m) => [m.localName, m]));

export interface RequestSpec {
  service: string;
  method: string;
  payload: Uint8Array;
}

export function validRequest(r: Rng, local = pick(r, SAFE_METHODS)): RequestSpec {
  const desc = methodsByLocal.get(local)!;
  const init = SAFE[local]!(r, randomId(r));
  const payload = toBinary(desc.input, create(desc.input as DescMessage, init as MessageInitShape<DescMessage>));
  return { service: Task.typeName, method: desc.name, payload };
}

function metadata(r: Rng): KeyValue[] {
  const md: KeyValue[] = [{ key: NAMESPACE_KEY, value: r() < 0.8 ? "fuzz" : randomId(r) }];
  for (let i = int(r, 3); i > 0; i--) md.push({ key: `x-${int(r, 100)}`, value: "v".repeat(int(r, 64)) });
  return md;
}

/** A well-formed request frame on `streamId`, sometimes with a short deadline. */
export function requestFrame(r: Rng, streamId: number, spec: RequestSpec = validRequest(r)): Uint8Array {
  const timeoutNano = r() < 0.3 ? 1 + int(r, 2e9) : 0;
  return encodeRequestFrame(streamId, { ...spec, timeoutNano, metadata: metadata(r) });
}

/** Unknown fields nested as deep start-groups: a recursion test for the payload decoder. */
export function deepGroups(depth: number): Uint8Array {
  const out = new Uint8Array(depth * 2);
  out.fill(0x0b, 0, depth); // field 1, wire type 3 (start group)
  out.fill(0x0c, depth); // field 1, wire type 4 (end group)
  return out;
}

export type Mutation =
  | "flip-data"
  | "flip-any"
  | "truncate"
  | "length-lie"
  | "type"
  | "even-id"
  | "splice"
  | "random-payload"
  | "deep-groups"
  | "unknown-method";
export const MUTATIONS: readonly Mutation[] = [
  "flip-data",
  "flip-any",
  "truncate",
  "length-lie",
  "type",
  "even-id",
  "splice",
  "random-payload",
  "deep-groups",
  "unknown-method",
];

function withLength(frame: Uint8Array, length: number): Uint8Array {
  const out = frame.slice();
  out.set(encodeHeader({ length: length >>> 0, streamId: 0, type: 0, flags: 0 }).subarray(0, 4), 0);
  return out;
}

/**
 * One mutation of a valid frame. Kinds that keep the framing (flip-data, splice, random-payload,
 * deep-groups, unknown-method, even-id) still get one answer each; the others may desynchronise
 * the stream, which is the point.
 */
export function mutate(r: Rng, frame: Uint8Array, streamId: number, kind: Mutation = pick(r, MUTATIONS)): Uint8Array {
  switch (kind) {
    case "flip-data":
    case "flip-any": {
      const out = frame.slice();
      const from = kind === "flip-data" ? HEADER_LENGTH : 0;
      if (out.length <= from) return out;
      for (let i = 1 + int(r, 8); i > 0; i--) out[from + int(r, out.length - from)]! ^= 1 << int(r, 8);
      return out;
    }
    case "truncate":
      return frame.slice(0, int(r, frame.length));
    case "length-lie": {
      const len = frame.length - HEADER_LENGTH;
      const choices = [0, Math.max(0, len - 1 - int(r, 16)), len + 1 + int(r, 64), (4 << 20) + 1 + int(r, 1 << 20), 0xffffffff];
      return withLength(frame, pick(r, choices));
    }
    case "type": {
      const out = frame.slice();
      out[8] = pick(r, [0, FrameType.Response, FrameType.Data, 4 + int(r, 252)]);
      return out;
    }
    case "even-id":
      return frameWith(streamId + 1, frame.subarray(HEADER_LENGTH));
    case "splice": {
      const data = frame.subarray(HEADER_LENGTH);
      const at = int(r, data.length + 1);
      const junk = randomBytes(r, 1 + int(r, 32));
      const out = new Uint8Array(data.length + junk.length);
      out.set(data.subarray(0, at));
      out.set(junk, at);
      out.set(data.subarray(at), at + junk.length);
      return frameWith(streamId, out);
    }
    case "random-payload":
      return requestFrame(r, streamId, { ...validRequest(r), payload: randomBytes(r, int(r, 256)) });
    case "deep-groups":
      return requestFrame(r, streamId, { ...validRequest(r), payload: deepGroups(1000 + int(r, 100_000)) });
    case "unknown-method":
      return requestFrame(r, streamId, {
        service: r() < 0.5 ? Task.typeName : `x.${int(r, 1e6)}`,
        method: pick(r, ["Create", "Shutdown", "", "State\u0000", "state", String.fromCharCode(...randomBytes(r, 8))]).replace(
          /^(Create|Shutdown)$/,
          "$1X",
        ),
        payload: new Uint8Array(0),
      });
  }
}

function frameWith(streamId: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER_LENGTH + data.length);
  out.set(encodeHeader({ length: data.length, streamId, type: FrameType.Request, flags: 0 }));
  out.set(data, HEADER_LENGTH);
  return out;
}
