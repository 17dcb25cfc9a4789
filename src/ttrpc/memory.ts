// An in-memory Duplex pair: the transport for unit tests and for running a service in-process.
// Delivery is asynchronous (a microtask), like a socket, so nothing re-enters its caller.
import type { Duplex } from "./channel.ts";

class MemoryEnd implements Duplex {
  peer!: MemoryEnd;
  private dataCb: ((b: Uint8Array) => void) | undefined;
  private closeCb: ((err?: Error) => void) | undefined;
  private early: Uint8Array[] = [];
  private ended = false;
  private closing = false;
  private closeFired = false;

  write(bytes: Uint8Array): void {
    if (this.ended || this.closing || bytes.length === 0) return;
    const peer = this.peer;
    queueMicrotask(() => peer.receive(bytes));
  }

  private receive(bytes: Uint8Array): void {
    if (this.ended) return;
    if (this.dataCb) this.dataCb(bytes);
    else this.early.push(bytes);
  }

  onData(cb: (bytes: Uint8Array) => void): void {
    this.dataCb = cb;
    const early = this.early;
    this.early = [];
    for (const b of early) cb(b);
  }

  onClose(cb: (err?: Error) => void): void {
    this.closeCb = cb;
    if (this.closeFired) cb();
  }

  close(): void {
    if (this.ended || this.closing) return;
    this.closing = true;
    // Bytes already written are still delivered: they were queued before this close.
    queueMicrotask(() => {
      this.end();
      this.peer.end();
    });
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.closeFired = true;
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
