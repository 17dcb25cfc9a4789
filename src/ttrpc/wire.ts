// Hand-written protobuf codec for the two envelope messages every call carries (ttrpc.Request,
// ttrpc.Response with google.rpc.Status). It is byte-for-byte what protobuf-es (and Go) produce for
// src/gen/ttrpc/request_pb.ts, but writes straight behind a reserved frame header, so a frame costs
// one allocation and the payload one copy. tests/unit/ttrpc-wire.test.ts pins both equivalences.
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
const OK_STATUS: StatusEnvelope = Object.freeze({ code: 0, message: "", details: Object.freeze([]) as unknown as AnyValue[] });
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class WireError extends Error {
  override readonly name = "WireError";
}

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

/** Reads protobuf fields of buf[pos, end): nested messages get a bounded Reader, not a copy or view. */
class Reader {
  constructor(
    readonly buf: Uint8Array,
    public pos = 0,
    readonly end = buf.length,
  ) {}
  get done(): boolean {
    return this.pos >= this.end;
  }
  /** A 64-bit varint as a number (exact up to 2^53); bit 63 set means a negative int64/int32. */
  varint(): number {
    const b = this.buf;
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new WireError("truncated varint");
      const byte = b[this.pos++]!;
      const bits = byte & 0x7f;
      const shift = i * 7;
      if (i === 9 && byte > 1) throw new WireError("varint overflows 64 bits");
      if (shift < 28) lo |= bits << shift;
      else if (shift === 28) {
        lo |= (bits & 0x0f) << 28;
        hi |= bits >>> 4;
      } else hi |= bits << (shift - 32);
      if (byte < 0x80) {
        lo >>>= 0;
        hi >>>= 0;
        if (hi >= 0x80000000) return -((~hi >>> 0) * 2 ** 32 + (~lo >>> 0) + 1);
        return hi * 2 ** 32 + lo;
      }
    }
    throw new WireError("varint too long");
  }
  /** Length prefix of a delimited field; returns its end offset after checking bounds. */
  private span(): number {
    const len = this.varint();
    const end = this.pos + len;
    if (len < 0 || end > this.end) throw new WireError("length-delimited field exceeds its message");
    return end;
  }
  bytes(): Uint8Array {
    const end = this.span();
    const out = this.buf.subarray(this.pos, end);
    this.pos = end;
    return out;
  }
  message(): Reader {
    const end = this.span();
    const r = new Reader(this.buf, this.pos, end);
    this.pos = end;
    return r;
  }
  string(): string {
    const end = this.span();
    const start = this.pos;
    this.pos = end;
    // Short ASCII strings (service, method, metadata) skip the view and the decoder call.
    if (end - start <= 64) {
      const b = this.buf;
      let s = "";
      for (let i = start; i < end; i++) {
        const c = b[i]!;
        if (c >= 0x80) return decoder.decode(b.subarray(start, end));
        s += String.fromCharCode(c);
      }
      return s;
    }
    return decoder.decode(this.buf.subarray(start, end));
  }
  skip(wireType: number): void {
    switch (wireType) {
      case 0:
        this.varint();
        return;
      case 1:
        this.advance(8);
        return;
      case 2:
        this.pos = this.span();
        return;
      case 5:
        this.advance(4);
        return;
      default:
        throw new WireError(`unsupported wire type ${wireType}`);
    }
  }
  private advance(n: number): void {
    if (this.pos + n > this.end) throw new WireError("truncated fixed-width field");
    this.pos += n;
  }
  /** Reads a tag: field number * 8 + wire type. */
  tag(): number {
    const t = this.varint();
    if (t < 8) throw new WireError(`invalid field number ${Math.floor(t / 8)}`);
    return t;
  }
}

function expect(tag: number, want: number): void {
  if ((tag & 7) !== want) throw new WireError(`field ${Math.floor(tag / 8)}: wire type ${tag & 7}, want ${want}`);
}

function decodeKeyValue(r: Reader): KeyValue {
  const kv: KeyValue = { key: "", value: "" };
  while (!r.done) {
    const t = r.tag();
    const f = t >>> 3;
    if (f === 1) {
      expect(t, 2);
      kv.key = r.string();
    } else if (f === 2) {
      expect(t, 2);
      kv.value = r.string();
    } else r.skip(t & 7);
  }
  return kv;
}

/** Decodes a ttrpc.Request; payload is a view into `b`. Throws WireError on malformed input. */
export function decodeRequest(b: Uint8Array): RequestEnvelope {
  const r = new Reader(b);
  const req: RequestEnvelope = { service: "", method: "", payload: EMPTY, timeoutNano: 0, metadata: [] };
  while (!r.done) {
    const t = r.tag();
    switch (t >>> 3) {
      case 1:
        expect(t, 2);
        req.service = r.string();
        break;
      case 2:
        expect(t, 2);
        req.method = r.string();
        break;
      case 3:
        expect(t, 2);
        req.payload = r.bytes();
        break;
      case 4:
        expect(t, 0);
        req.timeoutNano = r.varint();
        break;
      case 5:
        expect(t, 2);
        req.metadata.push(decodeKeyValue(r.message()));
        break;
      default:
        r.skip(t & 7);
    }
  }
  return req;
}

function decodeAny(r: Reader): AnyValue {
  const a: AnyValue = { typeUrl: "", value: EMPTY };
  while (!r.done) {
    const t = r.tag();
    const f = t >>> 3;
    if (f === 1) {
      expect(t, 2);
      a.typeUrl = r.string();
    } else if (f === 2) {
      expect(t, 2);
      a.value = r.bytes();
    } else r.skip(t & 7);
  }
  return a;
}

function decodeStatus(r: Reader): StatusEnvelope {
  const st: StatusEnvelope = { code: 0, message: "", details: [] };
  while (!r.done) {
    const t = r.tag();
    const f = t >>> 3;
    if (f === 1) {
      expect(t, 0);
      st.code = r.varint() | 0;
    } else if (f === 2) {
      expect(t, 2);
      st.message = r.string();
    } else if (f === 3) {
      expect(t, 2);
      st.details.push(decodeAny(r.message()));
    } else r.skip(t & 7);
  }
  return st;
}

/** Decodes a ttrpc.Response; payload is a view into `b`. Throws WireError on malformed input. */
export function decodeResponse(b: Uint8Array): ResponseEnvelope {
  const r = new Reader(b);
  const resp: ResponseEnvelope = { status: OK_STATUS, payload: EMPTY };
  while (!r.done) {
    const t = r.tag();
    const f = t >>> 3;
    if (f === 1) {
      expect(t, 2);
      resp.status = decodeStatus(r.message());
    } else if (f === 2) {
      expect(t, 2);
      resp.payload = r.bytes();
    } else r.skip(t & 7);
  }
  return resp;
}

