// Unix-socket transport for ttrpc on Bun.listen/Bun.connect. The only file of src/ttrpc that
// knows about sockets. Writes the kernel does not take at once are queued and sent on drain.
import { chmodSync, lstatSync, unlinkSync } from "node:fs";
import type { Socket, SocketHandler } from "bun";
import {
  AlreadyExistsError,
  DeadlineExceededError,
  InvalidArgumentError,
  UnavailableError,
  errorMessage,
} from "../errdefs.ts";
import type { Duplex } from "./channel.ts";
import { Client, type ClientOptions } from "./client.ts";
import type { Server } from "./server.ts";

/** sun_path holds 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH = 107;

/** Accepts `unix:///path`, `unix:/path` and a bare path. */
export function socketPath(address: string): string {
  let path = address;
  if (path.startsWith("unix://")) path = path.slice("unix://".length);
  else if (path.startsWith("unix:")) path = path.slice("unix:".length);
  if (path === "") throw new InvalidArgumentError(`ttrpc: empty socket address ${JSON.stringify(address)}`);
  if (path.includes("\0")) throw new InvalidArgumentError(`ttrpc: socket address contains NUL: ${JSON.stringify(address)}`);
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    throw new InvalidArgumentError(`ttrpc: socket path longer than ${MAX_SOCKET_PATH} bytes: ${path}`);
  }
  return path;
}

type Sock = Socket<SocketDuplex | undefined>;

/** A Duplex over one Bun socket. */
export class SocketDuplex implements Duplex {
  private queue: Uint8Array[] = [];
  private queuedBytes = 0;
  private dataCb: ((b: Uint8Array) => void) | undefined;
  private closeCb: ((err?: Error) => void) | undefined;
  private drainCb: (() => void) | undefined;
  private early: Uint8Array[] = [];
  private closing = false;
  private ended = false;
  private endError: Error | undefined;

  constructor(private readonly sock: Sock) {}

  /** The socket's file descriptor (for SO_PEERCRED checks through src/sys). */
  get fd(): number {
    return (this.sock as unknown as { fd: number }).fd;
  }

  /** Bytes written here that the kernel has not taken yet. */
  get buffered(): number {
    return this.queuedBytes;
  }

  write(bytes: Uint8Array): void {
    if (this.ended || this.closing) return;
    if (this.queue.length > 0) {
      this.queue.push(bytes);
      this.queuedBytes += bytes.length;
      return;
    }
    const n = this.sock.write(bytes);
    if (n < bytes.length) {
      const rest = n > 0 ? bytes.subarray(n) : bytes;
      this.queue.push(rest);
      this.queuedBytes += rest.length;
    }
  }

  onDrain(cb: () => void): void {
    this.drainCb = cb;
  }

  pause(): void {
    if (!this.ended) this.sock.pause();
  }

  resume(): void {
    if (!this.ended) this.sock.resume();
  }

  onData(cb: (bytes: Uint8Array) => void): void {
    this.dataCb = cb;
    const early = this.early;
    this.early = [];
    for (const b of early) cb(b);
  }

  onClose(cb: (err?: Error) => void): void {
    this.closeCb = cb;
    if (this.ended) cb(this.endError);
  }

  close(): void {
    if (this.ended || this.closing) return;
    this.closing = true;
    if (this.queue.length === 0) this.sock.end();
  }

  /** Closes without sending what is queued. */
  destroy(): void {
    this.queue = [];
    this.queuedBytes = 0;
    if (this.ended) return;
    this.sock.terminate();
    this.handleClose();
  }

  /** @internal socket handler plumbing */
  handleData(bytes: Uint8Array): void {
    if (this.ended) return;
    if (this.dataCb) this.dataCb(bytes);
    else this.early.push(bytes);
  }

  /** @internal */
  handleDrain(): void {
    const before = this.queuedBytes;
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      const n = this.sock.write(head);
      if (n < head.length) {
        if (n > 0) {
          this.queue[0] = head.subarray(n);
          this.queuedBytes -= n;
        }
        break;
      }
      this.queue.shift();
      this.queuedBytes -= head.length;
    }
    if (this.queue.length === 0 && this.closing) this.sock.end();
    if (this.queuedBytes < before) this.drainCb?.();
  }

  /** @internal */
  handleClose(err?: Error): void {
    if (this.ended) return;
    this.ended = true;
    this.endError = err;
    this.queue = [];
    this.queuedBytes = 0;
    this.closeCb?.(err);
  }
}

function handlers(onOpen: (d: SocketDuplex, s: Sock) => void): SocketHandler<SocketDuplex | undefined> {
  return {
    // Plain Uint8Arrays are cheaper than Buffers; bun-types only declares "buffer", hence the cast.
    binaryType: "uint8array" as "buffer",
    open(s) {
      const d = new SocketDuplex(s);
      s.data = d;
      onOpen(d, s);
    },
    data(s, bytes) {
      s.data?.handleData(bytes);
    },
    drain(s) {
      s.data?.handleDrain();
    },
    end(s) {
      // The peer will send nothing more; ttrpc has no half-close, so the connection is over.
      s.end();
      s.data?.handleClose();
    },
    close(s, err) {
      s.data?.handleClose(err);
    },
    error(s, err) {
      s.data?.handleClose(err);
    },
  };
}

export interface ListenOptions {
  /** Socket file mode, applied before the first connection can arrive. Default 0o600. */
  mode?: number;
  /** Decides per connection, from the accepted socket's fd (e.g. SO_PEERCRED uid via src/sys); false closes it. */
  authorize?: (peer: { fd: number }) => boolean;
}

export interface UnixListener {
  readonly path: string;
  /** Stops accepting and removes the socket file; open connections stay until the server closes them. */
  close(): void;
}

/** Serves `server` on a new unix socket at `address`. A stale socket file (no listener) is replaced. */
export async function listenUnix(server: Server, address: string, opts: ListenOptions = {}): Promise<UnixListener> {
  const path = socketPath(address);
  const mode = opts.mode ?? 0o600;
  await removeStale(path);
  const h = serverHandlers(server, opts.authorize);
  // The umask makes the socket born with `mode` (no window where others could connect).
  const oldMask = process.umask(~mode & 0o777);
  let listener;
  try {
    listener = Bun.listen<SocketDuplex | undefined>({ unix: path, socket: h, data: undefined });
  } catch (err) {
    throw new UnavailableError(`ttrpc: listen on ${path}: ${errorMessage(err)}`, { cause: err });
  } finally {
    process.umask(oldMask);
  }
  chmodSync(path, mode);
  return closingListener(listener, path);
}

/** Socket handlers that give each accepted connection the authorize check, then to the server. */
function serverHandlers(server: Server, authorize: ListenOptions["authorize"]): ReturnType<typeof handlers> {
  return handlers((d, s) => {
    if (authorize && !authorize({ fd: d.fd })) {
      s.terminate();
      return;
    }
    server.serve(d);
  });
}

/** A listener that stops accepting and removes its socket file once, however often it is closed. */
function closingListener(listener: { stop(closeActive?: boolean): void }, path: string): UnixListener {
  let closed = false;
  return {
    path,
    close() {
      if (closed) return;
      closed = true;
      listener.stop(false);
      try {
        unlinkSync(path);
      } catch {
        // already gone: nothing to clean up
      }
    },
  };
}

/**
 * Serves `server` on a listening socket this process inherited as `fd`, bound at `path` by the
 * process that passed it (the shim's `start` action, as Go's shim passes its serve process fd 3):
 * connections made before we got here wait in the socket's backlog instead of failing.
 */
export function listenFd(server: Server, fd: number, path: string, opts: Pick<ListenOptions, "authorize"> = {}): UnixListener {
  const h = serverHandlers(server, opts.authorize);
  let listener;
  try {
    // Bun.listen takes an inherited fd (bun-types declares only hostname/port and unix)
    listener = Bun.listen<SocketDuplex | undefined>({ fd, socket: h, data: undefined } as unknown as Parameters<typeof Bun.listen<SocketDuplex | undefined>>[0]);
  } catch (err) {
    throw new UnavailableError(`ttrpc: listen on inherited fd ${fd} (${path}): ${errorMessage(err)}`, { cause: err });
  }
  return closingListener(listener, path);
}

async function removeStale(path: string): Promise<void> {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new AlreadyExistsError(`ttrpc: ${path} exists and is not a socket`);
  try {
    const d = await connectUnix(path, { timeoutMs: 1000 });
    d.destroy();
  } catch {
    unlinkSync(path);
    return;
  }
  throw new AlreadyExistsError(`ttrpc: ${path} is in use by a live listener`);
}

export interface ConnectOptions {
  /** Give up after this long (DeadlineExceededError). Default 10 s. */
  timeoutMs?: number;
}

/** Connects to a unix socket; failures are UnavailableError (or DeadlineExceededError on timeout). */
export async function connectUnix(address: string, opts: ConnectOptions = {}): Promise<SocketDuplex> {
  const path = socketPath(address);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  let duplex: SocketDuplex | undefined;
  const h = handlers((d) => {
    duplex = d;
  });
  h.connectError = () => {}; // the rejected promise below reports it
  const connecting = Bun.connect<SocketDuplex | undefined>({ unix: path, socket: h, data: undefined });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new DeadlineExceededError(`ttrpc: connect ${path}: timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    const sock = await Promise.race([connecting, timeout]);
    return duplex ?? (sock.data as SocketDuplex);
  } catch (err) {
    // A connection that completes after the timeout must not leak.
    connecting.then((s) => s.terminate(), () => {});
    if (err instanceof DeadlineExceededError) throw err;
    // Bun's message is only "Failed to connect"; the errno name (ENOENT, EACCES, ECONNREFUSED) says why.
    const code = (err as { code?: unknown } | undefined)?.code;
    const why = typeof code === "string" ? `${code}: ${errorMessage(err)}` : errorMessage(err);
    throw new UnavailableError(`ttrpc: connect ${path}: ${why}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

/** Connects and wraps the connection in a Client (`timeoutMs` here is the calls' default deadline). */
export async function dial(address: string, opts: ClientOptions & { connectTimeoutMs?: number } = {}): Promise<Client> {
  const { connectTimeoutMs, ...clientOpts } = opts;
  return new Client(await connectUnix(address, { timeoutMs: connectTimeoutMs }), clientOpts);
}
