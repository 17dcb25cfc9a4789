// A connection to bunker for the library: the bunker.v1 API of a running `bunker daemon`, or of a
// TaskManager inside this process (the CLI's embedded path, src/api/client.ts: no daemon, no
// socket served, exits learned through Wait), and `run`, which makes a container from an image
// as `bunker run -d IMAGE` does (images/run-spec.ts), with the library's labels, published ports
// chosen free, and an optional readiness wait. Where things live follows the CLI: --root,
// --state, --address and --namespace from options, else BUNKER_ROOT/STATE/ADDRESS/NAMESPACE,
// else /var/lib/bunker, /run/bunker, /run/bunker/bunker.sock, "default"; `mode: "auto"` (the
// default) uses the daemon when one answers at the address, as the CLI does.
import pino, { type Logger } from "pino";
import { type Api, connect as connectApi, managerApi } from "../api/client.ts";
import { InvalidArgumentError, isNotFound, UnavailableError } from "../errdefs.ts";
import { validateIdentifier, validateNamespace } from "../identifiers.ts";
import { lazyLayers } from "../images/lazy-layers.ts";
import { lazyNetworks } from "../network/lazy-networks.ts";
import { Exchange } from "../runtime/events.ts";
import { TaskManager } from "../runtime/manager.ts";
import { DEFAULT_ADDRESS, DEFAULT_ROOT, DEFAULT_STATE } from "../runtime/paths.ts";
import { sys } from "../sys/index.ts";
import { Container } from "./container.ts";
import { imageError } from "./errors.ts";
import { Network, type NetworkOptions } from "./network.ts";
import { type RunOptions, startContainer } from "./run.ts";
import type { ContainerTracker } from "./types.ts";

export interface BunkerOptions {
  /** "auto": the daemon at `address` if one answers, else embedded; "daemon": only the daemon; "embedded": never dial. */
  mode?: "auto" | "daemon" | "embedded";
  /** The daemon's socket; embedded, the address shims are told (it names the instance). */
  address?: string;
  /** bunker's --root: images, snapshots, container records, networks. Must be the daemon's own in daemon mode. */
  root?: string;
  /** bunker's --state: bundles, runc state, netns pins. */
  state?: string;
  namespace?: string;
  /** Where the shim binary (containerd-shim-bunker-v1) is besides $PATH (default: beside the running executable). */
  shimDir?: string;
  /** Registries reached over plain HTTP besides loopback ones. */
  insecureRegistries?: string[];
  /** Told about every container this client starts and removes (besides the process-wide ones, addTracker). */
  tracker?: ContainerTracker;
  logger?: Logger;
}

export interface ResolvedOptions {
  mode: "auto" | "daemon" | "embedded";
  address: string;
  root: string;
  state: string;
  namespace: string;
  shimDir: string | undefined;
  insecureRegistries: string[];
}

/** Options over the environment over the CLI's defaults. */
export function resolveOptions(o: BunkerOptions = {}, env: Record<string, string | undefined> = process.env): ResolvedOptions {
  const mode = o.mode ?? "auto";
  if (!["auto", "daemon", "embedded"].includes(mode)) throw new InvalidArgumentError(`mode ${JSON.stringify(mode)} must be auto, daemon or embedded`);
  const insecure = o.insecureRegistries ?? (env.BUNKER_INSECURE_REGISTRIES ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  return {
    mode,
    address: o.address ?? env.BUNKER_ADDRESS ?? DEFAULT_ADDRESS,
    root: o.root ?? env.BUNKER_ROOT ?? DEFAULT_ROOT,
    state: o.state ?? env.BUNKER_STATE ?? DEFAULT_STATE,
    namespace: validateNamespace(o.namespace ?? env.BUNKER_NAMESPACE ?? "default"),
    shimDir: o.shimDir ?? env.BUNKER_SHIM_DIR,
    insecureRegistries: insecure,
  };
}

interface Connection {
  api: Api;
  daemon: boolean;
  close(): void;
}

export class Bunker {
  readonly options: ResolvedOptions;
  private connection: Promise<Connection> | undefined;
  private readonly containers = new Set<Container>();
  private readonly networks = new Set<Network>();
  private readonly logger: Logger;

  constructor(private readonly o: BunkerOptions = {}) {
    this.options = resolveOptions(o);
    this.logger = o.logger ?? pino({ level: "warn" }, pino.destination({ fd: 2, sync: true }));
  }

  /** Whether this client talks to a daemon (false: an embedded manager); connects if not yet. */
  async isDaemon(): Promise<boolean> {
    return (await this.connect()).daemon;
  }

  private connect(): Promise<Connection> {
    this.connection ??= this.open().catch((err: unknown) => {
      this.connection = undefined; // a daemon started later is found by the next call
      throw err;
    });
    return this.connection;
  }

  private async open(): Promise<Connection> {
    const g = { address: this.options.address, root: this.options.root, state: this.options.state, debug: false };
    if (this.options.mode !== "embedded") {
      const daemon = await connectApi(g, this.logger, { daemonOnly: true });
      if (daemon) return { api: daemon.api, daemon: true, close: daemon.close };
      if (this.options.mode === "daemon") throw new UnavailableError(`no bunker daemon answers at ${this.options.address}`);
    }
    if (process.getuid?.() !== 0) throw new UnavailableError("running containers without a daemon needs root (or set BUNKER_ADDRESS to a running bunker daemon)");
    const manager = await TaskManager.create(
      {
        root: this.options.root,
        state: this.options.state,
        address: this.options.address,
        // shims publish to the address; with no daemon there their events are dropped, and exits are learned through Wait
        ttrpcAddress: this.options.address,
        events: new Exchange(),
        sys: sys(),
        logger: this.logger,
        ...(this.options.shimDir !== undefined ? { selfDir: this.options.shimDir } : {}),
        layers: lazyLayers(this.options.root, { insecureRegistries: this.options.insecureRegistries }),
        networks: lazyNetworks(this.options.root, this.options.state),
      },
      { load: false },
    );
    return { api: managerApi(manager, { embedded: true }), daemon: false, close: () => manager.close() };
  }

  /** Runs a container from an image (pulled when missing) and, with `waitFor`, waits until it is ready. */
  async run(image: string, o: RunOptions = {}): Promise<Container> {
    const conn = await this.connect();
    const c = await startContainer(conn.api, { ...this.options, daemon: conn.daemon }, image, o, {
      tracker: this.o.tracker,
      onRemoved: (x) => this.containers.delete(x),
    });
    this.containers.add(c);
    return c;
  }

  /** A container this client (or another) made, by id: to exec in, read logs of, or remove. */
  async get(id: string): Promise<Container> {
    validateIdentifier(id, "container id");
    const conn = await this.connect();
    const { attach } = await import("./run.ts");
    return await attach(conn.api, { ...this.options, daemon: conn.daemon }, id, { tracker: this.o.tracker, onRemoved: () => undefined });
  }

  /** A named bridge network of its own (removed at dispose), for containers that talk to each other. */
  async network(o: NetworkOptions = {}): Promise<Network> {
    const net = await Network.create(this.options, o, this.o.tracker, (n) => this.networks.delete(n));
    this.networks.add(net);
    return net;
  }

  /** Makes sure the image is in the store (per `pull`, default "missing"); its stored name. ImagePullError otherwise. */
  async pull(image: string, o: { pull?: "missing" | "always" | "never"; platform?: string } = {}): Promise<string> {
    const { ImageStore } = await import("../images/store.ts");
    const store = new ImageStore(this.options.root, { insecureRegistries: this.options.insecureRegistries });
    try {
      return (await store.ensure(image, o.pull ?? "missing", o.platform ? { platform: o.platform } : {})).name;
    } catch (err) {
      throw imageError(image, err);
    }
  }

  /** Loads images from an OCI or docker archive (a tar file) into the store; their names. */
  async loadImage(archive: string): Promise<string[]> {
    const [{ ImageStore }, { loadImages }] = await Promise.all([import("../images/store.ts"), import("../images/archive.ts")]);
    const store = new ImageStore(this.options.root, { insecureRegistries: this.options.insecureRegistries });
    return await loadImages(store, Bun.file(archive).stream());
  }

  /** Removes every container and network this client made and still holds, then closes the connection. */
  async close(): Promise<void> {
    const errors: unknown[] = [];
    await Promise.all([...this.containers].map((c) => c.remove().catch((e: unknown) => void errors.push(e))));
    for (const n of [...this.networks]) await n.remove().catch((e: unknown) => void errors.push(e));
    const conn = await this.connection?.catch(() => undefined);
    this.connection = undefined;
    conn?.close();
    const first = errors.find((e) => !isNotFound(e));
    if (first) throw first;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
