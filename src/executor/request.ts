// Pure conversions from the executor's inputs to bunker.v1 requests: the OCI spec (plugin style,
// with an absolute root.path) to a bundle spec plus a rootfs to bind-mount, the runtime name to a
// shim and its options through the runtime config, and signals by name or number.
import { fromBinary } from "@bufbuild/protobuf";
import { type Any, AnySchema } from "@bufbuild/protobuf/wkt";
import { constants } from "node:os";
import { isAbsolute } from "node:path";
import {
  applyShimGroup,
  defaultRuntimeConfig,
  generateRuntimeOptions,
  getRuntime,
  marshalRuntimeOptions,
  RUNTIME_BUNKER_V1,
  type RuntimeConfig,
} from "../config/runtime-config.ts";
import { InvalidArgumentError, errorMessage } from "../errdefs.ts";
import { binaryName } from "../contract/runtime.ts";

export const DEFAULT_EXECUTOR_RUNTIME = RUNTIME_BUNKER_V1;

export interface PreparedSpec {
  /** The host directory the shim bind-mounts onto the bundle's rootfs ("" for an image's container). */
  rootfs: string;
  /** A container from an image: its name and top snapshot, over which the container gets its own layer. */
  image?: { image: string; parent: string };
  /** config.json for the bundle: the caller's spec with root.path pointing at that mount. */
  json: Uint8Array;
  terminal: boolean;
}

/**
 * The seed hands containerd a spec whose root.path is the plugin's rootfs on the host. Bunker's API
 * takes that directory separately and mounts it at <bundle>/rootfs, so the spec says "rootfs".
 * The caller's object is not modified.
 */
export function prepareSpec(spec: unknown): PreparedSpec {
  if (typeof spec !== "object" || spec === null || Array.isArray(spec)) throw new InvalidArgumentError("the OCI spec must be an object");
  let copy: Record<string, unknown>;
  try {
    copy = JSON.parse(JSON.stringify(spec)) as Record<string, unknown>;
  } catch (err) {
    throw new InvalidArgumentError(`the OCI spec cannot be serialized as JSON: ${errorMessage(err)}`);
  }
  const root = copy.root as { path?: unknown } | undefined;
  if (typeof root !== "object" || root === null || typeof root.path !== "string" || !isAbsolute(root.path)) {
    throw new InvalidArgumentError("the OCI spec's root.path must be the absolute path of the container's root filesystem");
  }
  const process = copy.process as { args?: unknown; terminal?: unknown } | undefined;
  if (typeof process !== "object" || process === null || !Array.isArray(process.args) || process.args.length === 0) {
    throw new InvalidArgumentError("the OCI spec's process.args must name the program to run");
  }
  const rootfs = root.path;
  root.path = "rootfs";
  return { rootfs, json: new TextEncoder().encode(JSON.stringify(copy)), terminal: process.terminal === true };
}

/** The prepared spec with the config's shim_group applied to its annotations (see applyShimGroup). */
export function withShimGroup(prepared: PreparedSpec, config: RuntimeConfig | undefined): PreparedSpec {
  if (config?.shimGroup !== "container") return prepared;
  const spec = JSON.parse(new TextDecoder().decode(prepared.json)) as { annotations?: unknown };
  const current = typeof spec.annotations === "object" && spec.annotations !== null && !Array.isArray(spec.annotations) ? (spec.annotations as Record<string, string>) : {};
  spec.annotations = applyShimGroup(config, current);
  return { ...prepared, json: new TextEncoder().encode(JSON.stringify(spec)) };
}

export interface ResolvedRuntime {
  /** What CreateRequest.runtime takes: io.containerd.NAME.VERSION or a shim's absolute path. */
  runtime: string;
  options: Any | undefined;
}

/**
 * With a runtime config, `name` (or the config's default) is looked up there, as the seed looks up
 * dockerd's runtime to get the shim binary and its options. Without one, the built-in names
 * (`bunker`, `runc`) are known and anything else is taken as a runtime type or a shim's path.
 */
export function resolveRuntime(name: string | undefined, config: RuntimeConfig | undefined): ResolvedRuntime {
  let cfg = config;
  if (cfg === undefined) {
    if (name === undefined || name === "") return { runtime: DEFAULT_EXECUTOR_RUNTIME, options: undefined };
    const builtin = defaultRuntimeConfig();
    if (Object.hasOwn(builtin.runtimes, name)) cfg = builtin;
    else {
      if (!isAbsolute(name)) binaryName(name); // InvalidArgument for a malformed name, before any container exists
      return { runtime: name, options: undefined };
    }
  }
  const entry = getRuntime(cfg, name);
  const generated = generateRuntimeOptions(entry);
  return {
    runtime: entry.path !== "" ? entry.path : entry.type,
    options: generated === null ? undefined : fromBinary(AnySchema, marshalRuntimeOptions(generated)),
  };
}

/** A signal number from a number or a name (`SIGTERM`, `TERM`); InvalidArgument otherwise. */
export function parseSignal(signal: number | string): number {
  let n: number | undefined;
  if (typeof signal === "number") n = signal;
  else if (/^\d+$/.test(signal)) n = Number(signal);
  else {
    const upper = signal.toUpperCase();
    const name = (upper.startsWith("SIG") ? upper : `SIG${upper}`) as keyof typeof constants.signals;
    n = Object.hasOwn(constants.signals, name) ? constants.signals[name] : undefined;
  }
  // 0 would reach the service as "unset" and become SIGTERM: refuse it rather than surprise.
  if (n === undefined || !Number.isInteger(n) || n < 1 || n > 64) throw new InvalidArgumentError(`invalid signal ${JSON.stringify(signal)}`);
  return n;
}
