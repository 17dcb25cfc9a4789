// Reading a container's kept output for `bunker logs`: docker's json-file log across its rotated
// files (oldest first: <file>.N … <file>.1, <file>, as moby's LogFile names them), and the raw file
// of the `file` driver. The writer is the shim's (stdio/json-log.ts); this side only parses what is
// on disk, so it is its own small decoder rather than an import across the CLI/shim boundary.
//
// A json-file entry whose "log" has no trailing newline is a partial line (the writer splits lines
// past 16 KiB, and writes a process's unfinished last line at EOF): partials are joined with the
// entries that follow on the same stream, so a line comes out whole, with its first piece's time.
// A file being written may end in half a JSON line: the decoder keeps it until the rest arrives.
import { closeSync, existsSync, fstatSync, openSync, readSync } from "node:fs";
import { parseRfc3339 } from "./log-time.ts";

export type Stream = "stdout" | "stderr";

export interface LogEntry {
  stream: Stream;
  log: string;
  timeNs: bigint;
}

/** A whole line (or a process's last, unterminated one) of one stream. */
export interface LogLine {
  stream: Stream;
  text: string;
  timeNs: bigint;
}

/** The rotated files of a json-file log, oldest first, then the current one (those that exist). */
export function rotatedLogFiles(path: string): string[] {
  const older: string[] = [];
  for (let i = 1; existsSync(`${path}.${i}`); i++) older.unshift(`${path}.${i}`);
  return existsSync(path) ? [...older, path] : older;
}

/** Bytes of a json-file log in, entries out; a trailing half line waits for its rest. */
export class JsonLogDecoder {
  private pending: Buffer = Buffer.alloc(0);

  push(data: Uint8Array): LogEntry[] {
    const buf = this.pending.length > 0 ? Buffer.concat([this.pending, data]) : Buffer.from(data);
    const out: LogEntry[] = [];
    let start = 0;
    for (let nl = buf.indexOf(0x0a, start); nl >= 0; nl = buf.indexOf(0x0a, start)) {
      const entry = parseEntry(buf.toString("utf8", start, nl));
      if (entry) out.push(entry);
      start = nl + 1;
    }
    this.pending = buf.subarray(start);
    return out;
  }

  /** A file boundary: a torn line at the end of a rotated file is dropped, not glued to the next file. */
  reset(): void {
    this.pending = Buffer.alloc(0);
  }
}

function parseEntry(line: string): LogEntry | undefined {
  try {
    const o = JSON.parse(line) as { log?: unknown; stream?: unknown; time?: unknown };
    if (typeof o.log !== "string" || (o.stream !== "stdout" && o.stream !== "stderr") || typeof o.time !== "string") return undefined;
    const timeNs = parseRfc3339(o.time);
    return timeNs === undefined ? undefined : { stream: o.stream, log: o.log, timeNs };
  } catch {
    return undefined; // a damaged line (a crash mid-write) is skipped, as docker's reader does
  }
}

/** Joins partial entries into lines, per stream. */
export class LineJoiner {
  private readonly pending = new Map<Stream, LogLine>();

  push(entries: LogEntry[]): LogLine[] {
    const out: LogLine[] = [];
    for (const e of entries) {
      const open = this.pending.get(e.stream);
      const line = open ? { ...open, text: open.text + e.log } : { stream: e.stream, text: e.log, timeNs: e.timeNs };
      if (e.log.endsWith("\n")) {
        this.pending.delete(e.stream);
        out.push(line);
      } else this.pending.set(e.stream, line);
    }
    return out;
  }

  /** What is left unterminated (the end of the log): emitted as is. */
  flush(): LogLine[] {
    const out = [...this.pending.values()].sort((a, b) => (a.timeNs < b.timeNs ? -1 : a.timeNs > b.timeNs ? 1 : 0));
    this.pending.clear();
    return out;
  }
}

const CHUNK = 64 * 1024;

/** An open log file read forward from where it was last read; notices when its path is a new file. */
export class FileCursor {
  private constructor(
    private fd: number | undefined,
    readonly ino: number,
  ) {}

  static open(path: string): FileCursor | undefined {
    try {
      const fd = openSync(path, "r");
      return new FileCursor(fd, fstatSync(fd).ino);
    } catch {
      return undefined;
    }
  }

  /** Everything appended since the last read. */
  readNew(): Buffer {
    if (this.fd === undefined) return Buffer.alloc(0);
    const chunks: Buffer[] = [];
    for (;;) {
      const buf = Buffer.allocUnsafe(CHUNK);
      const n = readSync(this.fd, buf, 0, CHUNK, null);
      if (n <= 0) break;
      chunks.push(buf.subarray(0, n));
    }
    return Buffer.concat(chunks);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** The last `n` lines of raw bytes (a final line without newline counts as one). */
export function tailRaw(data: Buffer, n: number): Buffer {
  if (n === 0) return Buffer.alloc(0);
  let end = data.length;
  if (end > 0 && data[end - 1] === 0x0a) end--;
  let start = end;
  for (let seen = 0; start > 0; ) {
    const nl = data.lastIndexOf(0x0a, start - 1);
    if (nl < 0) {
      start = 0;
      break;
    }
    if (++seen === n) {
      start = nl + 1;
      break;
    }
    start = nl;
  }
  return data.subarray(start);
}
