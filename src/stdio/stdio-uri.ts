// Process stdio destinations as containerd's runc shim understands them (pkg/process/io.go
// createIO): the scheme of the *stdout* URI decides for the whole process.
//   ""  (all three empty)          null IO: runc gets /dev/null
//   /path or fifo:///path          FIFOs containerd made: copied through pipes (src/stdio/io.ts PipeIO)
//   file:///abs/path               stdout and stderr appended to one file (created 0644, dirs 0755); stdin still a FIFO
//   json-file:///abs/path?max-size=BYTES&max-file=N
//                                  bunker's own: docker's json-file log written by the shim (json-log.ts),
//                                  stdout and stderr framed apart and rotated; the directory must exist
//                                  (contract/log-uri.ts builds it; other shims refuse the scheme)
//   binary:///abs/path?k=v&flag    a logging binary: fd 3 = stdout pipe, fd 4 = stderr pipe, fd 5 = a
//                                  readiness pipe it closes (or writes to) when ready; env is only
//                                  CONTAINER_ID and CONTAINER_NAMESPACE; args are k, v per query pair;
//                                  stdin is not connected
//
//   parseStdioUri(uri): StdioUri
//   planProcessIO({ stdin, stdout, stderr }): StdioPlan
//   prepareLogFile(path): void                           file://: the file exists before PipeIO opens it
//   startLoggingBinary({ path, args, id, namespace }): Promise<LoggingBinary>
//   openOutputFd(path): number      a FIFO O_RDWR|O_NONBLOCK (never waits for a reader) or a file O_APPEND
//   openStdinFifo(path): { fd, hold }   read end O_NONBLOCK + our own write end, so EOF waits for closeStdin
//
// Wiring (Create/Exec): plan = planProcessIO(req). "null": runc io all "ignore". "fifo": PipeIO as
// today. "file": prepareLogFile(plan.path), then PipeIO with { stdin, stdout: plan.path, stderr: plan.path }.
// "binary": logger = await startLoggingBinary(...); runc io { stdout: logger.stdout, stderr: logger.stderr };
// after runc create/exec returned: logger.closeAfterStart(); at Delete: await logger.close().
// With a terminal, give logger.stdout to the console copy and closeAfterStart({ keepStdout: true }).
import type { Subprocess } from "bun";
import { closeSync, constants, fstatSync, mkdirSync, openSync } from "node:fs";
import { dirname, isAbsolute } from "node:path";
import { InvalidArgumentError, UnavailableError } from "../errdefs.ts";
import { spawnTracked } from "../sys/children.ts";
import { sys, type Syscalls } from "../sys/index.ts";

export type StdioUri =
  | { scheme: "null" }
  | { scheme: "fifo"; path: string }
  | { scheme: "file"; path: string }
  | { scheme: "json-file"; path: string; maxSize: number; maxFile: number }
  | { scheme: "binary"; path: string; args: string[] };

export type StdioPlan =
  | { kind: "null" }
  | { kind: "fifo"; stdin: string; stdout: string; stderr: string }
  | { kind: "file"; path: string; stdin: string }
  | { kind: "json-file"; path: string; maxSize: number; maxFile: number; stdin: string }
  | { kind: "binary"; path: string; args: string[] };

function decode(s: string, uri: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new InvalidArgumentError(`unable to parse stdio uri ${JSON.stringify(uri)}: bad escape`);
  }
}

/** One stdio URI. A string without "scheme://" is a plain FIFO path (containerd's default). */
export function parseStdioUri(uri: string): StdioUri {
  if (uri === "") return { scheme: "null" };
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)(?:\?([^#]*))?(?:#.*)?$/.exec(uri);
  if (!m) return { scheme: "fifo", path: uri };
  const scheme = m[1]!.toLowerCase();
  const [, , host = "", rawPath = "", query] = m;
  if (scheme !== "fifo" && scheme !== "file" && scheme !== "binary" && scheme !== "json-file") {
    throw new InvalidArgumentError(`unknown STDIO scheme ${scheme}`);
  }
  if (host !== "") throw new InvalidArgumentError(`stdio uri ${JSON.stringify(uri)} has a host; write ${scheme}:///absolute/path`);
  const path = decode(rawPath, uri);
  if (!isAbsolute(path)) throw new InvalidArgumentError(`stdio uri ${JSON.stringify(uri)} needs an absolute path`);
  if (scheme === "json-file") return { scheme, path, ...jsonFileQuery(query ?? "", uri) };
  if (scheme !== "binary") {
    if (query !== undefined) throw new InvalidArgumentError(`stdio uri ${JSON.stringify(uri)}: ${scheme}:// takes no query`);
    return { scheme, path };
  }
  // Go's NewBinaryCmd: for each query key, the key then its first value ("" for a bare key)
  const args: string[] = [];
  if (query) {
    const seen = new Set<string>();
    for (const pair of query.split("&")) {
      if (pair === "") continue;
      const eq = pair.indexOf("=");
      const key = decode((eq < 0 ? pair : pair.slice(0, eq)).replace(/\+/g, " "), uri);
      const value = eq < 0 ? "" : decode(pair.slice(eq + 1).replace(/\+/g, " "), uri);
      if (seen.has(key)) continue; // Go keeps only the first value of a repeated key
      seen.add(key);
      args.push(key, value);
    }
  }
  return { scheme: "binary", path, args };
}

/** json-file://'s query: max-size in bytes (0: never rotate) and max-file, both plain integers. */
function jsonFileQuery(query: string, uri: string): { maxSize: number; maxFile: number } {
  const o = { maxSize: 0, maxFile: 1 };
  for (const pair of query.split("&")) {
    if (pair === "") continue;
    const [key = "", value = ""] = pair.split("=", 2);
    if (!/^\d{1,15}$/.test(value)) throw new InvalidArgumentError(`stdio uri ${JSON.stringify(uri)}: ${key} must be a whole number`);
    if (key === "max-size") o.maxSize = Number(value);
    else if (key === "max-file" && Number(value) >= 1) o.maxFile = Number(value);
    else throw new InvalidArgumentError(`stdio uri ${JSON.stringify(uri)}: bad option ${JSON.stringify(pair)}`);
  }
  return o;
}

/** How a process's stdio is served, decided by stdout's scheme as containerd does. */
export function planProcessIO(stdio: { stdin: string; stdout: string; stderr: string }): StdioPlan {
  if (stdio.stdin === "" && stdio.stdout === "" && stdio.stderr === "") return { kind: "null" };
  const out = parseStdioUri(stdio.stdout);
  switch (out.scheme) {
    case "file":
      return { kind: "file", path: out.path, stdin: fifoPath(stdio.stdin) };
    case "json-file":
      return { kind: "json-file", path: out.path, maxSize: out.maxSize, maxFile: out.maxFile, stdin: fifoPath(stdio.stdin) };
    case "binary":
      return { kind: "binary", path: out.path, args: out.args };
    default:
      return { kind: "fifo", stdin: fifoPath(stdio.stdin), stdout: fifoPath(stdio.stdout), stderr: fifoPath(stdio.stderr) };
  }
}

/** The FIFO path of a stdin/stderr URI ("" stays ""); other schemes are not FIFOs. */
function fifoPath(uri: string): string {
  const u = parseStdioUri(uri);
  if (u.scheme === "null") return "";
  if (u.scheme !== "fifo") throw new InvalidArgumentError(`stdio ${JSON.stringify(uri)}: ${u.scheme}:// is only valid for stdout`);
  return u.path;
}

/** file://: creates the directories (0755) and the file (0644, appended to, never truncated). */
export function prepareLogFile(path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  closeSync(openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o644));
}

/**
 * An output destination opened without blocking: a FIFO O_RDWR|O_NONBLOCK (Linux lets that open
 * succeed without a reader, and our read end means no EPIPE when containerd goes away); anything
 * else O_WRONLY|O_APPEND.
 */
export function openOutputFd(path: string): number {
  const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
  if (fstatSync(fd).isFIFO()) return fd;
  closeSync(fd);
  return openSync(path, constants.O_WRONLY | constants.O_APPEND);
}

/** The stdin FIFO: a non-blocking read end, and a write end of ours so EOF comes only after CloseIO. */
export function openStdinFifo(path: string): { fd: number; hold: number } {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    return { fd, hold: openSync(path, constants.O_WRONLY | constants.O_NONBLOCK) };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

export interface LoggingBinaryOptions {
  path: string;
  args?: string[];
  /** The container id and namespace the binary is told about (CONTAINER_ID, CONTAINER_NAMESPACE). */
  id: string;
  namespace: string;
  /** Give up waiting for readiness after this long (containerd waits forever). */
  readyTimeoutMs?: number;
  sys?: Syscalls;
}

/** containerd gives a logger 12 s between SIGTERM and SIGKILL. */
const TERM_TIMEOUT_MS = 12_000;

export class LoggingBinary {
  private closed = false;
  private constructor(
    private readonly proc: Subprocess,
    /** Write end of the stdout pipe: runc's (or the console copy's) stdout. */
    readonly stdout: number,
    /** Write end of the stderr pipe: runc's stderr. */
    readonly stderr: number,
    private readonly readEnds: number[],
    private readonly s: Syscalls,
  ) {}

  get pid(): number {
    return this.proc.pid;
  }

  /** Resolves with the logger's exit code once it has exited. */
  get exited(): Promise<number> {
    return this.proc.exited;
  }

  /** Starts the logger and waits until it closed (or wrote to) its readiness fd 5. */
  static async start(opts: LoggingBinaryOptions): Promise<LoggingBinary> {
    const s = opts.sys ?? sys();
    const fds: number[] = [];
    const pipe = () => {
      const p = s.pipe();
      fds.push(...p);
      return p;
    };
    let proc: Subprocess | undefined;
    try {
      const [outR, outW] = pipe();
      const [errR, errW] = pipe();
      const [readyR, readyW] = pipe();
      proc = spawnTracked([opts.path, ...(opts.args ?? [])], {
        stdio: ["ignore", "ignore", "ignore", outR, errR, readyW],
        env: { CONTAINER_ID: opts.id, CONTAINER_NAMESPACE: opts.namespace },
      });
      s.close(readyW);
      fds.splice(fds.indexOf(readyW), 1);
      await waitReady(s, readyR, opts.readyTimeoutMs);
      s.close(readyR);
      fds.splice(fds.indexOf(readyR), 1);
      return new LoggingBinary(proc, outW, errW, [outR, errR], s);
    } catch (err) {
      for (const fd of fds) s.close(fd);
      if (proc) proc.kill("SIGKILL");
      if (err instanceof Error && "code" in err && err.code === "ENOENT") {
        throw new InvalidArgumentError(`logging binary ${opts.path} not found`, { cause: err });
      }
      throw err;
    }
  }

  /**
   * After runc create/exec returned (the process holds the write ends): closes the read ends (the
   * logger has its own) and our write ends, so the logger sees EOF when the process and its
   * children are gone. keepStdout leaves `stdout` open for a console copy that writes to it.
   */
  closeAfterStart(opts: { keepStdout?: boolean } = {}): void {
    for (const fd of this.readEnds.splice(0)) this.s.close(fd);
    if (!opts.keepStdout) this.closeFd("stdout");
    this.closeFd("stderr");
  }

  private readonly open = { stdout: true, stderr: true };
  private closeFd(which: "stdout" | "stderr"): void {
    if (!this.open[which]) return;
    this.open[which] = false;
    this.s.close(this[which]);
  }

  /** Closes every pipe end, then SIGTERM; SIGKILL if the logger is still there after termTimeoutMs. */
  async close(termTimeoutMs = TERM_TIMEOUT_MS): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.closeAfterStart();
    this.closeFd("stdout");
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill("SIGTERM");
    let timer: Timer | undefined;
    const timeout = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), termTimeoutMs)));
    const r = await Promise.race([this.proc.exited, timeout]);
    clearTimeout(timer);
    if (r === "timeout") {
      this.proc.kill("SIGKILL");
      await this.proc.exited;
    }
  }
}

/** Reads the readiness pipe until its first byte or EOF, without blocking the event loop. */
async function waitReady(s: Syscalls, fd: number, timeoutMs: number | undefined): Promise<void> {
  s.setNonblock(fd, true);
  const reader = Bun.file(fd).stream().getReader();
  let timer: Timer | undefined;
  try {
    const read = reader.read().then(() => "ready" as const);
    const timeout =
      timeoutMs === undefined ? new Promise<never>(() => {}) : new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), timeoutMs)));
    if ((await Promise.race([read, timeout])) === "timeout") {
      throw new UnavailableError(`logging binary did not get ready within ${timeoutMs} ms`);
    }
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => undefined);
  }
}

export const startLoggingBinary = (opts: LoggingBinaryOptions): Promise<LoggingBinary> => LoggingBinary.start(opts);
