// The ttrpc frame codec: a 10-byte header (uint32 BE data length, uint32 BE stream id, uint8 type,
// uint8 flags) followed by the data. Pure: no sockets, no timers, no protobuf.

export const HEADER_LENGTH = 10;
/** containerd/ttrpc messageLengthMax: larger frames are skipped and answered ResourceExhausted. */
export const MAX_DATA_LENGTH = 4 << 20;

export const FrameType = { Request: 1, Response: 2, Data: 3 } as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** ttrpc 1.2 stream flags (unary calls send 0). */
export const FrameFlags = { RemoteClosed: 1, RemoteOpen: 2, NoData: 4 } as const;

export interface FrameHeader {
  length: number;
  streamId: number;
  type: number;
  flags: number;
}

export interface Frame {
  streamId: number;
  type: number;
  flags: number;
  /** A view into a received chunk when the frame arrived in one, else a fresh buffer; never reused by the parser. */
  data: Uint8Array;
}

/** A frame whose data exceeded the limit; its bytes were skipped. */
export interface OversizedFrame {
  streamId: number;
  type: number;
  flags: number;
  length: number;
}

export interface ParserEvents {
  frame(frame: Frame): void;
  oversized(frame: OversizedFrame): void;
  /** A header with an unknown frame type; the parser ignores all later input. */
  invalid?(header: FrameHeader): void;
}

// Byte arithmetic rather than a DataView: creating a view (and touching .buffer) costs more than
// the whole header on Bun's hot path.
export function writeHeader(out: Uint8Array, offset: number, h: FrameHeader): void {
  const len = h.length >>> 0;
  const id = h.streamId >>> 0;
  out[offset] = len >>> 24;
  out[offset + 1] = (len >>> 16) & 0xff;
  out[offset + 2] = (len >>> 8) & 0xff;
  out[offset + 3] = len & 0xff;
  out[offset + 4] = id >>> 24;
  out[offset + 5] = (id >>> 16) & 0xff;
  out[offset + 6] = (id >>> 8) & 0xff;
  out[offset + 7] = id & 0xff;
  out[offset + 8] = h.type;
  out[offset + 9] = h.flags;
}

export function encodeHeader(h: FrameHeader): Uint8Array {
  const out = new Uint8Array(HEADER_LENGTH);
  writeHeader(out, 0, h);
  return out;
}

const u32 = (b: Uint8Array, o: number): number => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;

export function decodeHeader(b: Uint8Array, offset = 0): FrameHeader {
  if (b.length - offset < HEADER_LENGTH) throw new RangeError(`ttrpc: short header: ${b.length - offset} bytes`);
  return { length: u32(b, offset), streamId: u32(b, offset + 4), type: b[offset + 8]!, flags: b[offset + 9]! };
}

/** Header and data in one buffer. Hot paths build the data behind a reserved header instead (see wire.ts). */
export function encodeFrame(streamId: number, type: number, data: Uint8Array, flags = 0): Uint8Array {
  const out = new Uint8Array(HEADER_LENGTH + data.length);
  writeHeader(out, 0, { length: data.length, streamId, type, flags });
  out.set(data, HEADER_LENGTH);
  return out;
}

/** Frame types of ttrpc 1.2; any other type means the peer is not speaking ttrpc or lost the framing. */
export function isKnownFrameType(type: number): boolean {
  return type >= FrameType.Request && type <= FrameType.Data;
}

/**
 * Incremental frame parser: feed it chunks as they arrive (split or coalesced anyhow); it calls
 * `events.frame` once per complete frame, in order. An oversized frame's data is skipped as it
 * streams in (never buffered) and reported through `events.oversized` once fully skipped, after
 * which parsing continues with the next frame: the connection stays usable.
 *
 * Memory follows the bytes actually received, never the length a header claims: a body is kept as
 * the received chunks (views, no copy) and joined once complete, so a peer that announces 4 MiB and
 * sends 10 bytes costs 10 bytes. A header with an unknown type is reported through `events.invalid`
 * (when given) and the parser stops: nothing after it can be trusted to be framed.
 */
export class FrameParser {
  private readonly header = new Uint8Array(HEADER_LENGTH);
  private headerFill = 0;
  private cur: FrameHeader | undefined;
  private parts: Uint8Array[] = [];
  private bodyFill = 0;
  private skipLeft = 0;
  private dead = false;

  constructor(
    private readonly events: ParserEvents,
    private readonly maxDataLength = MAX_DATA_LENGTH,
  ) {}

  /** Bytes held for a frame not yet complete (header bytes, body bytes, or bytes still to skip). */
  get pending(): number {
    return this.headerFill + this.bodyFill + this.skipLeft;
  }

  /** True once an invalid header was seen; later input is ignored. */
  get failed(): boolean {
    return this.dead;
  }

  push(chunk: Uint8Array): void {
    let pos = 0;
    const end = chunk.length;
    while (pos < end && !this.dead) {
      const cur = this.cur;
      if (cur === undefined) {
        // Fast path: a whole header (and perhaps its whole body) inside this chunk.
        if (this.headerFill === 0 && end - pos >= HEADER_LENGTH) {
          const h = decodeHeader(chunk, pos);
          pos += HEADER_LENGTH;
          if (h.length <= this.maxDataLength && end - pos >= h.length && isKnownFrameType(h.type)) {
            const data = chunk.subarray(pos, pos + h.length);
            pos += h.length;
            this.events.frame({ streamId: h.streamId, type: h.type, flags: h.flags, data });
            continue;
          }
          this.begin(h);
          continue;
        }
        const take = Math.min(HEADER_LENGTH - this.headerFill, end - pos);
        this.header.set(chunk.subarray(pos, pos + take), this.headerFill);
        this.headerFill += take;
        pos += take;
        if (this.headerFill === HEADER_LENGTH) {
          this.headerFill = 0;
          this.begin(decodeHeader(this.header));
        }
        continue;
      }
      if (this.skipLeft > 0) {
        const take = Math.min(this.skipLeft, end - pos);
        this.skipLeft -= take;
        pos += take;
        if (this.skipLeft === 0) this.finishSkip(cur);
        continue;
      }
      const take = Math.min(cur.length - this.bodyFill, end - pos);
      this.parts.push(chunk.subarray(pos, pos + take));
      this.bodyFill += take;
      pos += take;
      if (this.bodyFill === cur.length) this.finishBody(cur);
    }
  }

  private begin(h: FrameHeader): void {
    if (!isKnownFrameType(h.type)) {
      this.dead = true;
      this.events.invalid?.(h);
      return;
    }
    if (h.length > this.maxDataLength) {
      this.cur = h;
      this.skipLeft = h.length;
      return;
    }
    if (h.length === 0) {
      this.events.frame({ streamId: h.streamId, type: h.type, flags: h.flags, data: new Uint8Array(0) });
      return;
    }
    this.cur = h;
    this.parts = [];
    this.bodyFill = 0;
  }

  private finishBody(h: FrameHeader): void {
    const parts = this.parts;
    this.cur = undefined;
    this.parts = [];
    this.bodyFill = 0;
    let data: Uint8Array;
    if (parts.length === 1) data = parts[0]!;
    else {
      data = new Uint8Array(h.length);
      let pos = 0;
      for (const p of parts) {
        data.set(p, pos);
        pos += p.length;
      }
    }
    this.events.frame({ streamId: h.streamId, type: h.type, flags: h.flags, data });
  }

  private finishSkip(h: FrameHeader): void {
    this.cur = undefined;
    this.events.oversized({ streamId: h.streamId, type: h.type, flags: h.flags, length: h.length });
  }
}
