// Runtime names as containerd, the runtime config, the CLI and the manager spell them (containerd
// maps io.containerd.NAME.VERSION to the binary containerd-shim-NAME-VERSION), and which of them
// take containerd.runc.v1.Options.
export const BUNKER_RUNTIME = "io.containerd.bunker.v1";
export const RUNTIME_RUNC_V1 = "io.containerd.runc.v1";
export const RUNTIME_RUNC_V2 = "io.containerd.runc.v2";
/** Runtime types whose shim takes containerd.runc.v1.Options (their `root` is runc's state root). */
export const RUNC_RUNTIME_TYPES: readonly string[] = [RUNTIME_RUNC_V1, RUNTIME_RUNC_V2, BUNKER_RUNTIME];
export const RUNC_OPTIONS_TYPE_URL = "containerd.runc.v1.Options";
