// A container's output FIFOs, as the seed's libcontainerd lays them out: <rootDir>/<id>/init-stdout
// and init-stderr. Fixed paths are what lets restore() reopen them after the embedding program
// restarted; the shim holds a read end of its own, so its writes never fail while nobody reads.
// Reading reuses the CLI's FifoReader, which never blocks the event loop.
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { FifoReader } from "../api/stdio.ts";
import type { Output } from "./streams.ts";

export const STDOUT_FIFO = "init-stdout";
export const STDERR_FIFO = "init-stderr";
/** drain() with this timeout waits for EOF: the longest a timer may wait. */
const UNTIL_EOF_MS = 2 ** 31 - 1;

export interface FifoPaths {
  dir: string;
  stdout: string;
  /** "" with a terminal: the console carries both streams. */
  stderr: string;
}

export function fifoPaths(rootDir: string, id: string, terminal: boolean): FifoPaths {
  const dir = join(rootDir, id);
  return { dir, stdout: join(dir, STDOUT_FIFO), stderr: terminal ? "" : join(dir, STDERR_FIFO) };
}

/** Makes fresh FIFOs (replacing a stale container's), in a dir only we can enter. */
export function makeFifos(mkfifo: (path: string, mode: number) => void, p: FifoPaths): void {
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  for (const path of [p.stdout, p.stderr]) {
    if (path === "") continue;
    rmSync(path, { force: true });
    mkfifo(path, 0o600);
  }
}

/** The copy of one container's FIFOs into its outputs. */
export class Attachment {
  private readonly readers: FifoReader[] = [];
  /** Resolves once every output has ended (EOF on its FIFO, or detach). */
  readonly done: Promise<void>;
  private started = false;
  private readonly pending: (() => void)[] = [];

  /** Opens the read ends now (a Go shim's open of its write end waits for a reader). */
  constructor(p: FifoPaths, stdout: Output, stderr: Output) {
    const copies: Promise<void>[] = [];
    const copy = (path: string, out: Output): void => {
      if (path === "" || !existsSync(path)) {
        // Nothing will ever be written here; with a terminal stderr ends along with stdout.
        copies.push(Promise.all(copies).then(() => out.end()));
        return;
      }
      const reader = new FifoReader(path, (chunk) => out.write(chunk));
      this.readers.push(reader);
      copies.push(
        new Promise<void>((resolve) => this.pending.push(resolve)).then(async () => {
          await reader.drain(UNTIL_EOF_MS);
          await out.end();
        }),
      );
    };
    try {
      copy(p.stdout, stdout);
      copy(p.stderr, stderr);
    } catch (err) {
      this.detach();
      throw err;
    }
    this.done = Promise.all(copies).then(() => undefined);
  }

  /**
   * Call once the shim holds the write ends (after Create, or at once when reattaching): from then
   * on EOF means the process's output is complete, and the outputs end there.
   */
  start(): void {
    if (this.started) return;
    this.started = true;
    for (const go of this.pending) go();
  }

  /** Stops reading without ending the outputs (a create that failed; they may be attached again). */
  abandon(): void {
    for (const r of this.readers) r.close();
  }

  /** Stops reading and ends the outputs (what output is still in the FIFO stays for a later reader). */
  detach(): void {
    this.start();
    for (const r of this.readers) r.close();
  }
}
