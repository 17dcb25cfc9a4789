// bunker as a library, the package's one public entry (`import { bunker } from "bunker"`), in the
// idiom of Bun and Testcontainers: containers from images for `bun test` suites and programs.
//
//   import { bunker, Wait } from "bunker";
//   await using db = await bunker.run("redis:7", { ports: { 6379: 0 }, waitFor: Wait.port(6379) });
//   const { exitCode, stdout } = await db.exec(["redis-cli", "ping"]);
//   fetch(`http://${db.host}:${db.port(6379)}`) ...
//
// `bunker` is a default client: embedded (a task manager inside this process; root needed) unless
// a `bunker daemon` answers at BUNKER_ADDRESS (or /run/bunker/bunker.sock), with the CLI's
// defaults and environment (BUNKER_ROOT, BUNKER_STATE, BUNKER_NAMESPACE). `bunker.connect(opts)`
// makes another client with options of its own. Everything else under src/ is internal: only what
// is exported here is the API.
import { Bunker, type BunkerOptions } from "./client.ts";
import type { Container } from "./container.ts";
import type { Network, NetworkOptions } from "./network.ts";
import type { RunOptions } from "./run.ts";

export { Bunker, type BunkerOptions } from "./client.ts";
export { Container, type LogsOptions } from "./container.ts";
export type { ExecOptions, ExecResult } from "./exec.ts";
export type { LogLine } from "./logs.ts";
export { Network, type NetworkOptions } from "./network.ts";
export type { Mount, RunOptions } from "./run.ts";
export type { PortRequest } from "./ports.ts";
export { Wait, type WaitFor, type WaitStrategy } from "./wait.ts";
export { addTracker, SESSION_ID } from "./tracking.ts";
export { sweepLeftovers } from "./sweep.ts";
export { VERSION as version } from "../version.ts";
export { type ContainerRef, type ContainerTracker, LIB_LABELS, type NetworkRef } from "./types.ts";
export {
  AlreadyExists,
  BunkerError,
  ContainerExitError,
  FailedPrecondition,
  ImagePullError,
  InvalidArgument,
  NotFound,
  Timeout,
  Unavailable,
} from "./errors.ts";

let defaultClient: Bunker | undefined;

function client(): Bunker {
  defaultClient ??= new Bunker();
  return defaultClient;
}

export const bunker = {
  /** Runs a container from an image with the default client (see Bunker.run). */
  run: (image: string, options?: RunOptions): Promise<Container> => client().run(image, options),
  /** A network of the default client's own, removed at dispose. */
  network: (options?: NetworkOptions): Promise<Network> => client().network(options),
  /** An existing container by id. */
  get: (id: string): Promise<Container> => client().get(id),
  /** Makes sure an image is in the store (pulled per `pull`, default when missing); its stored name. */
  pull: (image: string, options?: { pull?: "missing" | "always" | "never"; platform?: string }): Promise<string> => client().pull(image, options),
  /** Loads images from an archive (`bunker save`, `docker save`, an OCI layout tar) into the store. */
  loadImage: (archive: string): Promise<string[]> => client().loadImage(archive),
  /** A client of its own (another root, namespace...); given an address and no mode, that daemon only. */
  connect: (options: BunkerOptions = {}): Bunker => new Bunker({ ...(options.address !== undefined && options.mode === undefined ? { mode: "daemon" as const } : {}), ...options }),
  /** Removes what the default client still holds and closes it (a later call opens a new one). */
  close: async (): Promise<void> => {
    const c = defaultClient;
    defaultClient = undefined;
    await c?.close();
  },
};

export default bunker;
