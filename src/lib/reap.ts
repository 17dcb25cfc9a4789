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
 * fail or answer NotFound while the container is still listed; the next look finishes it. What
 * was chosen and is no longer listed is reported removed, whoever finished it (seen in CI: our
 * kill's exit event let the test's own manager win the teardown and our delete failed).
 */
export async function removeChosen(t: Target, choose: (all: TaskInfo[]) => TaskInfo[], logger: Logger): Promise<RemovalReport> {
  const chosen = new Set<string>();
  let failed: RemovalReport["failed"] = [];
  const open = await openTarget(t, logger);
  try {
    for (let round = 0; ; round++) {
      const { tasks } = await open.api.list({ namespace: "" });
      const queue = choose(tasks);
      const left = new Set(queue.map(nameOf));
      const removed = [...chosen].filter((name) => !left.has(name));
      if (queue.length === 0) return { removed, failed: [] };
      if (round === ROUNDS) {
        const named = new Set(failed.map((f) => f.container));
        const stillFailed = failed.filter((f) => left.has(f.container));
        for (const name of left) if (!named.has(name)) stillFailed.push({ container: name, error: `still listed after ${ROUNDS} removals` });
        return { removed, failed: stillFailed };
      }
      if (round > 0) logger.warn({ left: [...left], failed }, "containers still listed: removing them again");
      failed = [];
      for (const name of left) chosen.add(name);
      const worker = async (): Promise<void> => {
        for (let c = queue.shift(); c !== undefined; c = queue.shift()) {
          try {
            await open.api.delete({ namespace: c.namespace, id: c.id, force: true });
          } catch (err) {
            // NotFound: removed meanwhile (its own exit handler, another manager's teardown, the
            // test's rm); anything else is kept for the report should the next list still show it
            if (!isNotFound(err)) failed.push({ container: nameOf(c), error: errorMessage(err) });
          }
        }
      };
      await Promise.all(Array.from({ length: PARALLEL_REMOVALS }, worker));
    }
  } finally {
    open.close();
  }
}

const nameOf = (c: TaskInfo): string => `${c.namespace}/${c.id}`;

/** Releases a network the session made; one already gone is fine. */
export async function removeNetwork(n: NetworkRef): Promise<void> {
  const { NetworkStore } = await import("../network/networks.ts");
  try {
    await new NetworkStore(n.root).remove(n.name);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}
