// Starting the warm spare (spare.ts) from a serve process: some time after it began serving, so
// that the spare's ~35 ms of loading never competes with the pod it was started beside (nodes
// with two cores), and only when no spare answers on the control socket yet (the spare's own bind
// is the real claim; this check only saves spawning a process that would exit at once).
import { canConnect } from "../contract/address.ts";
import { errorMessage } from "../errdefs.ts";
import { spawnTracked } from "../sys/children.ts";
import type { ShimFlags } from "./flags.ts";
import { IDLE_ENV } from "../idle.ts";
import { selfArgv } from "./start.ts";
import { spareAddress } from "./spare-wire.ts";
import type { ServeContext } from "./types.ts";

/** BUNKER_SHIM_SPARE_DELAY_MS, else 1.5 s after serving began. */
export function spareDelayMs(env: Record<string, string | undefined> = process.env): number {
  const v = Number.parseInt(env.BUNKER_SHIM_SPARE_DELAY_MS ?? "", 10);
  return Number.isInteger(v) && v >= 0 ? v : 1500;
}

/** The spare's argument list: the key's flags and the `spare` action (no id, bundle or socket yet). */
export function spareArgs(flags: ShimFlags): string[] {
  const args = ["-namespace", flags.namespace, "-address", flags.address];
  if (flags.publishBinary !== "containerd") args.push("-publish-binary", flags.publishBinary);
  args.push("spare");
  return args;
}

export async function startSpare(flags: ShimFlags, ttrpcAddress: string): Promise<number | undefined> {
  if (await canConnect(spareAddress(flags.address, flags.namespace, ttrpcAddress))) return undefined;
  const proc = spawnTracked([...selfArgv(), ...spareArgs(flags)], {
    cwd: "/",
    env: { ...process.env, ...IDLE_ENV, TTRPC_ADDRESS: ttrpcAddress },
    stdio: ["ignore", "ignore", "ignore"],
    detached: true,
  });
  proc.unref();
  return proc.pid;
}

/**
 * Starts a spare `spareDelayMs()` after serving began, or when this serve process stops serving
 * if that comes first (a short-lived pod's shim would otherwise never start one, and the next pod
 * would find none). Returns that at-shutdown hook; it waits at most briefly for the spawn.
 */
export function scheduleSpare(flags: ShimFlags, ttrpcAddress: string, log: ServeContext["log"]): () => Promise<void> {
  let started: Promise<void> | undefined;
  const start = (): Promise<void> =>
    (started ??= startSpare(flags, ttrpcAddress).then(
      (pid) => void (pid !== undefined && log.debug({ pid }, "started a spare shim")),
      (err: unknown) => log.warn({ err: errorMessage(err) }, "could not start a spare shim"),
    ));
  const timer = setTimeout(() => void start(), spareDelayMs());
  timer.unref();
  return async () => {
    clearTimeout(timer);
    await Promise.race([start(), Bun.sleep(500)]);
  };
}
