// Shim logging: pino JSON on fd 2. In serve mode fd 2 is the bundle's `log` FIFO, which containerd
// reads and copies to its own log (Go: fifo.OpenFifoDup2("log", O_WRONLY, stderr)). The FIFO is
// opened non-blocking so a missing reader never stalls the shim, and a line that cannot be written
// (reader gone, pipe full) is dropped: logging must never take the shim down.
import { closeSync, constants, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { Logger as PinoLogger } from "pino";
import type { Syscalls } from "../sys/types.ts";

/** What shim code logs through: pino in serve mode, a few-line JSON writer in start/delete. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

class Fd2Destination {
  write(line: string): boolean {
    try {
      writeSync(2, line);
    } catch {
      // EAGAIN / EPIPE: containerd is not reading right now; the line is lost, the shim goes on
    }
    return true;
  }
}

/** pino, loaded on demand: the start and delete actions must not pay for it. */
export async function createLogger(opts: { debug?: boolean; bindings?: Record<string, unknown> } = {}): Promise<PinoLogger> {
  const { default: pino } = await import("pino");
  return pino(
    {
      level: opts.debug ? "debug" : "info",
      base: { pid: process.pid, ...opts.bindings },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    new Fd2Destination(),
  );
}

const LEVELS = { debug: 20, info: 30, warn: 40, error: 50 } as const;

/** pino-compatible JSON lines on fd 2 without pino (delete action: containerd logs its stderr). */
export function stderrLogger(opts: { debug?: boolean; bindings?: Record<string, unknown> } = {}): Logger {
  const min = opts.debug ? LEVELS.debug : LEVELS.info;
  const out = new Fd2Destination();
  const at = (level: number) => (obj: object, msg?: string) => {
    if (level < min) return;
    const line = { level, time: new Date().toISOString(), pid: process.pid, ...opts.bindings, ...obj, ...(msg ? { msg } : {}) };
    out.write(`${JSON.stringify(line)}\n`);
  };
  return { debug: at(LEVELS.debug), info: at(LEVELS.info), warn: at(LEVELS.warn), error: at(LEVELS.error) };
}

/** A logger that drops everything (tests). */
export function silentLogger(): Logger {
  const nop = (): void => {};
  return { debug: nop, info: nop, warn: nop, error: nop };
}

/**
 * Points fd 2 at `<bundle>/log` when it is a FIFO with a reader. Returns false (and leaves fd 2
 * alone) when there is none, e.g. when the shim is started by hand.
 */
export function redirectStderrToLogFifo(bundle: string, sys: Syscalls): boolean {
  let fd: number;
  try {
    fd = openSync(join(bundle, "log"), constants.O_WRONLY | constants.O_NONBLOCK);
  } catch {
    return false; // ENOENT, or ENXIO: nobody reads it
  }
  try {
    sys.dup2(fd, 2);
  } finally {
    closeSync(fd);
  }
  return true;
}
