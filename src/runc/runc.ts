// A client for the runc binary (go-runc's Runc, the rust-extensions runc crate): builds command
// lines with the global flags containerd's shim uses (--root <root>/<ns>, --log <bundle>/log.json,
// --log-format json), runs them through spawnTracked (the shim is a subreaper and must not steal
// Bun's exit statuses), and turns failures into errdefs errors that keep runc's exit code, stdout,
// stderr and the last message runc wrote to its log.
import type { FileSink } from "bun";
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { AlreadyExistsError, type BunkerError, errorMessage, NotFoundError, UnknownError } from "../errdefs.ts";

export const DEFAULT_RUNC_ROOT = "/run/containerd/runc";

export type SpawnFn = <const In extends Bun.SpawnOptions.Writable, const Out extends Bun.SpawnOptions.Readable, const Err extends Bun.SpawnOptions.Readable>(
  cmd: string[],
  opts: Bun.SpawnOptions.SpawnOptions<In, Out, Err>,
) => Bun.Subprocess<In, Out, Err>;

export interface RuncConfig {
  /** The runc binary (options.BinaryName); "runc" from PATH by default. */
  command?: string;
  /** --root: containerd's shim passes <root>/<namespace>. */
  root?: string;
  /** --log file; --log-format json is added with it. */
  log?: string;
  logFormat?: "json" | "text";
  debug?: boolean;
  systemdCgroup?: boolean;
  criu?: string;
  rootless?: boolean;
  /**
   * How runc is run (default Bun.spawn). A subreaper (the shim's serve process) passes src/sys
   * spawnTracked, or its orphan sweep could steal runc's exit status from Bun; the start and delete
   * actions are no subreapers and keep Bun.spawn.
   */
  spawn?: SpawnFn;
}

/** What a failed runc invocation left behind. */
export interface RuncFailure {
  argv: string[];
  exitCode: number;
  stdout: string;
  stderr: string;
  /** The last error runc logged to --log during this invocation ("" if none). */
  logMessage: string;
}

export type RuncError = BunkerError & { runc: RuncFailure };

export function isRuncError(err: unknown): err is RuncError {
  return typeof err === "object" && err !== null && "runc" in err;
}

import type { CheckpointOptions, ContainerState as RuncState, CreateOptions, ExecOptions, OciRuntime, ProcessIO, ProcessPipes, RestoreOptions, RuntimeFeatures } from "../oci/runtime.ts";
import { checkpointArgs, restoreArgs } from "./criu.ts";
export type { CreateOptions, ExecOptions, ProcessIO, ProcessPipes, RuncState };

export interface RuncVersion {
  runc: string;
  commit: string;
  spec: string;
}

export function parseVersion(text: string): RuncVersion {
  const v: RuncVersion = { runc: "", commit: "", spec: "" };
  const lines = text.trim().split("\n");
  if (!lines[0]?.startsWith("runc version ")) return v;
  v.runc = lines[0].slice("runc version ".length);
  for (const line of lines.slice(1)) {
    if (line.startsWith("commit: ")) v.commit = line.slice(8);
    else if (line.startsWith("spec: ")) v.spec = line.slice(6);
  }
  return v;
}

/** The last error-level message among JSON log lines (runc logs one object per line). */
export function lastLogError(text: string): string {
  let last = "";
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const entry = JSON.parse(line) as { level?: string; msg?: string };
      if (entry.level === "error" && typeof entry.msg === "string") last = entry.msg;
    } catch {
      // a line torn by a concurrent writer is skipped, not fatal
    }
  }
  return last;
}

/** Picks the errdefs class from runc's wording, as containerd's shim does for its callers. */
export function runcError(what: string, f: RuncFailure): RuncError {
  const detail = f.logMessage || f.stderr.trim() || f.stdout.trim() || `exit status ${f.exitCode}`;
  // runc 1.1 already says "runc create failed: ..." in its log; do not say it twice
  const message = detail.startsWith("runc ") ? detail : `runc ${what} failed: ${detail}`;
  let err: BunkerError;
  if (/container does not exist|container .* does not exist/.test(detail)) err = new NotFoundError(message);
  else if (/already exists|is already in use/.test(detail)) err = new AlreadyExistsError(message);
  else err = new UnknownError(message);
  return Object.assign(err, { runc: f });
}

const LOG_READ_MAX = 64 * 1024;

export class Runc implements OciRuntime {
  readonly command: string;
  constructor(readonly config: RuncConfig = {}) {
    this.command = config.command || "runc";
  }

  /** The global flags, in go-runc's order. */
  globalArgs(): string[] {
    const c = this.config;
    const out: string[] = [];
    if (c.root) out.push("--root", c.root);
    if (c.debug) out.push("--debug");
    if (c.log) out.push("--log", c.log, "--log-format", c.logFormat ?? "json");
    if (c.criu) out.push("--criu", c.criu);
    if (c.systemdCgroup) out.push("--systemd-cgroup");
    if (c.rootless !== undefined) out.push(`--rootless=${c.rootless}`);
    return out;
  }

  argv(...args: string[]): string[] {
    return [this.command, ...this.globalArgs(), ...args];
  }

  static createArgs(id: string, bundle: string, o: CreateOptions = {}): string[] {
    const out = ["create", "--bundle", bundle];
    if (o.pidFile) out.push("--pid-file", resolve(o.pidFile));
    if (o.consoleSocket) out.push("--console-socket", o.consoleSocket);
    if (o.noPivot) out.push("--no-pivot");
    if (o.noNewKeyring) out.push("--no-new-keyring");
    if (o.detach) out.push("--detach");
    out.push(id);
    return out;
  }

  static execArgs(id: string, processFile: string, o: ExecOptions = {}): string[] {
    const out = ["exec", "--process", processFile];
    if (o.consoleSocket) out.push("--console-socket", o.consoleSocket);
    if (o.detach) out.push("--detach");
    if (o.pidFile) out.push("--pid-file", resolve(o.pidFile));
    out.push(id);
    return out;
  }

  private logSize(): number {
    if (!this.config.log) return 0;
    try {
      return statSync(this.config.log).size;
    } catch {
      return 0;
    }
  }

  /** What runc appended to its log since `from` (its last error), read without blocking on large logs. */
  private logSince(from: number): string {
    if (!this.config.log) return "";
    let fd: number;
    try {
      fd = openSync(this.config.log, "r");
    } catch {
      return "";
    }
    try {
      const size = statSync(this.config.log).size;
      const start = Math.max(from, size - LOG_READ_MAX);
      const buf = Buffer.alloc(Math.max(0, size - start));
      const n = buf.length ? readSync(fd, buf, 0, buf.length, start) : 0;
      return lastLogError(buf.subarray(0, n).toString("utf8"));
    } finally {
      closeSync(fd);
    }
  }

  private env(): Record<string, string | undefined> {
    // NOTIFY_SOCKET makes runc wait for systemd readiness; only systemd itself should set it
    const env = { ...process.env };
    delete env.NOTIFY_SOCKET;
    return env;
  }

  private spawn<const In extends Bun.SpawnOptions.Writable, const Out extends Bun.SpawnOptions.Readable, const Err extends Bun.SpawnOptions.Readable>(
    argv: string[],
    opts: Bun.SpawnOptions.SpawnOptions<In, Out, Err>,
  ): Bun.Subprocess<In, Out, Err> {
    try {
      return (this.config.spawn ?? Bun.spawn)(argv, opts);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        throw new NotFoundError(`runc binary ${JSON.stringify(this.command)} not found`, { cause: err });
      }
      throw err;
    }
  }

  /** Runs a runc command to completion; resolves with its stdout, throws a RuncError on failure. */
  async run(what: string, args: string[], opts: { input?: string; cwd?: string } = {}): Promise<string> {
    const argv = this.argv(...args);
    const from = this.logSize();
    const proc = this.spawn(argv, {
      stdin: opts.input === undefined ? "ignore" : new Blob([opts.input]),
      stdout: "pipe",
      stderr: "pipe",
      env: this.env(),
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
    });
    const [stdout, stderr, exitCode] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    if (exitCode !== 0) throw runcError(what, { argv, exitCode, stdout, stderr, logMessage: this.logSince(from) });
    return stdout;
  }

  /**
   * Runs a command that leaves a container process behind (create, exec --detach). Its stdio is the
   * process's stdio: runc exits, the pipes stay with the process, and the caller copies them.
   */
  private async spawnWithIO(what: string, args: string[], io: ProcessIO = {}): Promise<ProcessPipes> {
    const argv = this.argv(...args);
    const from = this.logSize();
    const proc = this.spawn(argv, {
      stdin: io.stdin ?? "ignore",
      stdout: io.stdout ?? "ignore",
      stderr: io.stderr ?? "ignore",
      env: this.env(),
    });
    const pipes: ProcessPipes = {
      stdin: io.stdin === "pipe" ? (proc.stdin as FileSink) : undefined,
      stdout: io.stdout === "pipe" ? (proc.stdout as ReadableStream<Uint8Array>) : undefined,
      stderr: io.stderr === "pipe" ? (proc.stderr as ReadableStream<Uint8Array>) : undefined,
    };
    const exitCode = await proc.exited;
    if (exitCode !== 0) {
      // runc's own complaints went to --log; the pipes only hold what a half-started process wrote
      const [stdout, stderr] = await Promise.all([drainText(pipes.stdout), drainText(pipes.stderr)]);
      void pipes.stdin?.end();
      throw runcError(what, { argv, exitCode, stdout, stderr, logMessage: this.logSince(from) });
    }
    return pipes;
  }

  async version(): Promise<RuncVersion> {
    return parseVersion(await this.run("version", ["--version"]));
  }

  async state(id: string): Promise<RuncState> {
    return JSON.parse(await this.run("state", ["state", id])) as RuncState;
  }

  async list(): Promise<RuncState[]> {
    return (JSON.parse(await this.run("list", ["list", "--format", "json"])) as RuncState[] | null) ?? [];
  }

  create(id: string, bundle: string, opts: CreateOptions = {}): Promise<ProcessPipes> {
    return this.spawnWithIO("create", Runc.createArgs(id, bundle, opts), opts.io);
  }

  /** `runc restore`; stdio as for create. */
  restore(id: string, opts: RestoreOptions, io?: ProcessIO): Promise<ProcessPipes> {
    return this.spawnWithIO("restore", restoreArgs(id, { ...opts, ...(opts.pidFile ? { pidFile: resolve(opts.pidFile) } : {}) }), io);
  }

  async start(id: string): Promise<void> {
    await this.run("start", ["start", id]);
  }

  async delete(id: string, opts: { force?: boolean } = {}): Promise<void> {
    await this.run("delete", ["delete", ...(opts.force ? ["--force"] : []), id]);
  }

  /** NotFoundError when nothing is left to signal (go: checkKillError), as the OciRuntime seam says. */
  async kill(id: string, signal: number, opts: { all?: boolean } = {}): Promise<void> {
    try {
      await this.run("kill", ["kill", ...(opts.all ? ["--all"] : []), id, String(signal)]);
    } catch (err) {
      if (isRuncError(err) && !(err instanceof NotFoundError) && /os: process already finished|container not running|no such process/.test(errorMessage(err))) {
        throw Object.assign(new NotFoundError("process already finished: not found", { cause: err }), { runc: err.runc });
      }
      throw err;
    }
  }

  async checkpoint(id: string, opts: CheckpointOptions): Promise<void> {
    await this.run("checkpoint", checkpointArgs(id, opts));
  }

  /** `runc features` (runc 1.1+, experimental there): undefined when this runc has no such command. */
  async features(): Promise<RuntimeFeatures | undefined> {
    try {
      return JSON.parse(await this.run("features", ["features"])) as RuntimeFeatures;
    } catch (err) {
      if (isRuncError(err)) return undefined;
      throw err;
    }
  }

  async pause(id: string): Promise<void> {
    await this.run("pause", ["pause", id]);
  }

  async resume(id: string): Promise<void> {
    await this.run("resume", ["resume", id]);
  }

  /** The pids inside the container (`runc ps --format json`). */
  async ps(id: string): Promise<number[]> {
    return (JSON.parse(await this.run("ps", ["ps", "--format", "json", id])) as number[] | null) ?? [];
  }

  /** `runc update --resources -` with the OCI LinuxResources as JSON on stdin. */
  async update(id: string, resources: unknown): Promise<void> {
    await this.run("update", ["update", "--resources", "-", id], { input: JSON.stringify(resources) });
  }

  /** `runc exec --process <file>` with the OCI Process spec written to a private temp file. */
  async exec(id: string, processSpec: unknown, opts: ExecOptions = {}): Promise<ProcessPipes> {
    const dir = mkdtempSync(join(process.env.XDG_RUNTIME_DIR || tmpdir(), "runc-process-"));
    const file = join(dir, "process.json");
    try {
      writeFileSync(file, JSON.stringify(processSpec), { mode: 0o600 });
      return await this.spawnWithIO("exec", Runc.execArgs(id, file, opts), opts.io);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

async function drainText(stream: ReadableStream<Uint8Array> | undefined): Promise<string> {
  if (!stream) return "";
  // a failed create normally leaves no process holding the pipe; bound the wait in case one does
  let timer: Timer | undefined;
  const timeout = new Promise<string>((r) => (timer = setTimeout(() => r(""), 1000)));
  const text = await Promise.race([new Response(stream).text(), timeout]);
  clearTimeout(timer);
  if (text === "") void stream.cancel().catch(() => undefined);
  return text.slice(-4096);
}
