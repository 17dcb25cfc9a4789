// docker's json-file log, written by bunker's shim (the `json-file://` stdio URI, see
// contract/log-uri.ts): one JSON object per line, `{"log":"…\n","stream":"stdout","time":"…"}`,
// with the time in Go's RFC3339Nano (UTC, trailing zeros of the fraction dropped), as moby's
// daemon/logger/jsonfilelog writes it, so docker's readers and ours read the same bytes.
//
// It lives in the shim, not in the CLI or the daemon: the log must keep being written when both are
// gone, and a shim serves many containers, so a writer is a few fields and one fd per container, not
// a process (containerd's binary:// loggers cost one each). Both streams of a process share one
// writer, so their lines interleave in one file in the order they were read.
//
// Lines are framed as moby's logger copier does: a read is split at newlines; a line with no newline
// yet waits for the rest (kept intact across writes), up to 16 KiB, where it is written as a partial
// entry whose "log" has no trailing "\n" (readers join partials with what follows); what is left at
// EOF is written the same way. Rotation is moby's LogFile: before a write, a file that reached
// max-size is renamed to .1 (.1 to .2, …, keeping max-file files in all; max-file 1 truncates),
// and a fresh file is made. Nothing here makes directories: the log lives in the container's record
// dir, and once `rm` removed that dir a late write is dropped rather than recreating it.
import { closeSync, constants, fstatSync, ftruncateSync, openSync, renameSync, writeSync } from "node:fs";

export type LogStream = "stdout" | "stderr";

/** Where a process's output goes besides a file descriptor: the pipe and console copies call it. */
export interface OutputSink {
  write(stream: LogStream, data: Uint8Array): void;
  /** The stream reached EOF: write what is left of its last line. */
  end(stream: LogStream): void;
}

/** moby's logger copier buffer: a line longer than this is written in partial entries. */
export const PARTIAL_LINE_BYTES = 16 * 1024;
const NEWLINE = 0x0a;

// The wall clock in nanoseconds: Date.now() is milliseconds, so the sub-millisecond part comes
// from the monotonic clock since start-up (entries of one process never go backwards within a ms).
const EPOCH_NS_AT_START = BigInt(Date.now()) * 1_000_000n;
const HRTIME_AT_START = process.hrtime.bigint();

export function nowNanos(): bigint {
  return EPOCH_NS_AT_START + (process.hrtime.bigint() - HRTIME_AT_START);
}

/** Go's time.RFC3339Nano in UTC: 2026-11-27T15:35:23.1234567Z (the fraction's trailing zeros dropped). */
export function formatRfc3339Nano(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  const base = new Date(ms).toISOString().slice(0, 19);
  let frac = (ns % 1_000_000_000n).toString().padStart(9, "0").replace(/0+$/, "");
  if (frac !== "") frac = "." + frac;
  return `${base}${frac}Z`;
}

const decoder = new TextDecoder(); // invalid UTF-8 becomes U+FFFD, as Go's encoding/json does
const encoder = new TextEncoder();

/** One json-file line: the bytes of `log` (a whole line with its "\n", or a partial one), framed. */
export function frameEntry(log: Uint8Array, stream: LogStream, timeNs: bigint): string {
  return `{"log":${JSON.stringify(decoder.decode(log))},"stream":"${stream}","time":"${formatRfc3339Nano(timeNs)}"}\n`;
}

/** Splits each stream's reads into whole lines (and 16 KiB partials), keeping the unfinished rest. */
export class LineFramer {
  private readonly pending: Record<LogStream, Uint8Array | undefined> = { stdout: undefined, stderr: undefined };

  /** The entries `data` completes, framed, in order. */
  push(stream: LogStream, data: Uint8Array, timeNs: bigint): string[] {
    let buf = data;
    const rest = this.pending[stream];
    if (rest) {
      buf = new Uint8Array(rest.length + data.length);
      buf.set(rest);
      buf.set(data, rest.length);
      this.pending[stream] = undefined;
    }
    const out: string[] = [];
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(NEWLINE, start);
      const lineEnd = nl < 0 ? buf.length : nl + 1;
      if (lineEnd - start > PARTIAL_LINE_BYTES) {
        // a line past the buffer size goes out in 16 KiB partial pieces (no newline in them)
        out.push(frameEntry(buf.subarray(start, start + PARTIAL_LINE_BYTES), stream, timeNs));
        start += PARTIAL_LINE_BYTES;
        continue;
      }
      if (nl < 0) break;
      out.push(frameEntry(buf.subarray(start, lineEnd), stream, timeNs));
      start = lineEnd;
    }
    // a copy: `data` may be a reused read buffer
    if (start < buf.length) this.pending[stream] = buf.slice(start);
    return out;
  }

  /** EOF on a stream: its unfinished line, as a partial entry (none when there is none). */
  flush(stream: LogStream, timeNs: bigint): string[] {
    const rest = this.pending[stream];
    this.pending[stream] = undefined;
    return rest && rest.length > 0 ? [frameEntry(rest, stream, timeNs)] : [];
  }
}

const OPEN_FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT; // close-on-exec: libuv sets it on every open

/** One json-file log: a framer for both streams, one fd, rotation by size. */
export class JsonLogWriter implements OutputSink {
  private fd: number | undefined;
  private size: number;
  private readonly framer = new LineFramer();

  /** Opens (creates 0640, appends to) `path`; its directory must exist. */
  constructor(
    readonly path: string,
    private readonly maxSize: number,
    private readonly maxFile: number,
    private readonly clock: () => bigint = nowNanos,
  ) {
    this.fd = openSync(path, OPEN_FLAGS, 0o640);
    this.size = fstatSync(this.fd).size;
  }

  write(stream: LogStream, data: Uint8Array): void {
    this.append(this.framer.push(stream, data, this.clock()));
  }

  end(stream: LogStream): void {
    this.append(this.framer.flush(stream, this.clock()));
  }

  /** Flushes both streams' unfinished lines and closes the file (idempotent). */
  close(): void {
    if (this.fd === undefined) return;
    this.end("stdout");
    this.end("stderr");
    closeSync(this.fd);
    this.fd = undefined;
  }

  /**
   * The entries of one read go out in as few writes as rotation allows: moby checks the size before
   * each entry, so a batch is cut where the file reached max-size, written, and the file rotated.
   */
  private append(entries: string[]): void {
    let batch = "";
    let batchBytes = 0;
    for (const entry of entries) {
      if (this.maxSize > 0 && this.size + batchBytes >= this.maxSize) {
        this.writeOut(batch);
        batch = "";
        batchBytes = 0;
        this.rotate();
      }
      batch += entry;
      batchBytes += Buffer.byteLength(entry);
    }
    this.writeOut(batch);
  }

  private writeOut(text: string): void {
    if (text === "" || this.fd === undefined) return;
    const bytes = encoder.encode(text);
    try {
      let off = 0;
      while (off < bytes.length) off += writeSync(this.fd, bytes, off);
    } catch {
      // a full disk or a removed file: the container must not stall on its log
    }
    // counted even when lost, so a failing file is still rotated away from
    this.size += bytes.length;
  }

  private rotate(): void {
    try {
      if (this.maxFile <= 1) {
        ftruncateSync(this.fd!, 0);
        this.size = 0;
        return;
      }
      for (let i = this.maxFile - 1; i >= 2; i--) renameQuietly(`${this.path}.${i - 1}`, `${this.path}.${i}`);
      renameSync(this.path, `${this.path}.1`);
      closeSync(this.fd!);
      this.fd = undefined;
      // no O_CREAT of directories: once rm removed the record dir, the log ends here
      this.fd = openSync(this.path, OPEN_FLAGS, 0o640);
      this.size = 0;
    } catch {
      // the directory is gone (rm) or unwritable: keep the old fd if we still have it
      if (this.fd !== undefined) this.size = 0;
    }
  }
}

function renameQuietly(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch {
    // fewer files than max-file so far
  }
}
