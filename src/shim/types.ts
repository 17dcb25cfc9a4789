// The contract between the shim library and one runtime's implementation (in the spirit of the
// Rust crate's `Shim` trait, seed 002): the library parses flags, runs the start/delete actions and
// the serve loop; the runtime says how to start (which group), how to clean up after a dead shim,
// and which task service to serve.
import type { ServiceImpl } from "../ttrpc/server.ts";
import type { Task } from "../gen/containerd/task/v2/shim_pb.ts";
import type { ShimFlags } from "./flags.ts";
import type { Lifecycle } from "./lifecycle.ts";
import type { Logger } from "./logger.ts";
import type { Publisher } from "./publisher.ts";
import type { Monitor } from "./reaper.ts";
import type { RuntimeInfo } from "./runtime-info.ts";

export interface StartOpts {
  id: string;
  namespace: string;
  /** containerd's grpc address (`-address`), part of the socket hash. */
  address: string;
  /** containerd's ttrpc address (TTRPC_ADDRESS), where events go. */
  ttrpcAddress: string;
  publishBinary: string;
  debug: boolean;
  /** The bundle: containerd runs `start` with the bundle as working directory. */
  bundle: string;
  /** stdin of `start`: a protobuf Any of the runtime options, or empty. */
  options: Uint8Array;
  flags: ShimFlags;
}

export interface DeleteOpts {
  id: string;
  namespace: string;
  /** `-bundle`, else the working directory. */
  bundle: string;
  address: string;
  ttrpcAddress: string;
  flags: ShimFlags;
  log: Logger;
}

export interface DeleteResult {
  pid: number;
  exitStatus: number;
  exitedAt: Date;
}

export interface ServeContext {
  id: string;
  namespace: string;
  bundle: string;
  /** The socket this process serves (`-socket`). */
  socket: string;
  containerdAddress: string;
  ttrpcAddress: string;
  debug: boolean;
  log: Logger;
  publisher: Publisher;
  monitor: Monitor;
  lifecycle: Lifecycle;
  /**
   * The bundle whose `log` FIFO receives this process's logs. A grouped shim logs into the bundle
   * it was started for; when that container goes, the service moves the log to a live one.
   */
  logBundle: string;
  /** Points the log at another bundle's FIFO; false if it has none with a reader. */
  logTo(bundle: string): boolean;
}

export interface TaskService {
  impl: ServiceImpl<typeof Task>;
  /** Containers this process serves (the lifecycle's "empty" test). */
  containerCount(): number;
  /** Called once serving stopped: release what is left (fds, timers). */
  close?(): Promise<void> | void;
}

export interface Shim {
  /** The runtime name, e.g. io.containerd.bunker.v1 (for messages). */
  readonly name: string;
  /** The `start` action: returns the address containerd should use (and has written `address`). */
  start(opts: StartOpts): Promise<string>;
  /** The `delete` action, run by containerd after a shim died: clean up one container. */
  delete(opts: DeleteOpts): Promise<DeleteResult>;
  /**
   * The `-info` flag: what this runtime is and supports, given the runtime options containerd sent
   * (an encoded Any, or empty). Optional: a shim without it answers -info with an error.
   */
  info?(options: Uint8Array): Promise<RuntimeInfo>;
  /** Loads what createTaskService would load on demand (a warm spare calls it before it waits). */
  preload?(): Promise<unknown>;
  /** The task service of the serve process (may load its modules on demand). */
  createTaskService(ctx: ServeContext): TaskService | Promise<TaskService>;
}
