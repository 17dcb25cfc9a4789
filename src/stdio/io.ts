// stdio between a container process and the FIFOs containerd created. Like the Go shim (and unlike
// the Rust one, rust-extensions#276), runc gets pipes and the shim copies between them and the
// FIFOs, so a restarted containerd can reopen the FIFOs while the process keeps its pipes.
//
// The pipes are real pipes, not the socketpairs Bun.spawn makes: a process that reopens
// /dev/stdout (nginx's access.log symlink, `echo > /dev/stdout`) gets ENXIO on a socket. Bun has no
// pipe(2), so each pipe is an unnamed-after-use FIFO in the bundle: both ends opened, path removed.
//
// Nothing here blocks Bun's event loop on a FIFO: containerd's output FIFOs are opened
// O_RDWR|O_NONBLOCK, which never waits for a reader and, holding a read end, never fails with
// EPIPE while containerd restarts (the Go shim opens a reader for the same reason); the stdin FIFO
// is opened O_RDONLY|O_NONBLOCK plus a write end of our own, so it reports EOF only after CloseIO.
import { StdioCopy } from "./stdio-copy.ts";
import { closeSync, constants, fstatSync, openSync, readSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { InvalidArgumentError, NotImplementedError } from "../errdefs.ts";
import type { Syscalls } from "../sys/types.ts";
import type { ProcessIO } from "../oci/runtime.ts";
import { type Readiness, readinessOf } from "../sys/readiness.ts";
import type { LogStream, OutputSink } from "./json-log.ts";

export interface StdioPaths {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

/** The filesystem path of a stdio URI: a bare path or fifo:// (containerd's default scheme). */
export function stdioPath(uri: string): string {
  if (uri === "") return "";
  const m = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/.exec(uri);
  if (!m) return uri;
  const [, scheme, rest] = m;
  if (scheme === "fifo") return rest!;
  if (scheme === "file" || scheme === "binary") throw new NotImplementedError(`stdio scheme ${scheme}:// is not supported yet`);
  throw new InvalidArgumentError(`unknown stdio scheme ${scheme}`);
}

const { O_RDONLY, O_WRONLY, O_RDWR, O_NONBLOCK, O_APPEND } = constants;

function openOutput(path: string): number {
  const fd = openSync(path, O_RDWR | O_NONBLOCK);
  if (!fstatSync(fd).isFIFO()) {
    // a plain file (Go: O_WRONLY|O_APPEND); reopened so writes append
    closeSync(fd);
    return openSync(path, O_WRONLY | O_APPEND);
  }
  return fd;
}

let pipeSeq = 0;

/**
 * A pipe: [ours, theirs]. `ours` is non-blocking (the event loop reads or writes it), `theirs` is
 * blocking (the container's stdio). Each end is its own open file description, so the flags differ.
 */
function makePipe(sys: Syscalls, dir: string, direction: "in" | "out"): [number, number] {
  const path = join(dir, `.bunker-pipe-${process.pid}-${++pipeSeq}`);
  sys.mkfifo(path, 0o600);
  const opened: number[] = [];
  try {
    if (direction === "out") {
      const ours = openSync(path, O_RDONLY | O_NONBLOCK); // no writer needed to open non-blocking
      opened.push(ours);
      const theirs = openSync(path, O_WRONLY); // a reader exists, so this does not wait
      opened.push(theirs);
      return [ours, theirs];
    }
    const keep = openSync(path, O_RDWR | O_NONBLOCK); // a writer, so the blocking reader opens at once
    opened.push(keep);
    const theirs = openSync(path, O_RDONLY);
    opened.push(theirs);
    const ours = openSync(path, O_WRONLY | O_NONBLOCK);
    opened.push(ours);
    closeSync(keep);
    opened.splice(opened.indexOf(keep), 1);
    return [ours, theirs];
  } catch (err) {
    for (const fd of opened) closeSync(fd);
    throw err;
  } finally {
    unlinkSync(path);
  }
}

const IDLE_DRAIN_MS = 2000;
/**
 * One read buffer for every copy in the process: chunks are copied out before any await. A
 * Uint8Array, not a Buffer: Buffer's slice() is a view, which would hand on bytes a later read overwrites.
 */
const READ_BUFFER = new Uint8Array(64 * 1024);

/** One process's stdio copy. Per-container state is a few fds and up to three epoll registrations. */
export class PipeIO extends StdioCopy {
  private readonly owned = new Set<number>();
  private readonly childEnds: number[] = [];
  private io: ProcessIO = { stdin: "ignore", stdout: "ignore", stderr: "ignore" };
  private copies: Promise<void>[] = [];
  private readonly finishers = new Set<() => void>();
  private readonly ready: Readiness;
  private plan: Array<() => void> = [];

  /** Opens the FIFOs and makes the pipes now, so a bad path fails Create before runc runs. */
  constructor(
    readonly paths: StdioPaths,
    sys: Syscalls,
    pipeDir: string,
    /** Both output streams go to this sink (a json-file log) instead of paths: stdout and stderr stay apart. */
    sink?: OutputSink,
  ) {
    super();
    this.ready = readinessOf(sys);
    try {
      const stdout = stdioPath(paths.stdout);
      const stderr = stdioPath(paths.stderr);
      const stdin = stdioPath(paths.stdin);
      let outFifo: number | undefined;
      if (sink) {
        for (const stream of ["stdout", "stderr"] as const) {
          const [ours, theirs] = this.pipe(sys, pipeDir, "out");
          this.io[stream] = theirs;
          this.plan.push(() => this.copies.push(this.pumpToSink(ours, sink, stream)));
        }
      } else if (stdout) {
        const fifo = this.own((outFifo = openOutput(stdout)));
        const [ours, theirs] = this.pipe(sys, pipeDir, "out");
        this.io.stdout = theirs;
        this.plan.push(() => this.copies.push(this.pumpOut(ours, fifo)));
      }
      if (stderr && !sink) {
        const fifo = stderr === stdout && outFifo !== undefined ? outFifo : this.own(openOutput(stderr));
        const [ours, theirs] = this.pipe(sys, pipeDir, "out");
        this.io.stderr = theirs;
        this.plan.push(() => this.copies.push(this.pumpOut(ours, fifo)));
      }
      if (stdin) {
        const fifo = this.own(openSync(stdin, O_RDONLY | O_NONBLOCK));
        this.stdinHold = openSync(stdin, O_WRONLY | O_NONBLOCK);
        const [ours, theirs] = this.pipe(sys, pipeDir, "in");
        this.io.stdin = theirs;
        this.plan.push(() => void this.pumpIn(fifo, ours));
      }
    } catch (err) {
      this.close();
      throw err;
    }
  }

  private own(fd: number): number {
    this.owned.add(fd);
    return fd;
  }

  private pipe(sys: Syscalls, dir: string, direction: "in" | "out"): [number, number] {
    const [ours, theirs] = makePipe(sys, dir, direction);
    this.own(ours);
    this.childEnds.push(theirs);
    return [ours, theirs];
  }

  /** The stdio runc (and so the container process) gets: pipe ends, /dev/null where nothing is copied. */
  runcIO(): ProcessIO {
    return this.io;
  }

  /** runc has started: drop our copies of the process's ends (or EOF never comes) and start copying. */
  attach(): void {
    this.closeChildEnds();
    for (const start of this.plan.splice(0)) start();
  }

  private closeChildEnds(): void {
    for (const fd of this.childEnds.splice(0)) closeSync(fd);
  }

  /**
   * Reads `src` whenever it is readable and hands each chunk to `onChunk` (false: stop) until EOF,
   * an error or close(). Reading happens here, not in a Bun stream: see readiness.ts for why.
   */
  private pump(src: number, onChunk: (data: Uint8Array) => Promise<boolean>): Promise<void> {
    return new Promise((resolve) => {
      const watch = this.ready.watch(src, () => void step());
      const finish = (): void => {
        watch.remove();
        this.finishers.delete(finish);
        resolve();
      };
      this.finishers.add(finish);
      const step = async (): Promise<void> => {
        for (;;) {
          if (this.closed) return finish();
          let n: number;
          try {
            n = readSync(src, READ_BUFFER, 0, READ_BUFFER.length, null);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === "EAGAIN") return watch.rearm();
            return finish();
          }
          if (n === 0) return finish();
          // a copy: the shared buffer is reused by other pumps while this one waits to write
          if (!(await onChunk(READ_BUFFER.slice(0, n)))) return finish();
        }
      };
    });
  }

  private pumpOut(src: number, dst: number): Promise<void> {
    let dstOk = true;
    return this.pump(src, async (data) => {
      this.lastActivity = Date.now();
      // after a write error keep reading anyway, so the process never blocks on a dead reader
      if (dstOk) dstOk = await this.writeAll(dst, data);
      return true;
    });
  }

  private async pumpToSink(src: number, sink: OutputSink, stream: LogStream): Promise<void> {
    await this.pump(src, async (data) => {
      this.lastActivity = Date.now();
      sink.write(stream, data);
      return true;
    });
    sink.end(stream);
  }

  private async pumpIn(src: number, dst: number): Promise<void> {
    await this.pump(src, (data) => this.writeAll(dst, data));
    // EOF for the process: its stdin ends when the client's does (after CloseIO)
    if (this.owned.delete(dst)) closeSync(dst);
  }



  /**
   * Waits until the output copies reached EOF (the process and everything that inherited its pipes
   * are gone), or until nothing moved for IDLE_DRAIN_MS (a leftover holder, or nobody reading).
   */
  async drain(): Promise<void> {
    await this.drainUntilIdle(Promise.all(this.copies), IDLE_DRAIN_MS);
  }

  /** Stops every copy and closes every fd (idempotent). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const finish of [...this.finishers]) finish();
    this.closeStdin();
    this.closeChildEnds();
    for (const fd of this.owned) {
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
    }
    this.owned.clear();
  }
}
