// Which shim process serves a container. Containers with the same group key share one shim
// socket (and one Bun process), which is where bunker's memory advantage comes from: the default
// puts a whole containerd namespace in one shim, instead of one process per container.
//
// Precedence (first match wins):
//   1. annotation io.containerd.bunker.v1.group (bunker's own, explicit)
//   2. annotation io.containerd.runc.v2.group (what the runc shim honours, kept compatible)
//   3. annotation io.kubernetes.cri.sandbox-id (CRI: one shim per pod, as runc.v2 does)
//   4. the runtime option `group` (set per runtime handler)
//   5. bunker's default: one shim per namespace
// The value "container" means one shim per container (group = container id), "namespace" the default.
import { join } from "node:path";
import { InvalidArgumentError } from "../errdefs.ts";
import { groupFromOptions } from "./start-options.ts";
import { CONFIG_FILE, readBundleSpec } from "./bundle.ts";

export const BUNKER_GROUP_ANNOTATION = "io.containerd.bunker.v1.group";
export const RUNC_GROUP_ANNOTATION = "io.containerd.runc.v2.group";
export const CRI_SANDBOX_ANNOTATION = "io.kubernetes.cri.sandbox-id";
export const GROUP_PER_CONTAINER = "container";
export const GROUP_PER_NAMESPACE = "namespace";
/** The key of the namespace-wide group. "/" never appears in a container id, so it cannot collide. */
export const NAMESPACE_GROUP_KEY = "bunker/namespace";

/** The annotations a group is read from, first match wins. */
export const GROUP_ANNOTATIONS: readonly string[] = [BUNKER_GROUP_ANNOTATION, RUNC_GROUP_ANNOTATION, CRI_SANDBOX_ANNOTATION];

export interface GroupInput {
  id: string;
  annotations?: Record<string, string> | undefined;
  /** The `group` runtime option, if any. */
  option?: string | undefined;
}

function resolveValue(value: string, id: string): string {
  if (value === GROUP_PER_CONTAINER) return id;
  if (value === GROUP_PER_NAMESPACE) return NAMESPACE_GROUP_KEY;
  return value;
}

export function groupKey(input: GroupInput): string {
  const annotations = input.annotations ?? {};
  for (const name of GROUP_ANNOTATIONS) {
    const value = annotations[name];
    if (value !== undefined && value !== "") return resolveValue(value, input.id);
  }
  if (input.option) return resolveValue(input.option, input.id);
  return NAMESPACE_GROUP_KEY;
}

/** The annotations of the bundle's config.json (the Go manager's readSpec, run in the bundle dir). */
export function readBundleAnnotations(bundle: string): Record<string, string> {
  const annotations = readBundleSpec(bundle).annotations;
  if (annotations === undefined || annotations === null) return {};
  if (typeof annotations !== "object" || Array.isArray(annotations)) {
    throw new InvalidArgumentError(`${join(bundle, CONFIG_FILE)}: annotations must be an object`);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(annotations)) if (typeof v === "string") out[k] = v;
  return out;
}

/**
 * Environment knob for the default group ("namespace", "container" or a name), below annotations
 * and the runtime options' config file. The shim's `start` reads it from its environment, which it
 * inherits from whoever runs it; bunker's own manager reads its own, so both compute one answer.
 */
export const GROUP_ENV = "BUNKER_SHIM_GROUP";

/**
 * The group of a container of bunker's shim: the one rule both the shim's `start` and bunker's own
 * manager (which connects directly to a group's live shim instead of spawning `start`) apply.
 */
export function bunkerGroup(id: string, bundle: string, options: Uint8Array, env: Record<string, string | undefined> = process.env): string {
  return groupKey({ id, annotations: readBundleAnnotations(bundle), option: groupFromOptions(options) ?? env[GROUP_ENV] });
}
