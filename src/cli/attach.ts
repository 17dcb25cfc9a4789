// What `run` and `exec` do while attached to a process through the bunker.v1 API (daemon or
// embedded): pass our signals on to it (docker's --sig-proxy, ctr's too), and with -t give it our
// terminal (raw mode, window size: terminal.ts, loaded only then).
//
// Signals: docker's CLI forwards every catchable signal to the container. We forward the ones a
// terminal or a supervisor sends (INT, TERM, HUP, QUIT) and the two user signals, the same set as
// the foreground path (run-foreground.ts). Before, SIGQUIT (Ctrl-\ without -t) and any signal not
// in the list killed the CLI on the spot and left a `--rm` container, or an exec'd process, running
// with nobody to remove it. With -t and -i our terminal is raw: Ctrl-C and Ctrl-\ are bytes for the
// container's terminal, and only signals sent to the CLI itself (kill, a hung-up terminal's SIGHUP)
// arrive here, and those are forwarded as well, so the process decides and the CLI cleans up after it.
import type { WindowSize } from "./terminal.ts";

/** The signals we pass on, with their Linux numbers. */
export const PROXIED_SIGNALS: readonly (readonly [NodeJS.Signals, number])[] = [
  ["SIGINT", 2],
  ["SIGTERM", 15],
  ["SIGHUP", 1],
  ["SIGQUIT", 3],
  ["SIGUSR1", 10],
  ["SIGUSR2", 12],
];

/** Where signals come from: `process`, or a test's emitter. */
export interface SignalSource {
  on(event: NodeJS.Signals, listener: () => void): unknown;
  off(event: NodeJS.Signals, listener: () => void): unknown;
}

/** Forwards our signals to the process (by number) while `body` runs; send failures are dropped. */
export async function withSignalProxy<T>(send: (signal: number) => Promise<void>, body: () => Promise<T>, source: SignalSource = process): Promise<T> {
  const handlers = PROXIED_SIGNALS.map(([name, n]) => [name, () => void send(n).catch(() => undefined)] as const);
  for (const [s, h] of handlers) source.on(s, h);
  try {
    return await body();
  } finally {
    for (const [s, h] of handlers) source.off(s, h);
  }
}

export interface AttachedTerminal {
  /** Stops following the window size and restores our terminal; idempotent. */
  detach(): void;
}

/**
 * With -t: follows our window size into the process's terminal (`resize`), and with -i also puts
 * our stdin in raw mode (docker does so only when it sends stdin: with -t alone, Ctrl-C stays
 * a signal for the CLI, which forwards it).
 */
export async function attachTerminal(o: { interactive: boolean; resize: (size: WindowSize) => Promise<unknown> }): Promise<AttachedTerminal> {
  const [{ enterRawMode, followWindowSize, isatty, terminalFds }, { sys }] = await Promise.all([import("./terminal.ts"), import("../sys/index.ts")]);
  // process.stdin only for a terminal: on a pipe, making that stream could compete with the
  // Bun.stdin reader the stdin FIFO is fed from
  const restore = o.interactive && isatty(0) ? enterRawMode(process.stdin) : () => undefined;
  const size = followWindowSize(sys(), terminalFds(), o.resize);
  return {
    detach() {
      size.stop();
      restore();
    },
  };
}
