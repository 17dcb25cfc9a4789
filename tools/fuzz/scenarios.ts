// The fuzzer's attacks, one connection (or a burst of them) each. Every scenario is bounded in
// bytes and time and ends every connection it opened.
import { Code } from "../../src/errdefs.ts";
import { FrameParser, FrameType, encodeHeader, connectUnix, type SocketDuplex } from "../../src/ttrpc/index.ts";
import { decodeResponse } from "../../src/ttrpc/wire-decode.ts";
import { int, mutate, pick, randomBytes, requestFrame, validRequest, type Rng } from "./corpus.ts";

export interface Tally {
  frames: number;
  bytes: number;
  connections: number;
  answers: number;
  /** Connections the target ended before we did (garbage and slow-reader drops are expected). */
  droppedByTarget: number;
  connectErrors: number;
  codes: Record<string, number>;
  scenarios: Record<string, number>;
}

export function newTally(): Tally {
  return { frames: 0, bytes: 0, connections: 0, answers: 0, droppedByTarget: 0, connectErrors: 0, codes: {}, scenarios: {} };
}

const codeName = (c: number): string => Object.entries(Code).find(([, v]) => v === c)?.[0] ?? `code${c}`;

/** A raw connection: writes bytes, counts the answers it reads. */
class Raw {
  answers = 0;
  closedByPeer = false;
  private weClosed = false;
  private waiters: (() => void)[] = [];

  private constructor(
    readonly d: SocketDuplex,
    private readonly t: Tally,
  ) {
    const parser = new FrameParser({
      frame: (f) => {
        if (f.type !== FrameType.Response) return;
        this.answers++;
        t.answers++;
        let name = "undecodable";
        try {
          name = codeName(decodeResponse(f.data).status.code);
        } catch {
          // counted under "undecodable": a target must never send one
        }
        t.codes[name] = (t.codes[name] ?? 0) + 1;
        this.wake();
      },
      oversized: () => {
        t.codes["oversized-answer"] = (t.codes["oversized-answer"] ?? 0) + 1;
      },
    });
    d.onData((b) => parser.push(b));
    d.onClose(() => {
      if (!this.weClosed) {
        this.closedByPeer = true;
        t.droppedByTarget++;
      }
      this.wake();
    });
  }

  static async open(address: string, t: Tally): Promise<Raw | undefined> {
    try {
      const d = await connectUnix(address, { timeoutMs: 5000 });
      t.connections++;
      return new Raw(d, t);
    } catch {
      t.connectErrors++;
      return undefined;
    }
  }

  send(bytes: Uint8Array, frames = 1): void {
    this.t.frames += frames;
    this.t.bytes += bytes.length;
    this.d.write(bytes);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Waits for `n` answers in all, the target closing, or `ms`. */
  async answered(n: number, ms: number): Promise<void> {
    const end = Date.now() + ms;
    while (this.answers < n && !this.closedByPeer && Date.now() < end) {
      await Promise.race([new Promise<void>((r) => this.waiters.push(r)), Bun.sleep(Math.min(50, end - Date.now()))]);
    }
  }

  close(): void {
    this.weClosed = true;
    this.d.destroy();
  }
}

export type Scenario = (r: Rng, address: string, t: Tally) => Promise<void>;

/** Valid requests, most of them mutated, written in random cuts. */
const mutated: Scenario = async (r, address, t) => {
  const c = await Raw.open(address, t);
  if (!c) return;
  const n = 1 + int(r, 64);
  const parts: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const id = 2 * i + 1;
    const valid = requestFrame(r, id);
    parts.push(r() < 0.6 ? mutate(r, valid, id) : valid);
  }
  const all = Buffer.concat(parts);
  if (r() < 0.5) c.send(all, n);
  else {
    t.frames += n;
    for (let pos = 0; pos < all.length; ) {
      const cut = 1 + int(r, 4096);
      c.send(all.subarray(pos, pos + cut), 0);
      pos += cut;
      if (r() < 0.2) await Bun.sleep(0);
    }
  }
  await c.answered(n, 300);
  c.close();
};

const random: Scenario = async (r, address, t) => {
  const c = await Raw.open(address, t);
  if (!c) return;
  for (let i = 1 + int(r, 16); i > 0 && !c.closedByPeer; i--) {
    c.send(randomBytes(r, 1 + int(r, 16384)));
    await Bun.sleep(0);
  }
  await c.answered(1, 50);
  c.close();
};

/** A frame just over 4 MiB sent in full, then a valid request: both must be answered. */
const oversized: Scenario = async (r, address, t) => {
  const c = await Raw.open(address, t);
  if (!c) return;
  const length = (4 << 20) + 1 + int(r, 4 << 20);
  c.send(encodeHeader({ length, streamId: 1, type: FrameType.Request, flags: 0 }));
  const chunk = new Uint8Array(256 * 1024);
  for (let left = length; left > 0 && !c.closedByPeer; left -= chunk.length) {
    c.send(left >= chunk.length ? chunk : chunk.subarray(0, left), 0);
    while (c.d.buffered > 1 << 20 && !c.closedByPeer) await Bun.sleep(1);
  }
  c.send(requestFrame(r, 3));
  await c.answered(2, 5000);
  c.close();
};

/** A header claiming 4 GiB, a megabyte of it, and a hang-up. */
const hugeClaim: Scenario = async (r, address, t) => {
  const c = await Raw.open(address, t);
  if (!c) return;
  c.send(encodeHeader({ length: 0xffffffff - int(r, 1000), streamId: 1, type: FrameType.Request, flags: 0 }));
  c.send(randomBytes(r, 1 << 20), 0);
  await Bun.sleep(int(r, 100));
  c.close();
};

const truncated: Scenario = async (r, address, t) => {
  const c = await Raw.open(address, t);
  if (!c) return;
  const f = requestFrame(r, 1, validRequest(r, "state"));
  c.send(f.subarray(0, int(r, f.length)));
  if (r() < 0.5) await Bun.sleep(int(r, 200));
  c.close();
};

/** Thousands of cheap requests in one write; every one is answered (OK, NotFound or ResourceExhausted). */
const flood: Scenario = async (r, address, t) => {
  const c = await Raw.open(address, t);
  if (!c) return;
  const n = 1000 + int(r, 4000);
  const parts: Uint8Array[] = [];
  for (let i = 0; i < n; i++) parts.push(requestFrame(r, 2 * i + 1, validRequest(r, pick(r, ["state", "connect", "pids"]))));
  c.send(Buffer.concat(parts), n);
  await c.answered(n, 10_000);
  if (c.answers < n && !c.closedByPeer) t.codes["flood-unanswered"] = (t.codes["flood-unanswered"] ?? 0) + (n - c.answers);
  c.close();
};

/** Many connections at once, each stuck in the middle of a frame. */
const manyConnections: Scenario = async (r, address, t) => {
  const opened = await Promise.all(Array.from({ length: 20 + int(r, 80) }, () => Raw.open(address, t)));
  const conns = opened.filter((c): c is Raw => c !== undefined);
  for (const c of conns) {
    const f = requestFrame(r, 1);
    c.send(f.subarray(0, 1 + int(r, f.length - 1)));
  }
  await Bun.sleep(200 + int(r, 600));
  for (const c of conns) c.close();
};

/** Reads nothing while sending megabytes of requests whose answers echo their ids; hangs up later. */
export const slowReader: Scenario = async (r, address, t) => {
  const c = await Raw.open(address, t);
  if (!c) return;
  c.d.pause();
  const target = (2 + int(r, 7)) << 20;
  let sent = 0;
  for (let id = 1; sent < target && !c.closedByPeer; id += 2) {
    const f = requestFrame(r, id, validRequest(r, pick(r, ["state", "connect", "kill", "wait"])));
    c.send(f);
    sent += f.length;
    if (c.d.buffered > 4 << 20) break; // the target stopped reading us: pushback works, stop piling up
  }
  await Bun.sleep(1000 + int(r, 3000));
  c.close();
};

export const SCENARIOS: readonly (readonly [string, Scenario, number])[] = [
  ["mutated", mutated, 8],
  ["random", random, 3],
  ["oversized", oversized, 1],
  ["huge-claim", hugeClaim, 1],
  ["truncated", truncated, 2],
  ["flood", flood, 1],
  ["many-connections", manyConnections, 1],
];

export function pickScenario(r: Rng): readonly [string, Scenario, number] {
  const total = SCENARIOS.reduce((n, s) => n + s[2], 0);
  let x = r() * total;
  for (const s of SCENARIOS) {
    x -= s[2];
    if (x < 0) return s;
  }
  return SCENARIOS[0]!;
}
