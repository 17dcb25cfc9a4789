// Waiting for many fds to become readable at the cost of one. A pending Bun stream read costs
// 20-34 KiB per fd (measured: 200 idle pipe readers, +4-7 MiB RSS), and a grouped shim keeps two
// per container for its whole life. Here the fds sit in one epoll set, armed one event at a time
// (EPOLLONESHOT); the native poller thread writes each ready fd's token to a pipe, and this
// process reads that pipe as its only stream. The callback then reads the fd itself until EAGAIN
// and arms it again (or forgets it at EOF).
import { EPOLL } from "./constants.ts";
import type { Syscalls } from "./types.ts";

export interface Watch {
  /** Wait for the next readiness (after a read ran into EAGAIN). */
  rearm(): void;
  /** Stop watching (before the fd is closed); a token already on its way is ignored. */
  remove(): void;
}

const TOKEN_BYTES = 8;

export class Readiness {
  private readonly callbacks = new Map<bigint, () => void>();
  private readonly epfd: number;
  private next = 1n;
  private pending = new Uint8Array(0);

  constructor(private readonly sys: Syscalls) {
    this.epfd = sys.epollCreate();
    const [readEnd, writeEnd] = sys.pipe();
    sys.setNonblock(readEnd, true);
    sys.startPoller(this.epfd, writeEnd);
    // never expected to end: if it does, every copy stalls, so at least say so (the shim's stderr is its log)
    void this.listen(readEnd).catch((err: unknown) => console.error(`bunker: the stdio readiness stream failed: ${String(err)}`));
  }

  /** Calls `onReady` once when `fd` is readable (or at EOF/error); `rearm` to hear of it again. */
  watch(fd: number, onReady: () => void): Watch {
    const token = this.next++;
    this.callbacks.set(token, onReady);
    const events = EPOLL.IN | EPOLL.ONESHOT;
    this.sys.epollCtl(this.epfd, EPOLL.CTL_ADD, fd, events, token);
    let removed = false;
    return {
      rearm: () => {
        if (!removed) this.sys.epollCtl(this.epfd, EPOLL.CTL_MOD, fd, events, token);
      },
      remove: () => {
        if (removed) return;
        removed = true;
        this.callbacks.delete(token);
        try {
          this.sys.epollCtl(this.epfd, EPOLL.CTL_DEL, fd, 0, token);
        } catch {
          // the fd is already closed (and so out of the set)
        }
      },
    };
  }

  get watching(): number {
    return this.callbacks.size;
  }

  private async listen(fd: number): Promise<void> {
    for await (const chunk of Bun.file(fd).stream()) this.dispatch(chunk);
  }

  /** Tokens are 8 bytes, but a pipe read may split one: keep the tail for the next chunk. */
  private dispatch(chunk: Uint8Array): void {
    let buf = chunk;
    if (this.pending.length > 0) {
      buf = new Uint8Array(this.pending.length + chunk.length);
      buf.set(this.pending);
      buf.set(chunk, this.pending.length);
    }
    const whole = buf.length - (buf.length % TOKEN_BYTES);
    const view = new DataView(buf.buffer, buf.byteOffset, whole);
    for (let off = 0; off < whole; off += TOKEN_BYTES) {
      const cb = this.callbacks.get(view.getBigUint64(off, true));
      if (cb) cb();
    }
    this.pending = buf.slice(whole);
  }
}

const perSys = new WeakMap<Syscalls, Readiness>();

/** The process's Readiness for these syscalls (made on first use: it starts a thread). */
export function readinessOf(sys: Syscalls): Readiness {
  let r = perSys.get(sys);
  if (!r) {
    r = new Readiness(sys);
    perSys.set(sys, r);
  }
  return r;
}
