// How the manager runs shim binaries' one-shot actions, and learns which shim serves a new task. containerd runs the shim binary's `start`
// action for every task (runtime/v2/binary.go), and so did bunker's manager: 200 concurrent creates
// meant 200 `containerd-shim-bunker-v1 start` processes at once, each a full Bun start-up, all to
// print an address that the manager, after the first, already knew. On a 2-core machine where
// `runc run /bin/true` takes 100-140 ms, half of those starts missed a fixed 10 s deadline.
//
// So, for bunker's own shim, whose grouping rule lives in src/contract and is the manager's to
// apply too: the group's socket address is computed here, and when the manager already holds a live
// connection to it, the id is reserved over that connection (Connect, as `start` itself does) and no
// process is spawned. A `start` for the same group already under way is waited for rather than
// repeated. The actions that remain (the first start of a group, any other runtime's shim, and the
// `delete` after a shim died, 200 at once when a grouped shim of 200 containers is killed) run at
// most ACTION_POOL at a time, and their deadline starts when they leave the queue.
import { availableParallelism } from "node:os";
import { writeAddress, socketAddress } from "../contract/address.ts";
import { bunkerGroup } from "../contract/grouping.ts";
import { BUNKER_RUNTIME } from "../contract/runtime.ts";
import { DeadlineExceededError, ResourceExhaustedError, UnavailableError } from "../errdefs.ts";
import type { ShimConnection } from "./shim.ts";
import type { ExitInfo } from "./events.ts";
import { type ShimCommandConfig, shimDelete, shimStart } from "./shimproc.ts";

/** Shim actions at once: each is a runtime start-up that wants a core. */
export const ACTION_POOL = Math.max(2, availableParallelism());
/** How long a reservation may wait on a shim that answers "too many pending" (creates queue behind it). */
const RESERVE_BUSY_MS = 60_000;
const RESERVE_CALL_MS = 5_000;

/** A counting semaphore: run() waits for one of `size` slots. */
export class Pool {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly size: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.size) await new Promise<void>((r) => this.waiting.push(r));
    else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }

  get queued(): number {
    return this.waiting.length;
  }
}

export interface ShimActionsDeps {
  /** The manager's live connection to an address, if it holds one. */
  liveConnection(address: string): ShimConnection | undefined;
  /** bunker's API address: the first input of the socket hash (the shims get it as -address). */
  apiAddress: string;
  pool?: Pool;
  /** Runs the binary's start action (default: shimproc's shimStart). */
  start?: (cmd: ShimCommandConfig, options: Uint8Array | undefined) => Promise<string>;
  /** Runs the binary's delete action (default: shimproc's shimDelete). */
  delete?: (cmd: ShimCommandConfig) => Promise<ExitInfo>;
  /** The manager's shared connection to an address (dialled if it holds none). */
  connect(address: string, namespace: string): Promise<ShimConnection>;
}

/** The shim that will serve a new task, with the task's id reserved there. */
export interface StartedShim {
  conn: ShimConnection;
  /** Whether this call ran the binary's start action (false: it joined a live group's shim). */
  spawned: boolean;
}

export class ShimActions {
  private readonly pool: Pool;
  private readonly starting = new Map<string, Promise<ShimConnection>>();
  private readonly runStart: (cmd: ShimCommandConfig, options: Uint8Array | undefined) => Promise<string>;
  private readonly runDelete: (cmd: ShimCommandConfig) => Promise<ExitInfo>;
  /** Counters for tests and --debug: how each address was obtained. */
  readonly counts = { spawned: 0, reused: 0 };

  constructor(private readonly deps: ShimActionsDeps) {
    this.pool = deps.pool ?? new Pool(ACTION_POOL);
    this.runStart = deps.start ?? ((cmd, options) => shimStart(cmd, options));
    this.runDelete = deps.delete ?? ((cmd) => shimDelete(cmd));
  }

  /** The binary's `delete` action for a task whose shim is gone, in turn with the other actions. */
  delete(cmd: ShimCommandConfig): Promise<ExitInfo> {
    return this.pool.run(() => this.runDelete(cmd));
  }

  /**
   * The shim that will serve cmd.bundle's task. The connection is made before waiters of the same
   * group are let go, so that they find it live and do not start a second shim.
   */
  async shimFor(runtime: string, cmd: ShimCommandConfig, options: Uint8Array | undefined): Promise<StartedShim> {
    const { bundle } = cmd;
    const startAndConnect = async () => this.deps.connect(await this.spawnStart(cmd, options), bundle.namespace);
    if (runtime !== BUNKER_RUNTIME) return { conn: await startAndConnect(), spawned: true };
    const known = socketAddress(this.deps.apiAddress, bundle.namespace, bunkerGroup(bundle.id, bundle.path, options ?? new Uint8Array()));
    for (;;) {
      const pending = this.starting.get(known);
      if (pending) await pending.catch(() => undefined);
      const conn = this.deps.liveConnection(known);
      if (conn && (await reserve(conn, bundle.id))) {
        writeAddress(bundle.path, known);
        this.counts.reused++;
        return { conn, spawned: false };
      }
      // Another create may have begun a start while we asked: wait for that one instead.
      if (this.starting.has(known)) continue;
      const start = startAndConnect();
      this.starting.set(known, start);
      try {
        return { conn: await start, spawned: true };
      } finally {
        if (this.starting.get(known) === start) this.starting.delete(known);
      }
    }
  }

  private spawnStart(cmd: ShimCommandConfig, options: Uint8Array | undefined): Promise<string> {
    return this.pool.run(() => {
      this.counts.spawned++;
      return this.runStart(cmd, options);
    });
  }
}

/**
 * Reserves id on a live shim (Connect, the shim's own `start` does the same): false when the shim is
 * going away or gone, so that a `start` spawns a new one. A shim with too many reservations pending
 * answers ResourceExhausted until their Creates arrive.
 */
async function reserve(conn: ShimConnection, id: string): Promise<boolean> {
  const deadline = Date.now() + RESERVE_BUSY_MS;
  for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
    if (conn.closed) return false;
    try {
      await conn.task.connect({ id }, { timeoutMs: RESERVE_CALL_MS });
      return true;
    } catch (err) {
      if (err instanceof UnavailableError || err instanceof DeadlineExceededError) return false;
      if (!(err instanceof ResourceExhaustedError) || Date.now() > deadline) throw err;
    }
    await Bun.sleep(delay);
  }
}
