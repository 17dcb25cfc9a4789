// `run IMAGE`: the image per the --pull policy (pulled with progress on stderr, as docker run does
// when the image is missing), unpacked, and the container's spec from its config. Loaded only by
// image runs: the registry client and the tar applier are not a `run --rootfs`'s to pay for. An
// image already present is usually answered by the run cache (images/run-cache.ts) without loading
// the image store at all; the full path below records its answer there for the next run.
import type { SpecOptions } from "../oci/spec.ts";
import type { RunSpecOptions } from "../oci/run-options.ts";
import { cachedImageRun, type ImageRunPlan, recordImageRun, type RunLookup } from "../images/cached-run.ts";
import type { GlobalOptions, RunOptions } from "./args.ts";

export async function prepareImageRun(
  g: GlobalOptions,
  o: RunOptions,
  source: { image: string; pull: "missing" | "always" | "never"; platform?: string },
  base: Omit<SpecOptions, "args" | "env" | "cwd">,
  runOptions?: RunSpecOptions,
): Promise<ImageRunPlan> {
  const lookup: RunLookup = { ref: source.image, platform: source.platform ?? "", want: g.snapshotter ?? "auto" };
  const processOptions = {
    args: o.args,
    env: o.env,
    ...(o.entrypoint !== undefined ? { entrypoint: o.entrypoint } : {}),
    ...(o.user !== undefined ? { user: o.user } : {}),
    ...(o.cwd !== undefined ? { cwd: o.cwd } : {}),
  };
  // --pull always asks the registry whatever is stored
  if (source.pull !== "always") {
    const cached = await cachedImageRun(g.root, lookup, base, processOptions, runOptions);
    if (cached) return cached;
  }
  const [{ openImageStore }, { imageSpec, imageStopSignal }, { topChainId }, { PullDisplay }] = await Promise.all([
    import("./image-store.ts"),
    import("../images/run-spec.ts"),
    import("../images/image.ts"),
    import("./pull-display.ts"),
  ]);
  const store = openImageStore(g);
  // made at the first progress event: an image already present shows nothing, and merely reaching
  // for process.stderr builds its WriteStream (node:stream and node:util loaded: ~3 ms of a run)
  let display: InstanceType<typeof PullDisplay> | undefined;
  let img;
  try {
    img = await store.ensure(source.image, source.pull, {
      ...(source.platform ? { platform: source.platform } : {}),
      onProgress: (e) => (display ??= new PullDisplay(process.stderr, source.image)).progress(e),
    });
  } finally {
    display?.end(img !== undefined);
  }
  const spec = await imageSpec(store, img, base, processOptions, runOptions);
  const stopSignal = imageStopSignal(img);
  const parent = topChainId(img);
  await recordImageRun(store, lookup, img, parent);
  // the container's layer from the store just opened: its snapshotter is set up already (a second
  // store would make its dirs and read the overlay module's parameters again)
  return { spec, image: img.name, parent, ...(stopSignal ? { stopSignal } : {}), layers: store.layers() };
}
