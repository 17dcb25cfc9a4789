// The `start` action's machinery: find or start the serve process of a group. Like Go's shim, a
// `start` that needs a new serve process binds the socket itself, passes the listener as fd 3
// (Bun.listen takes an inherited fd), prints the address and exits without waiting: containerd's
// first connection waits in the socket's backlog while the serve process loads. Concurrent starts
// for one group (20 `ctr run` at once) are serialized by a lock file next to the socket, so
// exactly one serve process is spawned; the others find it live and reserve their container on it.
import { closeSync, linkSync, lstatSync, openSync, readFileSync, statSync, unlinkSync, writeFileSync, writeSync } from "node:fs";
import { DeadlineExceededError, ResourceExhaustedError, UnavailableError } from "../errdefs.ts";
import { goDir, goJoin } from "../gopath.ts";
import { IDLE_ENV } from "../idle.ts";
import { pidAlive } from "../proc.ts";
import { encodeMessage } from "../ttrpc/wire.ts";
import { oneshot } from "./oneshot.ts";
import { canConnect, ensureSocketDir, isSocket, removeSocket, socketAddress, socketPath, writeAddress } from "../contract/address.ts";
import { LISTEN_FD, LISTEN_FD_ENV, serveArgs } from "./flags.ts";
import { handOverOrSpawn, handToSpare } from "./spare-handover.ts";
import { SPARE_ENV, spareAddress, spareEnabled } from "./spare-wire.ts";
import type { StartOpts } from "./types.ts";

export interface SpawnOptions {
  /** argv prefix that re-invokes this shim (default: selfArgv()). */
  self?: string[];
  env?: Record<string, string | undefined>;
}

/** The command that runs this shim again: the compiled binary, or bun with the entry script. */
export function selfArgv(): string[] {
  if (Bun.main.startsWith("/$bunfs/")) return [process.execPath, "shim"];
  return [process.execPath, Bun.main, "shim"];
}

const LOCK_WAIT_MS = 20_000;
const STALE_LOCK_MS = 30_000;

/** An O_EXCL lock file holding our pid; a dead holder's (or a very old) lock is broken. */
async function acquireLock(path: string): Promise<() => void> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  let delay = 2;
  for (;;) {
    try {
      const fd = openSync(path, "wx", 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => {
        try {
          unlinkSync(path);
        } catch {
          // broken by someone who thought we were dead: nothing left to release
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    let stale = false;
    try {
      const holder = Number.parseInt(readFileSync(path, "utf8"), 10);
      const age = Date.now() - statSync(path).mtimeMs;
      stale = (Number.isInteger(holder) && holder > 0 && !pidAlive(holder)) || age > STALE_LOCK_MS;
    } catch {
      continue; // released between our open and our read
    }
    if (stale) {
      try {
        unlinkSync(path);
      } catch {
        // someone else broke it first
      }
      continue;
    }
    if (Date.now() > deadline) throw new DeadlineExceededError(`timed out waiting for shim start lock ${path}`);
    await Bun.sleep(delay);
    delay = Math.min(delay * 2, 50);
  }
}

/** ConnectRequest{id=1}, by hand: the generated descriptors cost more than this whole action. */
export function connectRequest(id: string): Uint8Array {
  return encodeMessage([{ n: 1, bytes: new TextEncoder().encode(id) }]);
}

/**
 * Reserves `id` on a live shim (Connect); false if it is not there or is going away. A shim with
 * too many reservations pending (a burst of creates in one group) answers ResourceExhausted: wait
 * for their Creates to arrive rather than fail this container.
 */
async function reserve(address: string, id: string, namespace: string, busyTimeoutMs = 60_000): Promise<boolean> {
  const deadline = Date.now() + busyTimeoutMs;
  for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
    try {
      await oneshot({ address, service: "containerd.task.v2.Task", method: "Connect", payload: connectRequest(id), namespace, timeoutMs: 5000 });
      return true;
    } catch (err) {
      if (err instanceof UnavailableError || err instanceof DeadlineExceededError) return false;
      if (!(err instanceof ResourceExhaustedError) || Date.now() > deadline) throw err;
    }
    await Bun.sleep(delay);
  }
}

async function waitGone(address: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && (await canConnect(address))) await Bun.sleep(10);
}

/**
 * The group's socket bound at a temporary name beside its address (a hard link stays in one
 * filesystem; `.<pid>` is never longer than the address: sun_path is 108 bytes), born owner-only
 * (the umask: no window where another uid could connect). `fd` is the listener's, which Bun
 * exposes though bun-types does not; undefined from a Bun that does not.
 */
function bindTemporary(address: string): { path: string; bound: string; listener: ReturnType<typeof Bun.listen>; fd: number | undefined } {
  const path = socketPath(address);
  const bound = goJoin(goDir(path), `.${process.pid}`);
  if (lstatSync(bound, { throwIfNoEntry: false })) unlinkSync(bound); // left by a dead start that had our pid
  const oldMask = process.umask(0o177);
  let listener;
  try {
    listener = Bun.listen({ unix: bound, socket: { data() {} } });
  } finally {
    process.umask(oldMask);
  }
  const fd = (listener as unknown as { fd?: number }).fd;
  return { path, bound, listener, fd: typeof fd === "number" ? fd : undefined };
}

/**
 * Binds the group's socket here and hands the listener to a new serve process as fd 3, as Go's
 * shim does: `start` can print the address and exit at once, and containerd's first connection
 * waits in the backlog until the serve process has loaded (100–200 ms of module loading a start
 * that waited for it used to pay on containerd's critical path, once per pod).
 *
 * The socket is bound with Bun.listen (0.3 ms; loading the native core to bind it cost `start`
 * ~8 ms of CPU) at a temporary name and hard-linked to its real name once the serve process holds
 * it; then our listener is stopped (which closes our fd and unlinks only the temporary name) before
 * this process ever returns to its event loop, so no connection can be accepted here and dropped.
 */
function spawnServe(opts: StartOpts, address: string, spawn: SpawnOptions, spare = false): void {
  const argv = [...(spawn.self ?? selfArgv()), ...serveArgs(opts.flags, address)];
  const { path, bound, listener, fd } = bindTemporary(address);
  try {
    if (fd === undefined) throw new UnavailableError(`this Bun (${Bun.version}) does not expose a listener's fd: cannot start a shim`);
    const proc = Bun.spawn(argv, {
      cwd: opts.bundle,
      // a handler's `spare = true` reaches the serve process as the variable: it starts the next spare
      env: { ...process.env, ...IDLE_ENV, ...spawn.env, ...(spare ? { [SPARE_ENV]: "1" } : {}), TTRPC_ADDRESS: opts.ttrpcAddress, [LISTEN_FD_ENV]: String(LISTEN_FD) },
      // never containerd's pipes: containerd reads start's output until every writer is gone
      stdio: ["ignore", "ignore", "ignore", fd],
      detached: true,
    });
    proc.unref();
    adjustOomScore(proc.pid);
    linkSync(bound, path);
  } finally {
    listener.stop(true);
  }
}

/**
 * Offers the group's socket to the warm spare (spare.ts): bound at a temporary name as spawnServe
 * does, its fd sent over the spare's control socket, and linked to its real name only once the
 * spare acked. A refused or unanswered offer unbinds it (a late spare holds a socket nobody can
 * reach and ends by its idle timer), and spawnServe then binds afresh: the listener containerd
 * dials is never shared by two processes.
 */
async function offerToSpare(opts: StartOpts, address: string): Promise<boolean> {
  const { path, bound, listener, fd } = bindTemporary(address);
  try {
    if (fd === undefined) return false;
    const control = spareAddress(opts.address, opts.namespace, opts.ttrpcAddress);
    const handover = { id: opts.id, socket: address, bundle: opts.bundle, debug: opts.debug };
    // the native core only when a spare's socket exists: sendmsg with SCM_RIGHTS needs it
    const loadSys = (): ReturnType<typeof import("../sys/index.ts").sys> => (require("../sys/index.ts") as typeof import("../sys/index.ts")).sys();
    if (!(await handToSpare(control, fd, handover, loadSys))) return false;
    linkSync(bound, path);
    return true;
  } finally {
    listener.stop(true);
  }
}

/** A new serve process for the group: the warm spare when enabled and there, else a fresh one. */
async function startServe(opts: StartOpts, address: string, spawn: SpawnOptions): Promise<void> {
  if (!spareEnabled(opts.options)) return spawnServe(opts, address, spawn);
  await handOverOrSpawn(
    () => offerToSpare(opts, address),
    () => spawnServe(opts, address, spawn, true),
  );
}

/**
 * The shim's OOM score is containerd's + 1 (Go's AdjustOOMScore): under memory pressure the kernel
 * should take a shim before the daemon. Best effort: a failure here must not fail the start.
 */
export function adjustOomScore(pid: number, parent = process.ppid): void {
  try {
    const score = Number.parseInt(readFileSync(`/proc/${parent}/oom_score_adj`, "utf8"), 10);
    if (!Number.isInteger(score)) return;
    writeFileSync(`/proc/${pid}/oom_score_adj`, String(Math.min(score + 1, 1000)));
  } catch {
    // not permitted (rootless) or the process is already gone
  }
}

/**
 * Returns the address of the shim serving `group`, starting one if needed, with `id` reserved on
 * it, and writes `<bundle>/address`.
 */
export async function startGrouped(opts: StartOpts, group: string, spawn: SpawnOptions = {}): Promise<string> {
  const address = socketAddress(opts.address, opts.namespace, group);
  const path = socketPath(address);
  ensureSocketDir(address);
  const release = await acquireLock(`${path}.lock`);
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      // one round trip: a live shim answers the reservation, a stale one cannot; with no socket
      // file (every new pod) there is nobody to ask, and no connect and event-loop turn to pay
      if (isSocket(path)) {
        if (await reserve(address, opts.id, opts.namespace)) {
          writeAddress(opts.bundle, address);
          return address;
        }
        await waitGone(address, 5000); // it may be shutting down: let it go, then start a new one
        removeSocket(address);
      }
      // Before the spawn, as Go's manager does: the address file's fsync then does not wait behind
      // the journal commit of everything the new process's exec touches (5-7 ms after it, ~1 ms
      // before it here), and a start that fails afterwards leaves an address nobody answers, which
      // `delete` already cleans up (a dead shim's socket).
      writeAddress(opts.bundle, address);
      // the new serve process reserves opts.id itself (it is its -id)
      await startServe(opts, address, spawn);
      return address;
    }
    throw new UnavailableError(`could not reserve ${opts.id} on a shim at ${address}`);
  } finally {
    release();
  }
}
