// Hand-written protobuf codec for the two envelope messages every call carries (ttrpc.Request,
// ttrpc.Response with google.rpc.Status). It is byte-for-byte what protobuf-es (and Go) produce for
// src/gen/ttrpc/request_pb.ts, but writes straight behind a reserved frame header, so a frame costs
// one allocation and the payload one copy. tests/unit/ttrpc-wire.test.ts pins both equivalences.
// Decoding is in wire-decode.ts.
import { FrameType, HEADER_LENGTH, writeHeader } from "./codec.ts";

export interface KeyValue {
  key: string;
  value: string;
}

export interface RequestEnvelope {
  service: string;
  method: string;
  payload: Uint8Array;
  /** Nanoseconds; 0 means no deadline. */
  timeoutNano: number;
  metadata: KeyValue[];
}

export interface AnyValue {
  typeUrl: string;
  value: Uint8Array;
}

export interface StatusEnvelope {
  code: number;
  message: string;
  details: AnyValue[];
}

export interface ResponseEnvelope {
  /** Go always sends a status, even for OK; absent is read as OK. */
  status: StatusEnvelope;
  payload: Uint8Array;
}

/** The metadata key containerd puts the namespace in. */
export const NAMESPACE_KEY = "containerd-namespace-ttrpc";

export const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();

function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

function varintLength(v: number): number {
  if (v < 0) return 10; // negative int32/int64 travel sign-extended to 64 bits
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

/** Length of a length-delimited field (tag + length prefix + body). */
const delimited = (len: number): number => 1 + varintLength(len) + len;

class Writer {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start: number,
  ) {
    this.pos = start;
  }
  varint(v: number): void {
    const b = this.buf;
    if (v < 0) {
      let big = BigInt.asUintN(64, BigInt(Math.trunc(v)));
      while (big >= 0x80n) {
        b[this.pos++] = Number(big & 0x7fn) | 0x80;
        big >>= 7n;
      }
      b[this.pos++] = Number(big);
      return;
    }
    while (v >= 0x80) {
      b[this.pos++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    b[this.pos++] = v;
  }
  str(tag: number, s: string, len: number): void {
    this.buf[this.pos++] = tag;
    this.varint(len);
    if (len === s.length) {
      // ASCII: a byte per code unit, no encoder call.
      for (let i = 0; i < len; i++) this.buf[this.pos + i] = s.charCodeAt(i);
    } else {
      encoder.encodeInto(s, this.buf.subarray(this.pos, this.pos + len));
    }
    this.pos += len;
  }
  bytes(tag: number, b: Uint8Array): void {
    this.buf[this.pos++] = tag;
    this.varint(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
}

/** A field of a small message encoded by hand: a varint (uint32/uint64/int64), bytes/string, or a set sub-message. */
export type Field = { n: number; varint: number } | { n: number; bytes: Uint8Array } | { n: number; message: Uint8Array };

/**
 * A message of a few fields, encoded without generated descriptors (the shim's start and delete
 * actions, whose whole run costs less than loading them). Zero varints and empty bytes are left out,
 * as proto3 does for defaults; a sub-message that is set is written even when empty. Field numbers up to 15.
 */
export function encodeMessage(fields: Field[]): Uint8Array {
  let size = 0;
  for (const f of fields) {
    if ("varint" in f) size += f.varint === 0 ? 0 : 1 + varintLength(f.varint);
    else if ("message" in f) size += delimited(f.message.length);
    else size += f.bytes.length === 0 ? 0 : delimited(f.bytes.length);
  }
  const w = new Writer(new Uint8Array(size), 0);
  for (const f of fields) {
    if (f.n < 1 || f.n > 15) throw new RangeError(`field number ${f.n} needs a longer tag`);
    if ("varint" in f) {
      if (f.varint === 0) continue;
      w.buf[w.pos++] = f.n << 3;
      w.varint(f.varint);
    } else if ("message" in f) w.bytes((f.n << 3) | 2, f.message);
    else if (f.bytes.length > 0) w.bytes((f.n << 3) | 2, f.bytes);
  }
  return w.buf;
}

function requestSize(r: RequestEnvelope, lens: number[]): number {
  let n = 0;
  const sl = utf8Length(r.service);
  const ml = utf8Length(r.method);
  lens.push(sl, ml);
  if (sl > 0) n += delimited(sl);
  if (ml > 0) n += delimited(ml);
  if (r.payload.length > 0) n += delimited(r.payload.length);
  if (r.timeoutNano !== 0) n += 1 + varintLength(r.timeoutNano);
  for (const kv of r.metadata) {
    const kl = utf8Length(kv.key);
    const vl = utf8Length(kv.value);
    const inner = (kl > 0 ? delimited(kl) : 0) + (vl > 0 ? delimited(vl) : 0);
    lens.push(kl, vl, inner);
    n += delimited(inner);
  }
  return n;
}

/** A complete request frame: header + encoded ttrpc.Request. */
export function encodeRequestFrame(streamId: number, r: RequestEnvelope): Uint8Array {
  const lens: number[] = [];
  const size = requestSize(r, lens);
  const out = new Uint8Array(HEADER_LENGTH + size);
  writeHeader(out, 0, { length: size, streamId, type: FrameType.Request, flags: 0 });
  const w = new Writer(out, HEADER_LENGTH);
  let li = 0;
  const sl = lens[li++]!;
  const ml = lens[li++]!;
  if (sl > 0) w.str(0x0a, r.service, sl);
  if (ml > 0) w.str(0x12, r.method, ml);
  if (r.payload.length > 0) w.bytes(0x1a, r.payload);
  if (r.timeoutNano !== 0) {
    out[w.pos++] = 0x20;
    w.varint(r.timeoutNano);
  }
  for (const kv of r.metadata) {
    const kl = lens[li++]!;
    const vl = lens[li++]!;
    const inner = lens[li++]!;
    out[w.pos++] = 0x2a;
    w.varint(inner);
    if (kl > 0) w.str(0x0a, kv.key, kl);
    if (vl > 0) w.str(0x12, kv.value, vl);
  }
  return out;
}

export function encodeRequest(r: RequestEnvelope): Uint8Array {
  return encodeRequestFrame(0, r).subarray(HEADER_LENGTH);
}

/** A complete response frame: header + encoded ttrpc.Response. */
export function encodeResponseFrame(streamId: number, r: ResponseEnvelope): Uint8Array {
  const st = r.status;
  const msgLen = utf8Length(st.message);
  const detailLens = st.details.map((d) => {
    const ul = utf8Length(d.typeUrl);
    return [ul, (ul > 0 ? delimited(ul) : 0) + (d.value.length > 0 ? delimited(d.value.length) : 0)] as const;
  });
  let stLen = 0;
  if (st.code !== 0) stLen += 1 + varintLength(st.code);
  if (msgLen > 0) stLen += delimited(msgLen);
  for (const [, inner] of detailLens) stLen += delimited(inner);
  const size = delimited(stLen) + (r.payload.length > 0 ? delimited(r.payload.length) : 0);
  const out = new Uint8Array(HEADER_LENGTH + size);
  writeHeader(out, 0, { length: size, streamId, type: FrameType.Response, flags: 0 });
  const w = new Writer(out, HEADER_LENGTH);
  out[w.pos++] = 0x0a;
  w.varint(stLen);
  if (st.code !== 0) {
    out[w.pos++] = 0x08;
    w.varint(st.code);
  }
  if (msgLen > 0) w.str(0x12, st.message, msgLen);
  st.details.forEach((d, i) => {
    const [ul, inner] = detailLens[i]!;
    out[w.pos++] = 0x1a;
    w.varint(inner);
    if (ul > 0) w.str(0x0a, d.typeUrl, ul);
    if (d.value.length > 0) w.bytes(0x12, d.value);
  });
  if (r.payload.length > 0) w.bytes(0x12, r.payload);
  return out;
}

export function encodeResponse(r: ResponseEnvelope): Uint8Array {
  return encodeResponseFrame(0, r).subarray(HEADER_LENGTH);
}
