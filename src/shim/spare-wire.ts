// The warm spare's small facts shared by its two sides (the `start` action that hands a pod's
// listener over, and the spare serve process that takes it): where its control socket is, whether
// spares are enabled, and the handover message. Not a containerd behaviour: containerd's Go shim
// starts in ~22 ms, a Bun serve process needs ~35 ms more to load its modules, so an opt-in spare
// that has loaded them already takes the next pod's socket (fd by SCM_RIGHTS) instead.
//
// The message is JSON (one sendmsg of well under the 4 KiB recvFd takes): it is read once per pod
// and must stay readable in a trace. Kept free of heavy imports: `start` loads this file.
import { InvalidArgumentError } from "../errdefs.ts";
import { SOCKET_ROOT, socketAddress } from "../contract/address.ts";
import { handlerConfigValues } from "../contract/handler-config.ts";
import { runtimeConfigText } from "../contract/start-options.ts";

/** `BUNKER_SHIM_SPARE=1` enables spares for every handler of a containerd (its env reaches the shims). */
export const SPARE_ENV = "BUNKER_SHIM_SPARE";
/** The one byte a spare answers once it owns the listener. */
export const SPARE_ACK = 0x06;
/** How long `start` waits for that byte before it starts a fresh serve process instead. */
export const SPARE_ACK_TIMEOUT_MS = 150;

/** What a spare needs to become a pod's shim; the rest (namespace, addresses) is in its key. */
export interface Handover {
  id: string;
  /** The shim socket address (`unix://...`) the listener is bound to. */
  socket: string;
  bundle: string;
  debug: boolean;
}

/**
 * The spare's control socket, beside the shims' sockets and hashed like them (containerd's
 * SocketAddress) over the spare's key with a prefix no group key produces, so it never meets a
 * shim's address. One spare per (namespace, containerd address, ttrpc address): a spare only ever
 * serves pods of the containerd and namespace it was started for.
 */
export function spareAddress(containerdAddress: string, namespace: string, ttrpcAddress: string, root = SOCKET_ROOT): string {
  if (namespace === "") throw new InvalidArgumentError("namespace is required to compute a spare's address");
  // hashed as a group key no shim has: container ids and sandbox ids hold no NUL, nor do group names anyone writes
  return socketAddress(containerdAddress, namespace, `bunker-spare\0${ttrpcAddress}`, root);
}

/** Whether the handler's options (`spare = true`) or the environment ask for spares. */
export function spareEnabled(options: Uint8Array, env: Record<string, string | undefined> = process.env): boolean {
  if (env[SPARE_ENV] === "1") return true;
  const config = runtimeConfigText(options);
  if (!config) return false;
  const v = handlerConfigValues(config.content, config.source).spare;
  if (v !== undefined && typeof v !== "boolean") throw new InvalidArgumentError(`${config.source}: spare must be true or false`);
  return v === true;
}

export function encodeHandover(h: Handover): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ id: h.id, socket: h.socket, bundle: h.bundle, debug: h.debug }));
}

/** The handover from its bytes; anything malformed is InvalidArgument (the spare then refuses it). */
export function decodeHandover(bytes: Uint8Array): Handover {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    throw new InvalidArgumentError(`spare handover: not JSON: ${(err as Error).message}`);
  }
  const o = v as Record<string, unknown>;
  if (typeof o !== "object" || o === null || Array.isArray(o)) throw new InvalidArgumentError("spare handover: not an object");
  for (const k of ["id", "socket", "bundle"] as const) {
    if (typeof o[k] !== "string" || o[k] === "") throw new InvalidArgumentError(`spare handover: ${k} must be a non-empty string`);
  }
  if (typeof o.debug !== "boolean") throw new InvalidArgumentError("spare handover: debug must be a boolean");
  if (!(o.socket as string).startsWith("unix://")) throw new InvalidArgumentError("spare handover: socket must be a unix:// address");
  if (!(o.bundle as string).startsWith("/")) throw new InvalidArgumentError("spare handover: bundle must be an absolute path");
  return { id: o.id as string, socket: o.socket as string, bundle: o.bundle as string, debug: o.debug };
}
