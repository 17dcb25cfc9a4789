// Runtime names as containerd, the runtime config, the CLI and the manager spell them (containerd
// maps io.containerd.NAME.VERSION to the binary containerd-shim-NAME-VERSION), and which of them
// take containerd.runc.v1.Options.
import { InvalidArgumentError } from "../errdefs.ts";

export const BUNKER_RUNTIME = "io.containerd.bunker.v1";
export const RUNTIME_RUNC_V1 = "io.containerd.runc.v1";
export const RUNTIME_RUNC_V2 = "io.containerd.runc.v2";
/** Runtime types whose shim takes containerd.runc.v1.Options (their `root` is runc's state root). */
export const RUNC_RUNTIME_TYPES: readonly string[] = [RUNTIME_RUNC_V1, RUNTIME_RUNC_V2, BUNKER_RUNTIME];
export const RUNC_OPTIONS_TYPE_URL = "containerd.runc.v1.Options";

const SHIM_BINARY_FORMAT = (name: string, version: string): string => `containerd-shim-${name}-${version}`;
const PART = /^[A-Za-z0-9_-]+$/;

/** `io.containerd.runc.v2` -> `containerd-shim-runc-v2`. */
export function binaryName(runtime: string): string {
  if (runtime.length === 0) throw new InvalidArgumentError("runtime name must not be empty");
  if (runtime.includes("/")) {
    throw new InvalidArgumentError(`runtime ${JSON.stringify(runtime)} has a path separator but is not an absolute path`);
  }
  const parts = runtime.split(".");
  const name = parts[parts.length - 2];
  const version = parts[parts.length - 1];
  if (parts.length < 2 || name === undefined || version === undefined || !PART.test(name) || !PART.test(version)) {
    throw new InvalidArgumentError(`runtime ${JSON.stringify(runtime)} must look like io.containerd.NAME.VERSION`);
  }
  return SHIM_BINARY_FORMAT(name, version);
}
