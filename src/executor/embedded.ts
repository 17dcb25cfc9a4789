// An embedded runtime for programs that want no daemon: a TaskManager plus the one socket its shims
// need, where they publish events (Events/Forward). This is `bunker daemon` without the bunker.v1
// API; the executor reaches the manager in-process. Closing leaves shims and containers running,
// and a new one on the same directories reloads them (then Executor.restore reattaches).
import { lazyLayers } from "../images/lazy-layers.ts";
import { lazyNetworks } from "../network/lazy-networks.ts";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import pino, { type Logger } from "pino";
import { errorMessage } from "../errdefs.ts";
import { Exchange, registerForwardService } from "../runtime/events.ts";
import { TaskManager } from "../runtime/manager.ts";
import { sameUidPeers, sys } from "../sys/index.ts";
import { listenUnix, Server } from "../ttrpc/index.ts";

export interface EmbeddedOptions {
  /** Persistent state (containerd's root), e.g. /var/lib/myapp/bunker. */
  root: string;
  /** Volatile state: bundles and shim sockets (containerd's state), e.g. /run/myapp/bunker. */
  state: string;
  /** The socket shims publish to; also passed to them as -address. */
  address: string;
  logger?: Logger;
  debug?: boolean;
  /** Where shim binaries are looked for besides $PATH (default: beside the running executable). */
  selfDir?: string;
}

export interface EmbeddedRuntime {
  manager: TaskManager;
  /** Stops listening and forgets the shims; they and their containers keep running. */
  close(): void;
}

export async function startEmbeddedRuntime(o: EmbeddedOptions): Promise<EmbeddedRuntime> {
  const logger = o.logger ?? pino({ level: "warn" }, pino.destination({ fd: 2, sync: true }));
  mkdirSync(dirname(o.address), { recursive: true, mode: 0o711 });
  const events = new Exchange();
  const server = new Server({ onError: (err, info) => logger.error({ ...info, err: errorMessage(err) }, "request failed") });
  registerForwardService(server, events);
  // Listen before loading: shims reloaded below may publish at once.
  const listener = await listenUnix(server, o.address, {
    mode: 0o600,
    authorize: sameUidPeers(),
  });
  let manager: TaskManager;
  try {
    manager = await TaskManager.create({
      root: o.root,
      state: o.state,
      address: o.address,
      ttrpcAddress: o.address,
      events,
      sys: sys(),
      logger,
      ...(o.debug === undefined ? {} : { debug: o.debug }),
      ...(o.selfDir === undefined ? {} : { selfDir: o.selfDir }),
      layers: lazyLayers(o.root),
      networks: lazyNetworks(o.root, o.state),
    });
  } catch (err) {
    listener.close();
    server.close();
    throw err;
  }
  return {
    manager,
    close() {
      listener.close();
      server.close();
      manager.close();
    },
  };
}
