// Decoding of the ttrpc envelopes (see wire.ts for the encoders and the types). Payloads come back
// as views into the frame, never copies; malformed input throws WireError and nothing else.
import { EMPTY, type AnyValue, type KeyValue, type RequestEnvelope, type ResponseEnvelope, type StatusEnvelope } from "./wire.ts";

export class WireError extends Error {
  override readonly name = "WireError";
}

const decoder = new TextDecoder();
const OK_STATUS: StatusEnvelope = Object.freeze({ code: 0, message: "", details: Object.freeze([]) as unknown as AnyValue[] });

/** Reads protobuf fields of buf[pos, end): nested messages get a bounded Reader, not a copy or view. */
export class Reader {
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

/**
 * The length-delimited fields of a message by number (the last one wins, as protobuf merges), other
 * wire types skipped: for the few fields a fast path needs without loading generated descriptors.
 */
export function delimitedFields(buf: Uint8Array): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>();
  const r = new Reader(buf);
  while (!r.done) {
    const t = r.tag();
    if ((t & 7) === 2) out.set(t >>> 3, r.bytes());
    else r.skip(t & 7);
  }
  return out;
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

