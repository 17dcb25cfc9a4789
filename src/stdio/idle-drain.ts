// The wait after a process exited, shared by pipes (io.ts) and consoles (console.ts): until its
// output reached EOF, or until nothing moved for a while (a daemonized child still holding the pipe
// or the terminal, or nobody reading the output FIFO), so a Delete never hangs on a leftover holder.

/** Waits for `done`, or until `lastActivity()` (ms since the epoch) is `idleMs` in the past. */
export async function drainUntilIdle(done: Promise<unknown>, lastActivity: () => number, idleMs: number): Promise<void> {
  const finished = done.then(() => true);
  for (;;) {
    const waitMs = lastActivity() + idleMs - Date.now();
    if (waitMs <= 0) return;
    let timer: Timer | undefined;
    const idle = new Promise<false>((r) => (timer = setTimeout(() => r(false), waitMs)));
    const over = await Promise.race([finished, idle]);
    clearTimeout(timer);
    if (over) return;
  }
}
