// `run IMAGE`: the image per the --pull policy (pulled with progress on stderr, as docker run does
// when the image is missing), unpacked, and the container's spec from its config. Loaded only by
// image runs: the registry client and the tar applier are not a `run --rootfs`'s to pay for.
import type { SpecOptions } from "../oci/spec.ts";
import type { OciSpec } from "../oci/spec.ts";
import type { RunSpecOptions } from "../oci/run-options.ts";
import { ImageStore } from "../images/store.ts";
import { topChainId } from "../images/image.ts";
import { imageSpec, imageStopSignal } from "../images/run-spec.ts";
import type { ContainerLayers } from "../containers/record.ts";
import { type GlobalOptions, imageStoreOptions, type RunOptions } from "./args.ts";
import { PullDisplay } from "./pull-display.ts";

export function openImageStore(g: GlobalOptions): ImageStore {
  return new ImageStore(g.root, imageStoreOptions(g));
}

export async function prepareImageRun(
  g: GlobalOptions,
  o: RunOptions,
  source: { image: string; pull: "missing" | "always" | "never"; platform?: string },
  base: Omit<SpecOptions, "args" | "env" | "cwd">,
  runOptions?: RunSpecOptions,
): Promise<{ spec: OciSpec; image: string; parent: string; stopSignal?: string; layers: ContainerLayers }> {
  const store = openImageStore(g);
  // made at the first progress event: an image already present shows nothing, and merely reaching
  // for process.stderr builds its WriteStream (node:stream and node:util loaded: ~3 ms of a run)
  let display: PullDisplay | undefined;
  let img;
  try {
    img = await store.ensure(source.image, source.pull, {
      ...(source.platform ? { platform: source.platform } : {}),
      onProgress: (e) => (display ??= new PullDisplay(process.stderr, source.image)).progress(e),
    });
  } finally {
    display?.end();
  }
  const spec = await imageSpec(store, img, base, {
    args: o.args,
    env: o.env,
    ...(o.entrypoint !== undefined ? { entrypoint: o.entrypoint } : {}),
    ...(o.user !== undefined ? { user: o.user } : {}),
    ...(o.cwd !== undefined ? { cwd: o.cwd } : {}),
  }, runOptions);
  const stopSignal = imageStopSignal(img);
  // the container's layer from the store just opened: its snapshotter is set up already (a second
  // store would make its dirs and read the overlay module's parameters again)
  return { spec, image: img.name, parent: topChainId(img), ...(stopSignal ? { stopSignal } : {}), layers: store.layers() };
}
