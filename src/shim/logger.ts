// Shim logging: pino JSON on fd 2. In serve mode fd 2 is the bundle's `log` FIFO, which containerd
// reads and copies to its own log (Go: fifo.OpenFifoDup2("log", O_WRONLY, stderr)). The FIFO is
// opened non-blocking so a missing reader never stalls the shim, and a line that cannot be written
// (reader gone, pipe full) is dropped: logging must never take the shim down.
import { closeSync, constants, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import pino, { type Logger } from "pino";
import { sys } from "../sys/index.ts";

export type { Logger };

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

export function createLogger(opts: { debug?: boolean; bindings?: Record<string, unknown> } = {}): Logger {
  return pino(
    {
      level: opts.debug ? "debug" : "info",
      base: { pid: process.pid, ...opts.bindings },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    new Fd2Destination(),
  );
}

/** A logger that drops everything (start/delete actions must keep stdout clean, and tests). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}

/**
 * Points fd 2 at `<bundle>/log` when it is a FIFO with a reader. Returns false (and leaves fd 2
 * alone) when there is none, e.g. when the shim is started by hand.
 */
export function redirectStderrToLogFifo(bundle: string): boolean {
  let fd: number;
  try {
    fd = openSync(join(bundle, "log"), constants.O_WRONLY | constants.O_NONBLOCK);
  } catch {
    return false; // ENOENT, or ENXIO: nobody reads it
  }
  try {
    sys().dup2(fd, 2);
  } finally {
    closeSync(fd);
  }
  return true;
}
