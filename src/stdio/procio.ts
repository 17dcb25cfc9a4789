// One container process's stdio, whatever its kind: pipes copied to containerd's FIFOs (PipeIO),
// or a terminal whose master runc sends over --console-socket (ConsoleCopy). `launch` runs the runc
// command that starts the process (create, exec --detach) and hooks the copy up once it returned.
// The stdout URI's scheme decides where output goes (stdio-uri.ts planProcessIO): FIFOs, a file
// (file://, stdout and stderr appended), docker's json-file log written here (json-file://, one
// JsonLogWriter per process for both streams, or the terminal's output), a logging binary
// (binary://), or nowhere (all empty).
import { FailedPreconditionError } from "../errdefs.ts";
import type { Syscalls } from "../sys/types.ts";
import { ConsoleCopy, ConsoleSocket } from "./console.ts";
import { PipeIO, type StdioPaths } from "./io.ts";
import type { ProcessIO } from "../oci/runtime.ts";
import { JsonLogWriter } from "./json-log.ts";
import { type LoggingBinary, planProcessIO, prepareLogFile, startLoggingBinary } from "./stdio-uri.ts";

/** Who the process is, for a logging binary (CONTAINER_ID, CONTAINER_NAMESPACE). */
export interface ProcIdentity {
  containerId: string;
  namespace: string;
}

/** runc sends the master before `create`/`exec --detach` returns; this only bounds a broken runc. */
const CONSOLE_WAIT_MS = 10_000;

export class ProcIO {
  private pipes: PipeIO | undefined;
  private socket: ConsoleSocket | undefined;
  private console: ConsoleCopy | undefined;
  private logger: LoggingBinary | undefined;
  private jsonLog: JsonLogWriter | undefined;
  private stdinClosed = false;
  /** The terminal's stdin FIFO and output (a path, or the logger's fd). */
  private consoleStdin = "";
  private consoleOut: string | number | JsonLogWriter | undefined;

  private constructor(
    readonly paths: StdioPaths,
    private readonly sys: Syscalls,
  ) {}

  /** Opens FIFOs and files, starts a logging binary: a bad destination fails before runc runs. */
  static async open(paths: StdioPaths, sys: Syscalls, pipeDir: string, who: ProcIdentity): Promise<ProcIO> {
    const io = new ProcIO(paths, sys);
    try {
      const plan = planProcessIO(paths);
      let pipePaths: StdioPaths = { ...paths, stdin: "", stdout: "", stderr: "" };
      if (plan.kind === "fifo") pipePaths = { ...paths, stdin: plan.stdin, stdout: plan.stdout, stderr: plan.stderr };
      else if (plan.kind === "file") {
        prepareLogFile(plan.path);
        pipePaths = { ...paths, stdin: plan.stdin, stdout: plan.path, stderr: plan.path };
      } else if (plan.kind === "json-file") {
        io.jsonLog = new JsonLogWriter(plan.path, plan.maxSize, plan.maxFile);
        pipePaths = { ...paths, stdin: plan.stdin, stdout: "", stderr: "" };
      } else if (plan.kind === "binary") {
        io.logger = await startLoggingBinary({ path: plan.path, args: plan.args, id: who.containerId, namespace: who.namespace, sys });
      }
      if (paths.terminal) {
        io.consoleStdin = pipePaths.stdin;
        io.consoleOut = io.logger ? io.logger.stdout : (io.jsonLog ?? (pipePaths.stdout || undefined));
        io.socket = ConsoleSocket.create({ sys });
      } else if (!io.logger) {
        io.pipes = new PipeIO(pipePaths, sys, pipeDir, io.jsonLog);
      }
      return io;
    } catch (err) {
      io.close();
      throw err;
    }
  }

  /** What runc needs: the process's stdio (pipes, the logger's), or the console socket (a terminal). */
  runcOptions(): { io: ProcessIO; consoleSocket?: string } {
    if (this.socket) return { io: { stdin: "ignore", stdout: "ignore", stderr: "ignore" }, consoleSocket: this.socket.path };
    if (this.logger) return { io: { stdin: "ignore", stdout: this.logger.stdout, stderr: this.logger.stderr } };
    return { io: this.pipes!.runcIO() };
  }

  /** Runs the runc command that starts the process, then starts copying. Closes everything on failure. */
  async launch<T>(run: () => Promise<T>): Promise<T> {
    try {
      const out = await run();
      if (this.socket) {
        const master = await this.socket.receiveMaster({ timeoutMs: CONSOLE_WAIT_MS });
        this.socket.close();
        this.socket = undefined;
        this.console = new ConsoleCopy(master.fd, { stdin: this.consoleStdin, ...(this.consoleOut !== undefined ? { stdout: this.consoleOut } : {}) }, { sys: this.sys });
        if (this.stdinClosed) this.console.closeStdin();
      } else {
        this.pipes?.attach();
      }
      // the process holds the logger's write ends now (or the console copy writes to its stdout)
      this.logger?.closeAfterStart({ keepStdout: this.paths.terminal });
      return out;
    } catch (err) {
      this.close();
      throw err;
    }
  }

  resize(width: number, height: number): void {
    if (!this.paths.terminal) return; // containerd's shim ignores a resize of a process without a terminal
    if (!this.console) throw new FailedPreconditionError("the process's terminal is not ready");
    this.console.resize(width, height);
  }

  closeStdin(): void {
    this.stdinClosed = true;
    this.pipes?.closeStdin();
    this.console?.closeStdin();
  }

  async drain(): Promise<void> {
    await (this.console ?? this.pipes)?.drain();
  }

  close(): void {
    this.socket?.close();
    this.socket = undefined;
    this.pipes?.close();
    this.console?.close();
    // after the copies stopped: the unfinished last lines are written, then the file is closed
    this.jsonLog?.close();
    this.jsonLog = undefined;
    // the logger sees EOF on its pipes (and is ended if it lingers)
    void this.logger?.close().catch(() => undefined);
    this.logger = undefined;
  }
}
