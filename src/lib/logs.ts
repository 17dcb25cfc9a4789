// A container's output for logs() and the log waits, read from the json-file log bunker's shim
// keeps for every detached container (`<root>/containers/<ns>/<id>/<id>-json.log`, docker's
// format: `{"log":"…\n","stream":"stdout","time":"…"}` per line). Reading the file, as `docker
// logs` does, rather than holding the container's pipes in this process means the output is there
// from the container's start whoever asks and whenever, is never lost while nobody reads, and a
// chatty container never blocks on us; both the embedded and the daemon paths write the same file.
// The cursor keeps an fd open: when the shim rotates the file (rename to .1), we finish the old
// one through it and go on with the new. (The CLI's reader, src/cli/log-reader.ts, is the CLI's;
// this one is the few lines the library needs.)
import { closeSync, fstatSync, openSync, readSync, statSync } from "node:fs";

export type Stream = "stdout" | "stderr";

export interface LogLine {
  stream: Stream;
  /** The line without its newline. */
  text: string;
}

/** json-file bytes in, whole lines out; partial entries (no trailing \n) are joined per stream. */
export class JsonLogLines {
  private pending = "";
  private readonly partial: Record<Stream, string> = { stdout: "", stderr: "" };
  private readonly decoder = new TextDecoder();

  push(bytes: Uint8Array): LogLine[] {
    this.pending += this.decoder.decode(bytes, { stream: true });
    const out: LogLine[] = [];
    let nl: number;
    while ((nl = this.pending.indexOf("\n")) >= 0) {
      const raw = this.pending.slice(0, nl);
      this.pending = this.pending.slice(nl + 1);
      let entry: { log?: unknown; stream?: unknown };
      try {
        entry = JSON.parse(raw) as { log?: unknown; stream?: unknown };
      } catch {
        continue; // a damaged line is skipped, as docker's reader does
      }
      if (typeof entry.log !== "string") continue;
      const stream: Stream = entry.stream === "stderr" ? "stderr" : "stdout";
      const text = this.partial[stream] + entry.log;
      if (!text.endsWith("\n")) {
        this.partial[stream] = text;
        continue;
      }
      this.partial[stream] = "";
      out.push({ stream, text: text.slice(0, -1) });
    }
    return out;
  }

  /** The unterminated last lines (a process's output that ended without a newline). */
  flush(): LogLine[] {
    const out: LogLine[] = [];
    for (const stream of ["stdout", "stderr"] as const) {
      if (this.partial[stream] !== "") out.push({ stream, text: this.partial[stream] });
      this.partial[stream] = "";
    }
    return out;
  }
}

/** Reads a json-file log from its start and then what is added, across rotation. */
export class LogCursor {
  private fd: number | undefined;
  private readonly lines = new JsonLogLines();
  private readonly buf = Buffer.alloc(64 << 10);

  constructor(readonly path: string) {}

  /** Lines added since the last call (all of them the first time); [] while the file does not exist. */
  read(): LogLine[] {
    if (this.fd === undefined) {
      try {
        this.fd = openSync(this.path, "r");
      } catch {
        return [];
      }
    }
    const out = this.drain(this.fd);
    // rotated: the path names a new file; ours (renamed) is complete, so go on with the new one
    let current: number | undefined;
    try {
      current = statSync(this.path).ino;
    } catch {
      current = undefined;
    }
    if (current !== undefined && current !== fstatSync(this.fd).ino) {
      closeSync(this.fd);
      this.fd = undefined;
      out.push(...this.read());
    }
    return out;
  }

  /** The unterminated last lines, once the writer is known to be done. */
  finish(): LogLine[] {
    return [...this.read(), ...this.lines.flush()];
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private drain(fd: number): LogLine[] {
    const out: LogLine[] = [];
    for (;;) {
      const n = readSync(fd, this.buf, 0, this.buf.length, null);
      if (n <= 0) return out;
      out.push(...this.lines.push(this.buf.subarray(0, n)));
    }
  }
}
