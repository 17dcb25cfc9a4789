// The CLI's own terminal while it is attached to a container's with `run -t` / `exec -t`, as the
// docker CLI does it (cli/command/container/tty.go, hijack.go): our stdin in raw mode when we send
// it (-it), so Ctrl-C, Ctrl-\ and Ctrl-Z are bytes for the container's terminal, whose line
// discipline turns them into signals for its own foreground process; the container's window size
// follows ours (ResizePty at start and on every SIGWINCH).
//
// Loaded only by -t runs (commands.ts imports it lazily): a plain `run` pays nothing for it.
//
// Raw mode is restored on every way out: the caller's `finally`, and process exit as a last resort
// (an uncaught error, a `process.exit` elsewhere). Only SIGKILL can leave the terminal raw, as it
// does for docker's CLI. We read the size with TIOCGWINSZ ourselves: Bun does not refresh
// process.stdout.columns/rows on SIGWINCH.
import { isatty } from "node:tty";

export { isatty };
import type { Syscalls } from "../sys/types.ts";

/** A terminal's size in containerd's ResizePty terms: width is columns, height is rows. */
export interface WindowSize {
  width: number;
  height: number;
}

/** What raw mode needs of our stdin: Node's tty.ReadStream, or a test's stand-in. */
export interface RawModeTarget {
  isTTY?: boolean;
  setRawMode?(raw: boolean): unknown;
}

/** Where exit and SIGWINCH come from: `process`, or a test's emitter. */
export interface ProcessEvents {
  on(event: "SIGWINCH" | "exit", listener: () => void): unknown;
  off(event: "SIGWINCH" | "exit", listener: () => void): unknown;
}

/**
 * Puts `input` in raw mode if it is a terminal; returns the function that restores it (idempotent,
 * also run at process exit). Not a terminal (input piped, `-it` from a script): nothing changes.
 */
export function enterRawMode(input: RawModeTarget, events: ProcessEvents = process): () => void {
  if (!input.isTTY || typeof input.setRawMode !== "function") return () => undefined;
  input.setRawMode(true);
  let restored = false;
  const restore = (): void => {
    if (restored) return;
    restored = true;
    events.off("exit", restore);
    try {
      input.setRawMode!(false);
    } catch {
      // the terminal is gone (hung up): nothing left to restore
    }
  };
  events.on("exit", restore);
  return restore;
}

/** The size of the first of `fds` that is a terminal; undefined when none is (or it reports 0x0). */
export function readWindowSize(sys: Pick<Syscalls, "getWinsize">, fds: readonly number[]): WindowSize | undefined {
  for (const fd of fds) {
    try {
      const { rows, cols } = sys.getWinsize(fd);
      if (rows > 0 && cols > 0) return { width: cols, height: rows };
    } catch {
      // ENOTTY: try the next one
    }
  }
  return undefined;
}

/**
 * Sends our window size now and after every SIGWINCH, one call at a time (a burst of resizes sends
 * the latest size, never an older one after a newer). A size equal to the last one sent is skipped.
 * Failures are dropped: the process may have just exited, and a resize is never worth an error.
 * Returns the function that stops watching.
 */
export function followWindowSize(
  sys: Pick<Syscalls, "getWinsize">,
  fds: readonly number[],
  send: (size: WindowSize) => Promise<unknown>,
  events: ProcessEvents = process,
): { stop(): void; settled(): Promise<void> } {
  let last: WindowSize | undefined;
  let chain: Promise<void> = Promise.resolve();
  let pending = false;
  let stopped = false;
  const update = (): void => {
    if (pending || stopped) return;
    pending = true;
    chain = chain.then(async () => {
      pending = false;
      if (stopped) return;
      const size = readWindowSize(sys, fds);
      if (!size || (last && last.width === size.width && last.height === size.height)) return;
      last = size;
      await send(size).catch(() => undefined);
    });
  };
  update();
  events.on("SIGWINCH", update);
  return {
    stop() {
      stopped = true;
      events.off("SIGWINCH", update);
    },
    settled: () => chain,
  };
}

/** Our fds that may be the terminal to follow: stdout first (docker's choice), then stdin. */
export function terminalFds(): number[] {
  return [1, 0].filter((fd) => isatty(fd));
}
