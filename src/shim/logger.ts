// Shim logging: pino-format JSON lines on fd 2. In serve mode fd 2 is the bundle's `log` FIFO, which
// containerd reads and copies to its own log (Go: fifo.OpenFifoDup2("log", O_WRONLY, stderr)). The
// FIFO is opened non-blocking so a missing reader never stalls the shim, and a line that cannot be
// written (reader gone, pipe full) is dropped: logging must never take the shim down.
// Not pino itself: a shim logs a few lines per container, and loading pino (with sonic-boom,
// thread-stream, redact, safe-stable-stringify) cost every serve process 1.7 MiB of anonymous
// memory (a compiled probe importing the logger: 3.96 MiB anon against 2.22 MiB for an empty one),
// which one shim per pod pays once per pod (issue #19).
import { closeSync, constants, openSync, writeSync } from "node:fs";
import { goJoin } from "../gopath.ts";
import type { Syscalls } from "../sys/types.ts";

/** What shim code logs through. */
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

const LEVELS = { debug: 20, info: 30, warn: 40, error: 50 } as const;

/** Errors as pino's serializer writes them; bigints as numbers' text; anything else as is. */
function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { type: value.name, message: value.message, stack: value.stack };
  if (typeof value === "bigint") return value.toString();
  return value;
}

/** pino-compatible JSON lines on fd 2 (pino's level numbers, ISO time, pid, bindings, msg). */
export function stderrLogger(opts: { debug?: boolean; bindings?: Record<string, unknown> } = {}): Logger {
  const min = opts.debug ? LEVELS.debug : LEVELS.info;
  const out = new Fd2Destination();
  const at = (level: number) => (obj: object, msg?: string) => {
    if (level < min) return;
    const line = { level, time: new Date().toISOString(), pid: process.pid, ...opts.bindings, ...obj, ...(msg ? { msg } : {}) };
    let text: string;
    try {
      text = JSON.stringify(line, replacer);
    } catch (err) {
      // a cycle in what was logged: keep the message, say why the rest is missing
      text = JSON.stringify({ level, time: line.time, pid: process.pid, ...opts.bindings, msg, logError: String(err) });
    }
    out.write(`${text}\n`);
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
    fd = openSync(goJoin(bundle, "log"), constants.O_WRONLY | constants.O_NONBLOCK);
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
