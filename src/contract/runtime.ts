// The runtime name of bunker's shim, as containerd, the CRI config, the CLI and the manager spell it
// (containerd maps io.containerd.bunker.v1 to the binary containerd-shim-bunker-v1).
export const BUNKER_RUNTIME = "io.containerd.bunker.v1";
