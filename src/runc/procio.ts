// One container process's stdio, whatever its kind: pipes copied to containerd's FIFOs (PipeIO),
// or a terminal whose master runc sends over --console-socket (ConsoleCopy). `launch` runs the runc
// command that starts the process (create, exec --detach) and hooks the copy up once it returned.
import { FailedPreconditionError } from "../errdefs.ts";
import type { Syscalls } from "../sys/types.ts";
import { ConsoleCopy, ConsoleSocket } from "./console.ts";
import { PipeIO, stdioPath, type StdioPaths } from "./io.ts";
import type { ProcessIO } from "./runc.ts";

/** runc sends the master before `create`/`exec --detach` returns; this only bounds a broken runc. */
const CONSOLE_WAIT_MS = 10_000;

export class ProcIO {
  private pipes: PipeIO | undefined;
  private socket: ConsoleSocket | undefined;
  private console: ConsoleCopy | undefined;
  private stdinClosed = false;

  constructor(
    readonly paths: StdioPaths,
    private readonly sys: Syscalls,
    pipeDir: string,
  ) {
    if (paths.terminal) {
      // check the paths now, so a bad one fails before runc runs
      stdioPath(paths.stdin);
      stdioPath(paths.stdout);
      this.socket = ConsoleSocket.create({ sys });
    } else {
      this.pipes = new PipeIO(paths, sys, pipeDir);
    }
  }

  /** What runc needs: the process's stdio (pipes), or the console socket (a terminal). */
  runcOptions(): { io: ProcessIO; consoleSocket?: string } {
    if (this.socket) return { io: { stdin: "ignore", stdout: "ignore", stderr: "ignore" }, consoleSocket: this.socket.path };
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
        this.console = new ConsoleCopy(master.fd, { stdin: stdioPath(this.paths.stdin), stdout: stdioPath(this.paths.stdout) }, { sys: this.sys });
        if (this.stdinClosed) this.console.closeStdin();
      } else {
        this.pipes!.attach();
      }
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
  }
}
