// bunker's answer to `-info` (containerd 2.x: CRI's runtime handler introspection, and the check
// before a task with idmap mounts): its name and version, the options it was given, and the OCI
// runtime's features document, as containerd-shim-runc-v2's manager.Info gives them. Like runc.v2
// it runs the runc binary the options name (containerd.runc.v1.Options.binary_name, or BinaryName in
// a CRI handler's `options` table, which bunker receives as runtimeoptions.v1.Options) and leaves
// `features` out when that runc has no `features` command (runc before 1.1), so containerd treats
// the runtime as featureless rather than failing. runc's root is not passed: `runc features` reads
// no state (runc.v2 does not pass it either). Options are decoded by field number, without the
// generated descriptors, so that -info costs little more than the runc it runs.
import { InvalidArgumentError } from "../../errdefs.ts";
import { BUNKER_RUNTIME } from "../../contract/runtime.ts";
import { anyTypeName, bytesFields, runtimeConfigText } from "../../contract/start-options.ts";
import type { RuntimeFeatures } from "../../oci/runtime.ts";
import { Runc } from "../../runc/runc.ts";
import { runcOptionsFromConfig } from "./handler-options.ts";
import type { RuntimeInfo } from "../../shim/runtime-info.ts";

/** Set by scripts/build.sh (`--define`); absent when running from sources. */
declare const BUNKER_COMMIT: string | undefined;

const RUNC_OPTIONS = "containerd.runc.v1.Options";
const RUNC_BINARY_NAME_FIELD = 6;

/** The runc binary the runtime options name; "" when they name none. */
export function binaryNameFromOptions(options: Uint8Array): string {
  if (options.length === 0) return "";
  const any = bytesFields(options);
  if (anyTypeName(any) === RUNC_OPTIONS) {
    const name = bytesFields(any.get(2) ?? new Uint8Array()).get(RUNC_BINARY_NAME_FIELD);
    return name ? new TextDecoder().decode(name) : "";
  }
  const config = runtimeConfigText(options);
  return config ? runcOptionsFromConfig(config).binaryName : "";
}

export interface InfoDeps {
  version: string;
  revision?: string;
  /** The features of the runc at `command` (tests substitute nothing: they run the real runc). */
  features?: (command: string) => Promise<RuntimeFeatures | undefined>;
}

export async function bunkerRuntimeInfo(options: Uint8Array, deps: InfoDeps): Promise<RuntimeInfo> {
  const binary = binaryNameFromOptions(options) || "runc";
  // runc.v2 refuses a binary it cannot find (exec.LookPath) rather than answering without features
  const resolved = binary.includes("/") ? binary : Bun.which(binary);
  if (!resolved) throw new InvalidArgumentError(`failed to look up the path of ${JSON.stringify(binary)}: not found in PATH`);
  const features = await (deps.features ?? ((command) => new Runc({ command }).features()))(resolved);
  const revision = deps.revision ?? (typeof BUNKER_COMMIT !== "undefined" && BUNKER_COMMIT ? BUNKER_COMMIT : "dev");
  return {
    name: BUNKER_RUNTIME,
    version: { version: deps.version, revision },
    options,
    ...(features !== undefined ? { features } : {}),
  };
}
