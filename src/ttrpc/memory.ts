// An in-memory Duplex pair: the transport for unit tests and for running a service in-process.
// Delivery is asynchronous (a microtask), like a socket, so nothing re-enters its caller. It has
// flow control like a socket with no kernel buffer: bytes wait in the reader's inbox while the
// reader is paused (or has no receiver yet), the writer's `buffered` counts them, and the writer's
// drain callback runs once they are delivered. A test can so play a peer that never reads.
import type { Duplex } from "./channel.ts";

class MemoryEnd implements Duplex {
  peer!: MemoryEnd;
  private dataCb: ((b: Uint8Array) => void) | undefined;
  private closeCb: ((err?: Error) => void) | undefined;
  private drainCb: (() => void) | undefined;
  private inbox: Uint8Array[] = [];
  private inboxBytes = 0;
  private paused = false;
  private scheduled = false;
  /** The writer closed: end once the inbox is delivered. */
  private eofPending = false;
  private ended = false;
  private closing = false;
  private readonly deliverTask = (): void => this.deliver();

  get buffered(): number {
    return this.peer.inboxBytes;
  }

  write(bytes: Uint8Array): void {
    if (this.ended || this.closing || bytes.length === 0) return;
    this.peer.enqueue(bytes);
  }

  private enqueue(bytes: Uint8Array): void {
    if (this.ended) return;
    this.inbox.push(bytes);
    this.inboxBytes += bytes.length;
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.paused || this.dataCb === undefined) return;
    this.scheduled = true;
    queueMicrotask(this.deliverTask);
  }

  // One chunk per turn, as a socket delivers one read per event-loop turn: work a chunk started
  // (a handler's answer, a pause) gets to run before the next chunk arrives.
  private deliver(): void {
    this.scheduled = false;
    if (this.ended || this.paused || !this.dataCb) return;
    const b = this.inbox.shift();
    if (b !== undefined) {
      this.inboxBytes -= b.length;
      this.dataCb(b);
      this.peer.drainCb?.();
    }
    if (this.inbox.length > 0) this.schedule();
    else if (this.eofPending) this.end();
  }

  onData(cb: (bytes: Uint8Array) => void): void {
    this.dataCb = cb;
    this.schedule();
  }

  onClose(cb: (err?: Error) => void): void {
    this.closeCb = cb;
    if (this.ended) cb();
  }

  onDrain(cb: () => void): void {
    this.drainCb = cb;
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.schedule();
    if (this.eofPending && this.inbox.length === 0) queueMicrotask(() => this.end());
  }

  close(): void {
    if (this.ended || this.closing) return;
    this.closing = true;
    // Bytes already written are still delivered: the peer ends after reading them, like a socket's EOF.
    queueMicrotask(() => {
      this.end();
      this.peer.eofPending = true;
      if (this.peer.inbox.length === 0) this.peer.end();
      else this.peer.schedule();
    });
  }

  destroy(): void {
    if (this.ended) return;
    this.closing = true;
    this.inbox = [];
    this.inboxBytes = 0;
    this.peer.inbox = [];
    this.peer.inboxBytes = 0;
    this.end();
    queueMicrotask(() => this.peer.end());
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.inbox = [];
    this.inboxBytes = 0;
    this.closeCb?.();
  }
}

/** Two connected ends: bytes written to one arrive at the other. */
export function memoryPair(): [Duplex, Duplex] {
  const a = new MemoryEnd();
  const b = new MemoryEnd();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
