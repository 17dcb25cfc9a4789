// The removal itself, shared by the reaper (after its test process died or asked) and by
// sweepLeftovers (a later run): list a target's containers in every namespace, pick some by their
// labels, remove each as `bunker rm -f` does (Delete with force: kill, then the one teardown path
// that releases task, network, bundle and layer), then release the networks the session made.
//
// A target is reached the way the session reached it: a daemon through its socket (it owns the
// shims' connections and events), an embedded manager by a task manager of our own on the same
// --root/--state (what the CLI does when no daemon listens; the stores' flocks make two bunker
// processes on one state safe). The embedded manager's own socket is never dialed: it serves only
// the shims' event forwarding, not bunker.v1.
import type { Logger } from "pino";
import { type Api, managerApi } from "../api/client.ts";
import { errorMessage, isNotFound } from "../errdefs.ts";
import { Bunker, type TaskInfo } from "../gen/bunker/v1/api_pb.ts";
import { lazyLayers } from "../images/lazy-layers.ts";
import { lazyNetworks } from "../network/lazy-networks.ts";
import { Exchange } from "../runtime/events.ts";
import { TaskManager } from "../runtime/manager.ts";
import { sys } from "../sys/index.ts";
import { dial } from "../ttrpc/index.ts";
import type { NetworkRef, Target } from "./reaper-protocol.ts";

/** Removals run a few at a time: each may wait out a shim's delete action. */
const PARALLEL_REMOVALS = 4;
const DIAL_TIMEOUT_MS = 2_000;
const ROUNDS = 3;

export interface OpenTarget {
  api: Api;
  close(): void;
}

/** The bunker.v1 API of a target: its daemon, or a task manager of our own on its directories. */
export async function openTarget(t: Target, logger: Logger): Promise<OpenTarget> {
  if (t.daemon) {
    const client = await dial(t.address, { connectTimeoutMs: DIAL_TIMEOUT_MS });
    return { api: client.service(Bunker), close: () => client.close() };
  }
  const manager = await TaskManager.create(
    {
      root: t.root,
      state: t.state,
      address: t.address,
      ttrpcAddress: t.address,
      events: new Exchange(),
      sys: sys(),
      logger,
      layers: lazyLayers(t.root),
      networks: lazyNetworks(t.root, t.state),
    },
    { load: false },
  );
  return { api: managerApi(manager, { embedded: true }), close: () => manager.close() };
}

export interface RemovalReport {
  removed: string[];
  failed: { container: string; error: string }[];
}

/**
 * Removes (rm -f) every container of the target that `choose` picks from the full list, then
 * lists again until nothing chosen is left (at most ROUNDS removals): the test process's own manager
 * may be tearing the same container down at that moment (its shim's exit event), so a removal can
 * fail or answer NotFound while the container is still listed; the next look finishes it.
 */
export async function removeChosen(t: Target, choose: (all: TaskInfo[]) => TaskInfo[], logger: Logger): Promise<RemovalReport> {
  const removed = new Set<string>();
  let failed: RemovalReport["failed"] = [];
  const open = await openTarget(t, logger);
  try {
    for (let round = 0; ; round++) {
      const { tasks } = await open.api.list({ namespace: "" });
      const queue = choose(tasks);
      if (queue.length === 0) return { removed: [...removed], failed: [] };
      if (round === ROUNDS) {
        const named = new Set(failed.map((f) => f.container));
        for (const c of queue) if (!named.has(`${c.namespace}/${c.id}`)) failed.push({ container: `${c.namespace}/${c.id}`, error: `still listed after ${ROUNDS} removals` });
        return { removed: [...removed], failed };
      }
      if (round > 0) logger.warn({ left: queue.map((c) => `${c.namespace}/${c.id}`), failed }, "containers still listed: removing them again");
      failed = [];
      const worker = async (): Promise<void> => {
        for (let c = queue.shift(); c !== undefined; c = queue.shift()) {
          const name = `${c.namespace}/${c.id}`;
          try {
            await open.api.delete({ namespace: c.namespace, id: c.id, force: true });
            removed.add(name);
          } catch (err) {
            // NotFound: removed meanwhile (its own exit handler, another manager's teardown, the
            // test's rm): gone as this sweep wanted, so reported removed; the next list tells if not
            if (isNotFound(err)) removed.add(name);
            else failed.push({ container: name, error: errorMessage(err) });
          }
        }
      };
      await Promise.all(Array.from({ length: PARALLEL_REMOVALS }, worker));
    }
  } finally {
    open.close();
  }
}

/** Releases a network the session made; one already gone is fine. */
export async function removeNetwork(n: NetworkRef): Promise<void> {
  const { NetworkStore } = await import("../network/networks.ts");
  try {
    await new NetworkStore(n.root).remove(n.name);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}
