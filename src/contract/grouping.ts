// Which shim process serves a container. Containers with the same group key share one shim
// socket (and one Bun process), which is where bunker's memory advantage comes from: the default
// puts a whole containerd namespace in one shim, instead of one process per container.
//
// Precedence (first match wins):
//   1. annotation io.containerd.bunker.v1.group (bunker's own, explicit, per container)
//   2. annotation io.containerd.runc.v2.group (what the runc shim honours, kept compatible)
//   3. the runtime option `group` (the runtime handler's config: CRI's `options` table, its
//      config_path file or config_body)
//   4. annotation io.kubernetes.cri.sandbox-id (CRI: one shim per pod, as runc.v2 does)
//   5. BUNKER_SHIM_GROUP in the shim's environment (a host-wide default)
//   6. bunker's default: one shim per namespace
// The value "container" means one shim per container (group = container id), "namespace" the default.
//
// Why the runtime option sits above the sandbox id: runc.v2 has no such option, its order is its
// group annotation, then the sandbox id, then the container id. Under CRI every container carries
// the sandbox id, and CRI is the only caller that sends a runtime handler's options, so an option
// placed below the sandbox id could never take effect: the operator who writes `group = "container"`
// (or a shared name) for a RuntimeClass handler asks for exactly that, and gets it. The annotations
// stay above it because they are per container and reach the spec only through the handler's own
// `pod_annotations`/`container_annotations` allow-lists, which the same operator controls.
//
// The sandbox (pause) container and the pod's other containers (io.kubernetes.cri.container-type
// "sandbox" and "container") need no separate rule: CRI gives the sandbox its own id as sandbox-id,
// so the sandbox and its containers share one key.
import { InvalidArgumentError } from "../errdefs.ts";
import { goJoin } from "../gopath.ts";
import { groupFromOptions } from "./start-options.ts";
import { CONFIG_FILE, readBundleSpec } from "./bundle.ts";

export const BUNKER_GROUP_ANNOTATION = "io.containerd.bunker.v1.group";
export const RUNC_GROUP_ANNOTATION = "io.containerd.runc.v2.group";
export const CRI_SANDBOX_ANNOTATION = "io.kubernetes.cri.sandbox-id";
export const GROUP_PER_CONTAINER = "container";
export const GROUP_PER_NAMESPACE = "namespace";
/** The key of the namespace-wide group. "/" never appears in a container id, so it cannot collide. */
export const NAMESPACE_GROUP_KEY = "bunker/namespace";

/** The annotations a group is read from (the runtime option sits between the second and the third). */
export const GROUP_ANNOTATIONS: readonly string[] = [BUNKER_GROUP_ANNOTATION, RUNC_GROUP_ANNOTATION, CRI_SANDBOX_ANNOTATION];

export interface GroupInput {
  id: string;
  annotations?: Record<string, string> | undefined;
  /** The `group` runtime option, if any (above the CRI sandbox id). */
  option?: string | undefined;
  /** The environment's default (BUNKER_SHIM_GROUP), below every annotation. */
  fallback?: string | undefined;
}

function resolveValue(value: string, id: string): string {
  if (value === GROUP_PER_CONTAINER) return id;
  if (value === GROUP_PER_NAMESPACE) return NAMESPACE_GROUP_KEY;
  return value;
}

export function groupKey(input: GroupInput): string {
  const annotations = input.annotations ?? {};
  const annotation = (name: string): string | undefined => {
    const value = annotations[name];
    return value !== undefined && value !== "" ? value : undefined;
  };
  const chosen =
    annotation(BUNKER_GROUP_ANNOTATION) ??
    annotation(RUNC_GROUP_ANNOTATION) ??
    (input.option || undefined) ??
    annotation(CRI_SANDBOX_ANNOTATION) ??
    (input.fallback || undefined);
  return chosen === undefined ? NAMESPACE_GROUP_KEY : resolveValue(chosen, input.id);
}

/** The annotations of the bundle's config.json (the Go manager's readSpec, run in the bundle dir). */
export function readBundleAnnotations(bundle: string): Record<string, string> {
  const annotations = readBundleSpec(bundle).annotations;
  if (annotations === undefined || annotations === null) return {};
  if (typeof annotations !== "object" || Array.isArray(annotations)) {
    throw new InvalidArgumentError(`${goJoin(bundle, CONFIG_FILE)}: annotations must be an object`);
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
  return groupKey({ id, annotations: readBundleAnnotations(bundle), option: groupFromOptions(options), fallback: env[GROUP_ENV] });
}
