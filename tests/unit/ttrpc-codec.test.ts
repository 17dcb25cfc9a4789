import { describe, expect, test } from "bun:test";
import {
  FrameParser,
  FrameType,
  HEADER_LENGTH,
  MAX_DATA_LENGTH,
  decodeHeader,
  encodeFrame,
  encodeHeader,
  type Frame,
  type OversizedFrame,
} from "../../src/ttrpc/codec.ts";

type Event = { kind: "frame"; f: Frame } | { kind: "oversized"; f: OversizedFrame };

function collector(max?: number): { parser: FrameParser; events: Event[] } {
  const events: Event[] = [];
  const parser = new FrameParser(
    {
      frame: (f) => events.push({ kind: "frame", f: { ...f, data: f.data.slice() } }),
      oversized: (f) => events.push({ kind: "oversized", f }),
    },
    max,
  );
  return { parser, events };
}

// A tiny deterministic PRNG so failures reproduce.
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

describe("frame header golden bytes", () => {
  test("request header: length, stream id big-endian, type, flags", () => {
    const h = encodeHeader({ length: 0x0102, streamId: 0x03040506, type: FrameType.Request, flags: 0 });
    expect([...h]).toEqual([0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x01, 0x00]);
  });

  test("response frame with data and flags", () => {
    const f = encodeFrame(7, FrameType.Response, new Uint8Array([0xaa, 0xbb]), 0x05);
    expect([...f]).toEqual([0, 0, 0, 2, 0, 0, 0, 7, 2, 5, 0xaa, 0xbb]);
  });

  test("maximum values survive the round trip", () => {
    const h = { length: 0xffffffff, streamId: 0xffffffff, type: FrameType.Data, flags: 0xff };
    const b = encodeHeader(h);
    expect([...b]).toEqual([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 3, 0xff]);
    expect(decodeHeader(b)).toEqual(h);
  });

  test("a short header is refused", () => {
    expect(() => decodeHeader(new Uint8Array(9))).toThrow(RangeError);
  });
});

describe("FrameParser", () => {
  const frames = [
    encodeFrame(1, FrameType.Request, new Uint8Array([1, 2, 3])),
    encodeFrame(3, FrameType.Request, new Uint8Array(0)),
    encodeFrame(5, FrameType.Data, new Uint8Array(300).map((_, i) => i & 0xff), 2),
    encodeFrame(2, FrameType.Response, new Uint8Array([9])),
  ];
  const stream = concat(frames);
  const expected = frames.map((f) => {
    const h = decodeHeader(f);
    return { streamId: h.streamId, type: h.type, flags: h.flags, data: [...f.subarray(HEADER_LENGTH)] };
  });
  const simplify = (events: Event[]) =>
    events.map((e) => (e.kind === "frame" ? { ...e.f, data: [...e.f.data] } : e));

  test("coalesced frames in one chunk come out in order", () => {
    const { parser, events } = collector();
    parser.push(stream);
    expect(simplify(events)).toEqual(expected);
    expect(parser.pending).toBe(0);
  });

  test("byte-at-a-time delivery gives the same frames", () => {
    const { parser, events } = collector();
    for (let i = 0; i < stream.length; i++) parser.push(stream.subarray(i, i + 1));
    expect(simplify(events)).toEqual(expected);
  });

  test("200 random splits of the stream give the same frames", () => {
    const rand = rng(42);
    for (let round = 0; round < 200; round++) {
      const { parser, events } = collector();
      let pos = 0;
      while (pos < stream.length) {
        const n = 1 + Math.floor(rand() * 40);
        parser.push(stream.subarray(pos, pos + n));
        pos += n;
      }
      expect(simplify(events)).toEqual(expected);
      expect(parser.pending).toBe(0);
    }
  });

  test("a whole frame in one chunk is a view, not a copy", () => {
    let seen: Uint8Array | undefined;
    const parser = new FrameParser({ frame: (f) => (seen = f.data), oversized: () => {} });
    const chunk = encodeFrame(1, FrameType.Request, new Uint8Array([7, 8]));
    parser.push(chunk);
    expect(seen!.buffer).toBe(chunk.buffer);
  });

  test("an oversized frame is skipped as it streams, reported once, and parsing continues", () => {
    const max = 16;
    const { parser, events } = collector(max);
    const big = encodeFrame(9, FrameType.Request, new Uint8Array(100).fill(0xee));
    const after = encodeFrame(11, FrameType.Request, new Uint8Array([1]));
    const all = concat([big, after]);
    // Split so that the skipped body arrives in pieces: nothing must be buffered meanwhile.
    parser.push(all.subarray(0, 30));
    expect(events).toEqual([]);
    expect(parser.pending).toBe(100 - 20);
    parser.push(all.subarray(30, 105));
    expect(events).toEqual([]);
    parser.push(all.subarray(105));
    expect(simplify(events)).toEqual([
      { kind: "oversized", f: { streamId: 9, type: 1, flags: 0, length: 100 } },
      { streamId: 11, type: 1, flags: 0, data: [1] },
    ] as never);
  });

  test("the default limit is containerd's 4 MiB: exactly 4 MiB passes, one byte more is skipped", () => {
    expect(MAX_DATA_LENGTH).toBe(4 * 1024 * 1024);
    const { parser, events } = collector();
    parser.push(encodeFrame(1, FrameType.Request, new Uint8Array(MAX_DATA_LENGTH)));
    parser.push(encodeFrame(3, FrameType.Request, new Uint8Array(MAX_DATA_LENGTH + 1)));
    expect(events.map((e) => e.kind)).toEqual(["frame", "oversized"]);
    expect(events[1]!.f.streamId).toBe(3);
  });

  test("a truncated frame waits (no event, no crash) and completes when the rest arrives", () => {
    const { parser, events } = collector();
    const f = encodeFrame(1, FrameType.Request, new Uint8Array(50).fill(3));
    parser.push(f.subarray(0, 5));
    parser.push(f.subarray(5, 40));
    expect(events).toEqual([]);
    expect(parser.pending).toBe(30); // the header is parsed; 30 body bytes are held
    parser.push(f.subarray(40));
    expect(events.length).toBe(1);
  });

  test("random garbage never throws, never hangs, and never buffers beyond one frame's limit", () => {
    const rand = rng(7);
    const max = 1024;
    for (let round = 0; round < 300; round++) {
      const { parser } = collector(max);
      const len = Math.floor(rand() * 4096);
      const garbage = new Uint8Array(len).map(() => Math.floor(rand() * 256));
      let pos = 0;
      while (pos < garbage.length) {
        const n = 1 + Math.floor(rand() * 512);
        parser.push(garbage.subarray(pos, pos + n));
        pos += n;
      }
      // Buffered bytes are at most a header plus one in-limit body; skips are counted, not stored.
      const stored = parser.pending - (parser as unknown as { skipLeft: number }).skipLeft;
      expect(stored).toBeLessThanOrEqual(HEADER_LENGTH + max);
    }
  });

  test("a huge advertised length costs no memory: 4 GiB - 1 is skipped lazily", () => {
    const { parser, events } = collector();
    parser.push(encodeHeader({ length: 0xffffffff, streamId: 1, type: 1, flags: 0 }));
    parser.push(new Uint8Array(1 << 20));
    expect(events).toEqual([]);
    expect(parser.pending).toBe(0xffffffff - (1 << 20));
  });
});
