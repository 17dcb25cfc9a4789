// What a process's stdio copy does the same way for pipes (io.ts PipeIO) and for a console
// (console.ts ConsoleCopy): our hold on the stdin FIFO that CloseIO drops, writes to non-blocking
// fds that advance an activity clock, and the wait after the exit: until the output reached EOF, or
// until nothing moved for a while (a daemonized child still holding the pipe or the terminal, or
// nobody reading the output FIFO), so a Delete never hangs on a leftover holder.
import { closeSync } from "node:fs";
import { writeAllNonblocking } from "./fdwrite.ts";

export abstract class StdioCopy {
  /** Our own write end of the stdin FIFO: the copy sees EOF only once CloseIO dropped it. */
  protected stdinHold: number | undefined;
  protected lastActivity = Date.now();
  protected closed = false;

  /** CloseIO{stdin}: drop our own write end; EOF reaches the process once the client's writer is closed too. */
  closeStdin(): void {
    if (this.stdinHold === undefined) return;
    closeSync(this.stdinHold);
    this.stdinHold = undefined;
  }

  protected writeAll(fd: number, chunk: Uint8Array): Promise<boolean> {
    return writeAllNonblocking(fd, chunk, () => this.closed, () => {
      this.lastActivity = Date.now();
    });
  }

  /** Waits for `done`, or until nothing moved for `idleMs`; the idle clock starts now (the exit), not at the last output. */
  protected async drainUntilIdle(done: Promise<unknown>, idleMs: number): Promise<void> {
    this.lastActivity = Date.now();
    const finished = done.then(() => true);
    for (;;) {
      const waitMs = this.lastActivity + idleMs - Date.now();
      if (waitMs <= 0) return;
      let timer: Timer | undefined;
      const idle = new Promise<false>((r) => (timer = setTimeout(() => r(false), waitMs)));
      const over = await Promise.race([finished, idle]);
      clearTimeout(timer);
      if (over) return;
    }
  }
}
