// Containers' networks for a task manager, with the network code loaded on first use: a run with
// `--net none` (and ps, rm of such containers) never loads the CNI client.
import type { ContainerNetworks } from "../containers/record.ts";

export function lazyNetworks(root: string, state: string): ContainerNetworks {
  let provider: Promise<ContainerNetworks> | undefined;
  const load = (): Promise<ContainerNetworks> => (provider ??= import("./container-networks.ts").then((m) => new m.ContainerNetworkProvider({ root, state })));
  return {
    setup: async (namespace, id, req, join) => (await load()).setup(namespace, id, req, join),
    release: async (namespace, id) => (await load()).release(namespace, id),
  };
}
