// The warm spare: a serve process started ahead of need (opt-in, spare-wire.ts), which loads every
// module serving needs and then waits on a control socket for a `start` action to hand it a new
// pod's bound listener. It then becomes that pod's shim exactly as a freshly spawned serve process
// would (the same serve(), with the fd it received in place of fd 3), minus the ~35 ms of module
// loading containerd otherwise waits for on every new pod. Go's shim has no such thing: it is
// ready in ~22 ms; a Bun process is not.
//
// The bind of the control socket is the claim: a second spare for the same key finds it taken and
// exits. The socket is owner-only and refuses peers of another uid (sameUidPeers, like every
// socket bunker serves). A spare nobody takes exits after an idle time and removes its socket.
import { lstatSync, unlinkSync, writeSync } from "node:fs";
import { canConnect, ensureSocketDir, socketPath } from "../contract/address.ts";
import { errorMessage } from "../errdefs.ts";
import { isErrno, sameUidPeers, sys } from "../sys/index.ts";
import { readinessOf, type Watch } from "../sys/readiness.ts";
import type { ShimFlags } from "./flags.ts";
import type { ServeOptions } from "./serve.ts";
import { decodeHandover, SPARE_ACK, spareAddress, type Handover } from "./spare-wire.ts";
import type { Shim } from "./types.ts";

/** BUNKER_SHIM_SPARE_IDLE_MS, else 10 minutes: a spare is cheap to make again, not to keep forever. */
export function spareIdleMs(env: Record<string, string | undefined> = process.env): number {
  const v = Number.parseInt(env.BUNKER_SHIM_SPARE_IDLE_MS ?? "", 10);
  return Number.isInteger(v) && v > 0 ? v : 600_000;
}

/** A connection that sent nothing usable within this long is dropped. */
const PEER_MS = 1000;

/** Binds the control socket owner-only; undefined when a live spare holds it already. */
async function claim(path: string): Promise<number | undefined> {
  for (let attempt = 0; attempt < 2; attempt++) {
    const oldMask = process.umask(0o177);
    try {
      return sys().listenUnix(path, 16);
    } catch (err) {
      if (!isErrno(err, "EADDRINUSE")) throw err;
    } finally {
      process.umask(oldMask);
    }
    if (await canConnect(`unix://${path}`)) return undefined;
    try {
      unlinkSync(path); // a killed spare's socket: nobody answers it
    } catch {}
  }
  return undefined;
}

interface Taken {
  handover: Handover;
  fd: number;
  conn: number;
}

/** Waits for a valid handover (or the idle time, or `stop`: undefined). */
function waitForHandover(listener: number, idleMs: number, stop: AbortSignal): Promise<Taken | undefined> {
  const s = sys();
  const readiness = readinessOf(s);
  const authorize = sameUidPeers();
  const peers = new Set<{ conn: number; watch: Watch; timer: Timer }>();
  return new Promise((resolve) => {
    let done = false;
    const finish = (taken: Taken | undefined): void => {
      if (done) return;
      done = true;
      clearTimeout(idle);
      stop.removeEventListener("abort", onStop);
      listening.remove();
      for (const p of peers) dropPeer(p);
      resolve(taken);
    };
    const onStop = (): void => finish(undefined);
    const idle = setTimeout(() => finish(undefined), idleMs);
    stop.addEventListener("abort", onStop);
    const dropPeer = (p: { conn: number; watch: Watch; timer: Timer }): void => {
      peers.delete(p);
      clearTimeout(p.timer);
      p.watch.remove();
      try {
        s.close(p.conn);
      } catch {}
    };
    const onPeer = (conn: number): void => {
      if (!authorize({ fd: conn })) {
        s.close(conn);
        return;
      }
      const peer = { conn, watch: undefined as unknown as Watch, timer: undefined as unknown as Timer };
      peer.timer = setTimeout(() => dropPeer(peer), PEER_MS);
      peers.add(peer);
      peer.watch = readiness.watch(conn, () => {
        let got: { fd: number; msg: Uint8Array };
        try {
          got = s.recvFd(conn, { dontWait: true });
        } catch (err) {
          if (isErrno(err, "EAGAIN")) return peer.watch.rearm();
          return dropPeer(peer); // EOF or a message without an fd
        }
        let handover: Handover;
        try {
          handover = decodeHandover(got.msg);
        } catch {
          s.close(got.fd);
          return dropPeer(peer);
        }
        // the conn stays open (not in peers) so the ack can still be written on it
        peers.delete(peer);
        clearTimeout(peer.timer);
        peer.watch.remove();
        finish({ handover, fd: got.fd, conn });
      });
    };
    const listening = readiness.watch(listener, () => {
      for (;;) {
        let conn: number | null;
        try {
          conn = s.accept(listener, { nonblock: true });
        } catch {
          break;
        }
        if (conn === null) break;
        onPeer(conn);
      }
      if (!done) listening.rearm();
    });
    if (stop.aborted) finish(undefined);
  });
}

/** Removes the control socket if it is still the one we bound (not a later spare's). */
function dropControl(path: string, ino: number | undefined): void {
  try {
    if (ino !== undefined && lstatSync(path).ino === ino) unlinkSync(path);
  } catch {}
}

/** The `spare` action. Returns the exit code; after a handover, that of the pod's serve. */
export async function runSpare(shim: Shim, flags: ShimFlags, ttrpcAddress: string, opts: ServeOptions = {}): Promise<number> {
  const control = spareAddress(flags.address, flags.namespace, ttrpcAddress);
  const path = socketPath(control);
  ensureSocketDir(control);
  process.on("SIGPIPE", () => {}); // an ack to a `start` that went away is an error, not a death
  // from the first moment: a spare ended while it still loads must remove its socket too
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  const listener = await claim(path);
  if (listener === undefined) return 0; // another spare is waiting already
  let ino: number | undefined;
  try {
    ino = lstatSync(path).ino;
  } catch {}
  const s = sys();
  let taken: Taken | undefined;
  try {
    // everything a serve process loads before it serves, loaded now, off any pod's critical path
    const [{ serve }] = await Promise.all([import("./serve.ts"), shim.preload?.()]);
    taken = await waitForHandover(listener, spareIdleMs(), stop.signal);
    // no second `start` may pick this spare: unbind before the ack (a queued peer sees a reset
    // and spawns a fresh serve process)
    dropControl(path, ino);
    s.close(listener);
    if (!taken) return 0;
    try {
      writeSync(taken.conn, new Uint8Array([SPARE_ACK]));
    } catch (err) {
      // `start` gave up waiting and spawned a fresh serve process: this listener is nobody's
      process.stderr.write(`spare: handover not acknowledged: ${errorMessage(err)}\n`);
      s.close(taken.fd);
      return 0;
    } finally {
      s.close(taken.conn);
    }
    const { handover, fd } = taken;
    process.chdir(handover.bundle);
    // serve's own handlers from here (an empty shim goes on SIGTERM, one with containers stays)
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
    const served: ShimFlags = { ...flags, id: handover.id, bundle: handover.bundle, socket: handover.socket, debug: handover.debug, action: "" };
    return await serve(shim, served, ttrpcAddress, { ...opts, listenFd: fd });
  } finally {
    if (!taken) dropControl(path, ino);
  }
}
