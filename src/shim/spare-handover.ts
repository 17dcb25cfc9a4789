// The `start` side of the warm spare (spare-wire.ts): hand the bound listener of a new shim socket
// to a waiting spare serve process, or say it could not, so that `start` spawns a fresh serve
// process exactly as it does without spares. Every failure (no spare, a dead one, a peer of
// another uid, a refusal, no ack within SPARE_ACK_TIMEOUT_MS) is a plain `false`: a spare is only
// ever a faster path, never a new way for a pod to fail.
//
// Bun's sockets cannot carry SCM_RIGHTS, so the fd goes out with sendmsg (src/sys sendFd) on the
// fd of a socket Bun connected; the ack comes back through Bun's own reader.
import { isSocket, socketPath } from "../contract/address.ts";
import type { Syscalls } from "../sys/types.ts";
import { encodeHandover, SPARE_ACK, SPARE_ACK_TIMEOUT_MS, type Handover } from "./spare-wire.ts";

/**
 * Sends `listenerFd` and `handover` to the spare at `control`; true once the spare acked (it owns
 * the listener from then on), false on anything else.
 */
export async function handToSpare(control: string, listenerFd: number, handover: Handover, loadSys: () => Syscalls, timeoutMs = SPARE_ACK_TIMEOUT_MS): Promise<boolean> {
  const path = socketPath(control);
  if (!isSocket(path)) return false; // the common case without a spare: no native core loaded for it
  return await new Promise<boolean>((resolve) => {
    let done = false;
    let sock: { end(): void; terminate(): void } | undefined;
    const finish = (ok: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock?.terminate();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    Bun.connect({
      unix: path,
      socket: {
        open(s) {
          sock = s;
          if (done) return s.terminate();
          try {
            const s2 = loadSys();
            const fd = (s as unknown as { fd?: number }).fd;
            if (typeof fd !== "number") return finish(false);
            // only a spare of our own uid may take a pod's socket
            if (s2.peerCred(fd).uid !== (process.getuid?.() ?? 0)) return finish(false);
            s2.sendFd(fd, listenerFd, encodeHandover(handover));
          } catch {
            finish(false);
          }
        },
        data(_s, bytes) {
          finish(bytes.length > 0 && bytes[0] === SPARE_ACK);
        },
        close: () => finish(false),
        error: () => finish(false),
        connectError: () => finish(false),
      },
    }).catch(() => finish(false));
  });
}

/**
 * The fallback decision: the spare if it took the listener, else a fresh serve process. An
 * exception from the attempt counts as a refusal; one from the fresh spawn is start's error.
 */
export async function handOverOrSpawn(tryHandover: () => Promise<boolean>, spawnFresh: () => void): Promise<"spare" | "fresh"> {
  let taken = false;
  try {
    taken = await tryHandover();
  } catch {
    taken = false;
  }
  if (taken) return "spare";
  spawnFresh();
  return "fresh";
}
