// `bunker daemon`: serves bunker.v1.Bunker and the shims' Events/Forward on one owner-only unix
// socket (--address), with the task manager reloaded from --state at start-up.
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { DescMessage } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import { errorMessage } from "../errdefs.ts";
import { Bunker } from "../gen/bunker/v1/api_pb.ts";
import { Exchange, registerForwardService } from "../runtime/events.ts";
import { TaskManager } from "../runtime/manager.ts";
import { RestartSupervisor } from "../runtime/restarts.ts";
import { lazyLayers } from "../images/lazy-layers.ts";
import { lazyNetworks } from "../network/lazy-networks.ts";
import { sameUidPeers, sys } from "../sys/index.ts";
import { type Handler, listenUnix, Server, type ServiceImpl } from "../ttrpc/index.ts";
import { type GlobalOptions, imageStoreOptions } from "./args.ts";
import { bunkerService } from "../api/service.ts";

/** Runs until SIGTERM/SIGINT; shims and their containers keep running when the daemon stops. */
export async function daemon(g: GlobalOptions, logger: Logger): Promise<number> {
  mkdirSync(dirname(g.address), { recursive: true, mode: 0o711 });
  const events = new Exchange();
  const server = new Server({ onError: (err, info) => logger.error({ ...info, err: errorMessage(err) }, "request failed") });
  registerForwardService(server, events);
  // Listen before reloading, so shims that publish while we load find us; API calls made in the
  // meantime wait for the manager.
  const { promise: ready, resolve, reject } = Promise.withResolvers<TaskManager>();
  ready.catch(() => undefined);
  const impl: Record<string, Handler<DescMessage, DescMessage>> = {};
  for (const m of Bunker.methods) {
    impl[m.localName] = async (req, ctx) => {
      const svc = bunkerService(await ready, { embedded: false }) as Record<string, Handler<DescMessage, DescMessage> | undefined>;
      return svc[m.localName]!(req, ctx);
    };
  }
  server.register(Bunker, impl as ServiceImpl<typeof Bunker>);
  const listener = await listenUnix(server, g.address, {
    mode: 0o600,
    authorize: sameUidPeers(),
  });
  let manager: TaskManager;
  const t0 = performance.now();
  try {
    const layers = lazyLayers(g.root, imageStoreOptions(g));
    const networks = lazyNetworks(g.root, g.state);
    manager = await TaskManager.create({ root: g.root, state: g.state, address: g.address, ttrpcAddress: g.address, events, sys: sys(), logger, debug: g.debug, layers, networks });
  } catch (err) {
    reject(err);
    listener.close();
    server.close();
    throw err;
  }
  resolve(manager);
  logger.info({ address: g.address, tasks: manager.shimTasks().length, loadMs: Math.round(performance.now() - t0) }, "bunker daemon ready");
  // restart policies: watched from now on, and applied to what a reboot ended (after the API
  // listens: clients see those containers as exited until they are back)
  const restarts = new RestartSupervisor(manager, events, logger);
  restarts.watch();
  void restarts.restoreAtStart().then(
    (r) => logger.info({ ...r, ms: Math.round(performance.now() - t0) }, "containers restored"),
    (err) => logger.error({ err: errorMessage(err) }, "restoring containers"),
  );
  const { promise: stop, resolve: onStop } = Promise.withResolvers<string>();
  const onSignal = (s: NodeJS.Signals): void => onStop(s);
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  const signal = await stop;
  logger.info({ signal }, "bunker daemon stopping; shims keep running");
  restarts.close();
  listener.close();
  server.close();
  manager.close();
  return 0;
}
