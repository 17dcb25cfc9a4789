// The OCI runtime seam: what bunker's task service asks of an OCI runtime (runc, or a second one),
// in the shape of go-runc's client, which containerd's runc shim drives. The service receives a
// factory and never constructs a runtime itself; src/runc implements it, and
// tests/support/fake-oci-runtime.ts is a recording fake that lets unit tests pin the service's
// ordering rules without root. Errors are errdefs classes, classified once per implementation:
// NotFoundError for "no such container" and, from kill, for "nothing left to signal";
// AlreadyExistsError for an id already taken.
import type { FileSink } from "bun";

/** stdio of a runtime command that starts a container process; "pipe" gives the caller the streams. */
export type Stdio = "pipe" | "ignore" | "inherit" | number;

export interface ProcessIO {
  stdin?: Stdio;
  stdout?: Stdio;
  stderr?: Stdio;
}

export interface CreateOptions {
  pidFile?: string;
  consoleSocket?: string;
  detach?: boolean;
  noPivot?: boolean;
  noNewKeyring?: boolean;
  io?: ProcessIO;
}

export interface ExecOptions {
  pidFile?: string;
  consoleSocket?: string;
  detach?: boolean;
  io?: ProcessIO;
}

/** The pipes the runtime left to the container process, when the caller asked for "pipe". */
export interface ProcessPipes {
  stdin: FileSink | undefined;
  stdout: ReadableStream<Uint8Array> | undefined;
  stderr: ReadableStream<Uint8Array> | undefined;
}

/** A container's state as `runc state` reports it (libcontainer's State, the fields containerd reads). */
export interface ContainerState {
  ociVersion?: string;
  id: string;
  pid: number;
  status: "created" | "running" | "pausing" | "paused" | "stopped" | string;
  bundle: string;
  rootfs: string;
  created: string;
  annotations?: Record<string, string>;
}

/** go-runc's CheckpointOpts: the CRIU options checkpoint and restore share. */
export interface CriuOptions {
  imagePath: string;
  workPath?: string;
  parentPath?: string;
  openTcp?: boolean;
  externalUnixSockets?: boolean;
  terminal?: boolean;
  pageServer?: string;
  fileLocks?: boolean;
  cgroupsMode?: string;
  emptyNamespaces?: string[];
  lazyPages?: boolean;
}

export interface CheckpointOptions extends CriuOptions {
  /** The container keeps running after the dump (containerd's default: CheckpointOptions.exit false). */
  leaveRunning?: boolean;
}

/** go-runc's RestoreOpts: the checkpoint's CRIU options, and how the restored container runs. */
export interface RestoreOptions extends CriuOptions {
  bundle: string;
  detach?: boolean;
  pidFile?: string;
  consoleSocket?: string;
  noPivot?: boolean;
  noSubreaper?: boolean;
}

/** What a runtime says it supports (the OCI runtime-spec's features document, `runc features`). */
export interface RuntimeFeatures {
  ociVersionMin?: string;
  ociVersionMax?: string;
  hooks?: string[];
  mountOptions?: string[];
  linux?: Record<string, unknown>;
  annotations?: Record<string, string>;
}

export interface OciRuntime {
  /** Creates the container (its init waits for start); the pid goes to opts.pidFile. */
  create(id: string, bundle: string, opts?: CreateOptions): Promise<ProcessPipes>;
  start(id: string): Promise<void>;
  /** Runs a process (an OCI Process spec) in the container; with detach, returns once it runs. */
  exec(id: string, processSpec: unknown, opts?: ExecOptions): Promise<ProcessPipes>;
  kill(id: string, signal: number, opts?: { all?: boolean }): Promise<void>;
  delete(id: string, opts?: { force?: boolean }): Promise<void>;
  state(id: string): Promise<ContainerState>;
  /** The pids inside the container. */
  ps(id: string): Promise<number[]>;
  pause(id: string): Promise<void>;
  resume(id: string): Promise<void>;
  /** OCI LinuxResources. */
  update(id: string, resources: unknown): Promise<void>;
  /** Dumps the container's processes with CRIU into opts.imagePath. */
  checkpoint(id: string, opts: CheckpointOptions): Promise<void>;
  /** Brings a checkpointed container back in opts.bundle; stdio as for create. */
  restore(id: string, opts: RestoreOptions, io?: ProcessIO): Promise<ProcessPipes>;
  /** What the runtime supports; undefined when it cannot say (runc before 1.1). */
  features(): Promise<RuntimeFeatures | undefined>;
}
