// The client's ends of a task's stdout/stderr FIFOs, without ever blocking Bun's event loop.
// We open each FIFO O_RDWR|O_NONBLOCK first (so the open cannot block and a shim's O_WRONLY open
// finds a reader), read through a second O_RDONLY|O_NONBLOCK fd, and drop the O_RDWR one once
// the shim holds its write end (after Create): from then on EOF means the shim closed its end,
// i.e. all output has arrived, which is how `run` drains before it exits.
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";

export interface FifoSys {
  mkfifo(path: string, mode: number): void;
}

export type Sink = (chunk: Uint8Array) => void | Promise<void>;

export class FifoReader {
  private keepAlive: number | undefined;
  private readFd: number | undefined;
  private readonly finished: Promise<void>;
  private reader: { cancel(): Promise<void> } | undefined;

  constructor(readonly path: string, sink: Sink) {
    this.keepAlive = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
    this.readFd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    const reader = Bun.file(this.readFd).stream().getReader();
    this.reader = reader;
    this.finished = (async () => {
      for (;;) {
        const r = await reader.read();
        if (r.done) return;
        await sink(r.value);
      }
    })().catch(() => undefined);
  }

  /** Call once the shim has opened its write end: EOF then marks the end of the output. */
  releaseWriter(): void {
    if (this.keepAlive !== undefined) {
      closeSync(this.keepAlive);
      this.keepAlive = undefined;
    }
  }

  /** Waits for EOF (all output copied), at most timeoutMs; then stops reading. */
  async drain(timeoutMs: number): Promise<void> {
    this.releaseWriter();
    let timer: Timer | undefined;
    await Promise.race([this.finished, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    this.close();
  }

  close(): void {
    this.releaseWriter();
    void this.reader?.cancel().catch(() => undefined);
    this.reader = undefined;
    if (this.readFd !== undefined) {
      try {
        closeSync(this.readFd);
      } catch {
        // already closed by the stream
      }
      this.readFd = undefined;
    }
  }
}

export interface OutputFifos {
  dir: string;
  stdout: string;
  stderr: string;
  readers: FifoReader[];
  releaseWriters(): void;
  drain(timeoutMs: number): Promise<void>;
  /** Closes everything and removes the FIFOs. */
  dispose(): void;
}

/** FIFOs for a process's stdout (and stderr unless terminal) in a fresh dir under parent. */
export function openOutputFifos(sys: FifoSys, parent: string, terminal: boolean, out: Sink, err: Sink): OutputFifos {
  const dir = mkdtempSync(join(parent, "bunker-io-"));
  const readers: FifoReader[] = [];
  const dispose = (): void => {
    for (const r of readers) r.close();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const stdout = join(dir, "stdout");
    sys.mkfifo(stdout, 0o600);
    readers.push(new FifoReader(stdout, out));
    let stderr = "";
    if (!terminal) {
      stderr = join(dir, "stderr");
      sys.mkfifo(stderr, 0o600);
      readers.push(new FifoReader(stderr, err));
    }
    return {
      dir,
      stdout,
      stderr,
      readers,
      releaseWriters: () => readers.forEach((r) => r.releaseWriter()),
      drain: async (ms) => {
        await Promise.all(readers.map((r) => r.drain(ms)));
      },
      dispose,
    };
  } catch (err) {
    dispose();
    throw err;
  }
}

/**
 * A sink that writes to one of our own streams and resolves when the bytes are handed off. Once
 * the stream breaks (`bunker run ... | head -1`: EPIPE) the rest is discarded, so the container
 * still runs to its end and is cleaned up instead of being orphaned by a crash.
 */
export function streamSink(stream: NodeJS.WriteStream): Sink {
  let broken = false;
  stream.on("error", () => {
    broken = true;
  });
  return (chunk) =>
    new Promise<void>((resolve) => {
      if (broken) return resolve();
      try {
        if (stream.write(chunk, () => resolve())) resolve();
      } catch {
        broken = true;
        resolve();
      }
    });
}

/**
 * A stdin FIFO for `run -i`: made and held open (O_RDWR, so the shim's open of its read end never
 * blocks) before Create; after Create, `pump` copies `input` into it and closes our end at its EOF,
 * which the process then reads as its own EOF (docker's attach of stdin).
 */
export class StdinFifo {
  private keepAlive: number | undefined;

  constructor(sys: FifoSys, readonly path: string) {
    sys.mkfifo(path, 0o600);
    this.keepAlive = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
  }

  /** Copies input until its EOF (or until `stop`); the process sees EOF once we close. */
  async pump(input: ReadableStream<Uint8Array>, stop: Promise<unknown>): Promise<void> {
    // our own writer, then the hold goes: from here only this fd keeps the FIFO's write side open
    const fd = openSync(this.path, constants.O_WRONLY | constants.O_NONBLOCK);
    this.close();
    let stopped = false;
    void stop.finally(() => (stopped = true));
    try {
      const reader = input.getReader();
      void stop.finally(() => reader.cancel().catch(() => undefined));
      for (;;) {
        const r = await reader.read().catch(() => ({ done: true as const, value: undefined }));
        if (r.done || stopped) return;
        await writeAll(fd, r.value, () => stopped);
      }
    } finally {
      closeSync(fd);
    }
  }

  close(): void {
    if (this.keepAlive !== undefined) {
      closeSync(this.keepAlive);
      this.keepAlive = undefined;
    }
  }
}

/** write(2) of all of `chunk` to a non-blocking fd, waiting while the pipe is full. */
async function writeAll(fd: number, chunk: Uint8Array, stopped: () => boolean): Promise<void> {
  let off = 0;
  while (off < chunk.length && !stopped()) {
    try {
      off += writeSync(fd, chunk, off, chunk.length - off);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EPIPE") return; // the process closed its stdin: the rest is not wanted
      if (code !== "EAGAIN") throw err;
      await Bun.sleep(5);
    }
  }
}
