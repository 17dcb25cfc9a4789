// Containers' writable layers for a task manager, with the image store loaded on first use. Every
// CLI command and the daemon hand the manager this; only a create from an image or the teardown of
// such a container pays for loading the image code (the registry client, the tar applier), which a
// `bunker ps` or a `run --rootfs` never needs.
import type { ContainerLayers } from "../containers/record.ts";
import type { ImageStoreOptions } from "./store.ts";

export function lazyLayers(root: string, o: ImageStoreOptions = {}): ContainerLayers {
  let layers: Promise<ContainerLayers> | undefined;
  const load = (): Promise<ContainerLayers> => (layers ??= import("./store.ts").then((m) => new m.ImageStore(root, o).layers()));
  return {
    prepare: async (namespace, id, parent) => (await load()).prepare(namespace, id, parent),
    prepareMounted: async (namespace, id, parent, target, opts) => (await load()).prepareMounted(namespace, id, parent, target, opts),
    release: async (namespace, id, opts) => (await load()).release(namespace, id, opts),
    sweep: async () => (await load()).sweep?.(),
  };
}
