// bunker's pino logger: JSON lines on stderr. The CLI is silent unless --debug (it prints its own
// one-line errors); the daemon logs at info.
import pino, { type Logger } from "pino";

export function makeLogger(opts: { debug: boolean; daemon: boolean }): Logger {
  const level = opts.debug ? "debug" : opts.daemon ? "info" : "silent";
  return pino({ level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
}
