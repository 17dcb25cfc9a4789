// bunker.network(): a named bridge network of a test's own (docker network create, as
// Testcontainers' Network.newNetwork()), under the same --root as the containers, removed at
// dispose. Containers join with `network: net` (or its name) and reach each other by address;
// names resolve one way, cheaply: each container run on the network gets /etc/hosts entries
// (--add-host) for the members this process already started on it, so a client started after
// its server finds the server by name. (bunker has no embedded DNS server as docker does.)
import { randomBytes } from "node:crypto";
import { isNotFound } from "../errdefs.ts";
import { notify } from "./tracking.ts";
import type { ContainerTracker, NetworkRef } from "./types.ts";

export interface NetworkOptions {
  /** Default: "bunker-" and 8 random hex digits. */
  name?: string;
  /** e.g. "10.77.0.0/24" (default: the first free /24 after bunker's default network). */
  subnet?: string;
}

/** name -> (container id -> address), for the networks this process made. */
const members = new Map<string, Map<string, string>>();

/** --add-host entries for a container about to join `network`: the members started so far. */
export function networkHosts(network: string): string[] {
  return [...(members.get(network) ?? [])].map(([name, ip]) => `${name}:${ip}`);
}

/** Records a started container's address on a network this process made. */
export function noteMember(network: string, id: string, ip: string | undefined): void {
  if (ip !== undefined) members.get(network)?.set(id, ip);
}

export class Network {
  private removed: Promise<void> | undefined;

  private constructor(
    readonly name: string,
    readonly subnet: string,
    private readonly ref: NetworkRef,
    private readonly tracker: ContainerTracker | undefined,
    private readonly onRemoved: (n: Network) => void,
  ) {}

  static async create(where: { root: string; state: string }, o: NetworkOptions, tracker: ContainerTracker | undefined, onRemoved: (n: Network) => void): Promise<Network> {
    const { NetworkStore } = await import("../network/networks.ts");
    const store = new NetworkStore(where.root);
    const name = o.name ?? `bunker-${randomBytes(4).toString("hex")}`;
    const ref: NetworkRef = { name, root: where.root, state: where.state };
    notify(tracker, "trackNetwork", ref);
    try {
      const info = store.create(name, o.subnet ? { subnet: o.subnet } : {});
      try {
        await store.ensureHostSetup(name);
      } catch (err) {
        await store.remove(name).catch(() => undefined);
        throw err;
      }
      members.set(name, new Map());
      return new Network(name, info.subnet, ref, tracker, onRemoved);
    } catch (err) {
      notify(tracker, "untrackNetwork", ref);
      throw err;
    }
  }

  /** Removes the network (its containers must be gone first: FailedPrecondition otherwise); idempotent. */
  remove(): Promise<void> {
    this.removed ??= (async () => {
      const { NetworkStore } = await import("../network/networks.ts");
      try {
        await new NetworkStore(this.ref.root).remove(this.name);
      } catch (err) {
        if (!isNotFound(err)) {
          this.removed = undefined;
          throw err;
        }
      }
      members.delete(this.name);
      notify(this.tracker, "untrackNetwork", this.ref);
      this.onRemoved(this);
    })();
    return this.removed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.remove();
  }
}
