// A ttrpc channel: frames over any duplex byte stream. It parses incoming bytes into frames and
// batches outgoing frames written in the same tick into one write (one syscall for many calls).
// It also carries the flow control the server's limits need: how many bytes wait for the peer,
// pausing and resuming reads, and dropping a stream at once.
import { InvalidArgumentError } from "../errdefs.ts";
import { FrameParser, type Frame, type FrameHeader, type OversizedFrame } from "./codec.ts";

/**
 * The byte stream a channel runs over: a unix socket (unix.ts), or an in-memory pair (memory.ts).
 * Ownership of every chunk passes with it: a writer never touches a chunk after write(), and a
 * transport never reuses a chunk it delivered through onData.
 */
export interface Duplex {
  /** Sends bytes; never throws. The transport queues what the kernel does not take yet. */
  write(bytes: Uint8Array): void;
  /** Sets the one receiver of incoming bytes; bytes received earlier are delivered to it first. */
  onData(cb: (bytes: Uint8Array) => void): void;
  /** Sets the one callback for the end of the stream (peer closed, error, or close()); fires once. */
  onClose(cb: (err?: Error) => void): void;
  /** Ends the stream after queued bytes are sent. */
  close(): void;
  /** Bytes accepted by write() that the peer (or the kernel) has not taken yet; absent means none are ever held. */
  readonly buffered?: number;
  /** Sets the one callback run after queued bytes were handed on (so `buffered` dropped). */
  onDrain?(cb: () => void): void;
  /** Stops delivering incoming bytes; a socket stops reading, so the kernel pushes back on the peer. */
  pause?(): void;
  /** Delivers incoming bytes again after pause(). */
  resume?(): void;
  /** Ends the stream at once, dropping queued bytes; onClose fires. */
  destroy?(): void;
}

export interface ChannelHandlers {
  frame(frame: Frame): void;
  oversized(frame: OversizedFrame): void;
  close(err?: Error): void;
  /** Queued bytes moved on toward the peer (see Channel.outstanding). */
  drain?(): void;
}

/** Frames at least this large go out on their own instead of being copied into a batch. */
const SOLO_FRAME_BYTES = 64 * 1024;
/** Flush at once when this much is queued, so large batches do not wait for the microtask. */
const FLUSH_BYTES = 256 * 1024;
/**
 * Input a paused channel holds when its stream cannot pause (a Duplex without pause()): one
 * largest frame and a header; past that the peer is ignoring the pushback and the stream ends.
 */
const MAX_HELD_BYTES = (4 << 20) + 64 * 1024;

export class Channel {
  private readonly parser: FrameParser;
  private queue: Uint8Array[] = [];
  private queuedBytes = 0;
  private scheduled = false;
  private isClosed = false;
  private paused = false;
  private held: Uint8Array[] = [];
  private heldBytes = 0;
  private readonly flushTask = (): void => this.flush();

  constructor(
    private readonly stream: Duplex,
    private readonly handlers: ChannelHandlers,
    maxDataLength?: number,
  ) {
    this.parser = new FrameParser(
      {
        frame: (f) => handlers.frame(f),
        oversized: (f) => handlers.oversized(f),
        invalid: (h) => this.onInvalid(h),
      },
      maxDataLength,
    );
    stream.onData((bytes) => this.receive(bytes));
    stream.onClose((err) => this.shutdown(err));
    stream.onDrain?.(() => {
      if (!this.isClosed) handlers.drain?.();
    });
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Bytes sent on this channel that the peer has not taken yet (queued here or in the transport). */
  get outstanding(): number {
    return this.queuedBytes + (this.stream.buffered ?? 0);
  }

  /** True between pause() and resume(). */
  get readPaused(): boolean {
    return this.paused;
  }

  /** Stops handling incoming frames until resume(); the transport stops reading if it can. */
  pause(): void {
    if (this.paused || this.isClosed) return;
    this.paused = true;
    this.stream.pause?.();
  }

  resume(): void {
    if (!this.paused || this.isClosed) return;
    this.paused = false;
    this.stream.resume?.();
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    // If a frame handler pauses again, receive() holds the rest, in order.
    for (const b of held) this.receive(b);
  }

  private receive(bytes: Uint8Array): void {
    if (this.isClosed) return;
    if (this.paused) {
      this.hold(bytes);
      return;
    }
    try {
      this.parser.push(bytes);
    } catch (err) {
      // Only a bug in a handler lands here; the stream's state is unknown, so end it.
      this.destroy(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private hold(bytes: Uint8Array): void {
    this.held.push(bytes);
    this.heldBytes += bytes.length;
    if (this.heldBytes > MAX_HELD_BYTES) {
      this.destroy(new InvalidArgumentError(`ttrpc: peer sent ${this.heldBytes} bytes while reads were paused`));
    }
  }

  private onInvalid(h: FrameHeader): void {
    this.destroy(
      new InvalidArgumentError(`ttrpc: frame of unknown type ${h.type} on stream ${h.streamId}: not ttrpc, or out of sync`),
    );
  }

  /** Queues a complete frame (header included); returns false once the channel is closed. */
  send(frame: Uint8Array): boolean {
    if (this.isClosed) return false;
    this.queue.push(frame);
    this.queuedBytes += frame.length;
    if (this.queuedBytes >= FLUSH_BYTES) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.flushTask);
    }
    return true;
  }

  /** Writes everything queued, coalescing runs of small frames into one buffer. */
  flush(): void {
    this.scheduled = false;
    const q = this.queue;
    if (q.length === 0) return;
    this.queue = [];
    this.queuedBytes = 0;
    if (q.length === 1) {
      this.stream.write(q[0]!);
      return;
    }
    let start = 0;
    for (let i = 0; i <= q.length; i++) {
      const f = q[i];
      if (f !== undefined && f.length < SOLO_FRAME_BYTES) continue;
      this.writeRun(q, start, i);
      if (f !== undefined) this.stream.write(f);
      start = i + 1;
    }
  }

  private writeRun(q: Uint8Array[], from: number, to: number): void {
    if (to - from === 0) return;
    if (to - from === 1) {
      this.stream.write(q[from]!);
      return;
    }
    let total = 0;
    for (let i = from; i < to; i++) total += q[i]!.length;
    const out = new Uint8Array(total);
    let pos = 0;
    for (let i = from; i < to; i++) {
      out.set(q[i]!, pos);
      pos += q[i]!.length;
    }
    this.stream.write(out);
  }

  /** Sends what is queued, then ends the stream. */
  close(): void {
    if (this.isClosed) return;
    this.flush();
    this.shutdown();
  }

  /** Ends the stream now without sending what is queued; `err` goes to the close handler. */
  destroy(err?: Error): void {
    if (this.isClosed) return;
    this.queue = [];
    this.queuedBytes = 0;
    this.shutdown(err, true);
  }

  private shutdown(err?: Error, drop = false): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.queue = [];
    this.queuedBytes = 0;
    this.held = [];
    this.heldBytes = 0;
    if (drop && this.stream.destroy) this.stream.destroy();
    else this.stream.close();
    this.handlers.close(err);
  }
}
