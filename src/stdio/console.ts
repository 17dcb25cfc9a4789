// Terminals for the runc shim: runc's --console-socket hands us the pty master over SCM_RIGHTS
// (runc init sends it before `runc create`/`exec --detach` returns), then we copy between the pty
// and containerd's FIFOs and resize it on ResizePty.
//
//   const sock = ConsoleSocket.create();             // /tmp/ptyXXXXXX/pty.sock, listening
//   runc create --console-socket sock.path ...       // Runc CreateOptions/ExecOptions.consoleSocket
//   const { fd } = await sock.receiveMaster({ signal });   // then sock.close() (always, also on failure)
//   const con = new ConsoleCopy(fd, { stdin: stdinFifo, stdout: stdoutFifoOrFd });
//   con.resize(width, height)       ResizePty (containerd's width = columns, height = rows)
//   con.closeStdin()                CloseIO{stdin}: drop our hold on the stdin FIFO
//   await con.drain()               after the process exited: until the pty reports EIO (slave gone)
//                                   and the output is written, or nothing came for idleDrainMs
//   con.close()                     closes the master and our fds (idempotent)
//
// stdin EOF (the client closed the FIFO after CloseIO) is delivered as the terminal's EOF character
// (^D, twice when a line is pending), so `echo data | ctr task exec -t ... cat` ends with cat's
// own exit and its output. containerd's Go shim closes the console instead, which hangs up the
// terminal (SIGHUP) and drops what the process writes afterwards.
//
// Nothing here blocks Bun's event loop: the listener is polled (only while runc runs), the master is
// made non-blocking so Bun polls it with epoll, and writes wait out EAGAIN with a short backoff.
import { StdioCopy } from "./stdio-copy.ts";
import { closeSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CanceledError, DeadlineExceededError, FailedPreconditionError, UnavailableError } from "../errdefs.ts";
import { isErrno, sys, type Syscalls } from "../sys/index.ts";
import { openOutputFd, openStdinFifo } from "./stdio-uri.ts";
import type { OutputSink } from "./json-log.ts";

export interface ReceivedConsole {
  /** The pty master, close-on-exec and non-blocking. The caller owns it (ConsoleCopy closes it). */
  fd: number;
  /** The name runc sent with it (runc 1.1: the master's, "/dev/ptmx"). */
  name: string;
}

const POLL_MIN_MS = 1;
const POLL_MAX_MS = 20;

export class ConsoleSocket {
  private listener: number | undefined;
  private conn: number | undefined;

  private constructor(
    readonly path: string,
    private readonly dir: string | undefined,
    listener: number,
    private readonly s: Syscalls,
  ) {
    this.listener = listener;
  }

  /** A socket in a new private directory (like containerd's NewTempConsoleSocket), or at `path`. */
  static create(opts: { path?: string; sys?: Syscalls } = {}): ConsoleSocket {
    const s = opts.sys ?? sys();
    const dir = opts.path ? undefined : mkdtempSync(join(tmpdir(), "pty"));
    const path = opts.path ?? join(dir!, "pty.sock");
    try {
      return new ConsoleSocket(path, dir, s.listenUnix(path, 1), s);
    } catch (err) {
      if (dir) rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** One poll step: the master if runc has sent it, null if not yet. Throws when runc hung up without it. */
  tryReceive(): ReceivedConsole | null {
    if (this.listener === undefined) throw new FailedPreconditionError("console socket is closed");
    if (this.conn === undefined) {
      const conn = this.s.accept(this.listener, { nonblock: true });
      if (conn === null) return null;
      this.conn = conn;
    }
    let got: { fd: number; msg: Uint8Array };
    try {
      got = this.s.recvFd(this.conn, { dontWait: true });
    } catch (err) {
      if (isErrno(err, "EAGAIN")) return null;
      const conn = this.conn;
      this.conn = undefined;
      this.s.close(conn);
      if (isErrno(err, "EBADMSG")) throw new UnavailableError("runc closed the console socket without sending a terminal", { cause: err });
      throw err;
    }
    this.s.close(this.conn);
    this.conn = undefined;
    try {
      this.s.setNonblock(got.fd, true);
    } catch (err) {
      this.s.close(got.fd);
      throw err;
    }
    return { fd: got.fd, name: new TextDecoder().decode(got.msg).replace(/\0+$/, "") };
  }

  /**
   * Waits for runc to send the pty master. Abort `signal` when runc failed (or close() the
   * socket); `timeoutMs` bounds the wait (containerd has none).
   */
  async receiveMaster(opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<ReceivedConsole> {
    const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
    let delay = POLL_MIN_MS;
    for (;;) {
      if (opts.signal?.aborted) throw new CanceledError("waiting for the console was canceled", { cause: opts.signal.reason });
      if (this.listener === undefined) throw new CanceledError("console socket closed while waiting for the console");
      const got = this.tryReceive();
      if (got) return got;
      if (Date.now() >= deadline) throw new DeadlineExceededError(`runc sent no console within ${opts.timeoutMs} ms`);
      await Bun.sleep(delay);
      delay = Math.min(delay * 2, POLL_MAX_MS);
    }
  }

  /** Closes the listener and any half-received connection, and removes the socket (idempotent). */
  close(): void {
    for (const fd of [this.conn, this.listener]) if (fd !== undefined) this.s.close(fd);
    this.conn = this.listener = undefined;
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    else rmSync(this.path, { force: true });
  }
}

export interface ConsoleStdio {
  /** The stdin FIFO path ("" or undefined: none). */
  stdin?: string;
  /** Where the terminal's output goes: a FIFO or file path, an fd the caller owns (made non-blocking), or a log sink (all of it is "stdout", as docker logs a tty). */
  stdout?: string | number | OutputSink;
}

const IDLE_DRAIN_MS = 2000;
const VEOF = 0x04;

export class ConsoleCopy extends StdioCopy {
  private master: number | undefined;
  private outFd: number | undefined;
  private sink: OutputSink | undefined;
  private ownOut = false;
  private stdinFd: number | undefined;
  private readonly readers: { cancel(): Promise<void> }[] = [];
  private readonly output: Promise<void>;
  private lastInput = 0x0a;

  /** Starts copying right away. Takes ownership of `master`; opens the FIFOs now so bad paths fail early. */
  constructor(
    master: number,
    stdio: ConsoleStdio,
    private readonly opts: { sys?: Syscalls; idleDrainMs?: number } = {},
  ) {
    super();
    this.master = master;
    const s = this.s;
    try {
      s.setNonblock(master, true);
      if (typeof stdio.stdout === "object") {
        this.sink = stdio.stdout;
      } else if (typeof stdio.stdout === "number") {
        this.outFd = stdio.stdout;
        s.setNonblock(this.outFd, true);
      } else if (stdio.stdout) {
        this.outFd = openOutputFd(stdio.stdout);
        this.ownOut = true;
        s.setNonblock(this.outFd, true);
      }
      if (stdio.stdin) ({ fd: this.stdinFd, hold: this.stdinHold } = openStdinFifo(stdio.stdin));
    } catch (err) {
      this.close();
      throw err;
    }
    this.output = this.pumpOut(master);
    if (this.stdinFd !== undefined) void this.pumpIn(this.stdinFd, master);
  }

  private get s(): Syscalls {
    return this.opts.sys ?? sys();
  }

  /** TIOCSWINSZ: containerd's ResizePty width is the column count, height the row count. */
  resize(width: number, height: number): void {
    if (this.master === undefined) throw new FailedPreconditionError("console is closed");
    this.s.setWinsize(this.master, height, width);
  }

  private async pumpOut(master: number): Promise<void> {
    const reader = Bun.file(master).stream().getReader();
    this.readers.push(reader);
    let sinkOk = this.outFd !== undefined;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        this.lastActivity = Date.now();
        // without a reader for the output, keep reading anyway so the process never blocks on the pty
        if (this.sink) this.sink.write("stdout", value);
        else if (sinkOk) sinkOk = await this.writeAll(this.outFd!, value);
      }
    } catch {
      // EIO: every holder of the slave side is gone; what they wrote was read before this
    }
    this.sink?.end("stdout");
  }

  private async pumpIn(fd: number, master: number): Promise<void> {
    const reader = Bun.file(fd).stream().getReader();
    this.readers.push(reader);
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (value.length === 0) continue;
        this.lastInput = value[value.length - 1]!;
        if (!(await this.writeAll(master, value))) return;
      }
    } catch {
      return; // close() cancelled the copy
    }
    // canonical mode ends a pending line on the first ^D and reports EOF on a ^D at a line start
    const pending = this.lastInput !== 0x0a && this.lastInput !== VEOF;
    await this.writeAll(master, new Uint8Array(pending ? [VEOF, VEOF] : [VEOF]));
  }



  /**
   * After the process exited: waits until the pty reported EIO (the slave side is closed
   * everywhere) and its output was written, or until nothing arrived for idleDrainMs (a daemon
   * left holding the terminal, or nobody reading the output FIFO).
   */
  async drain(): Promise<void> {
    await this.drainUntilIdle(this.output, this.opts.idleDrainMs ?? IDLE_DRAIN_MS);
  }

  /** Stops both copies and closes the master, the FIFOs we opened and our stdin hold (idempotent). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const r of this.readers) void r.cancel().catch(() => undefined);
    this.closeStdin();
    const fds = [this.master, this.stdinFd, this.ownOut ? this.outFd : undefined];
    this.master = this.stdinFd = this.outFd = undefined;
    for (const fd of fds) {
      if (fd === undefined) continue;
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
    }
  }
}
