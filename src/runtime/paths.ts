// Where a bunker instance keeps what is not a bundle, and what names it on the host. Light on
// purpose (no imports beyond Bun's hasher): the CLI's foreground fast path reads it.

export const DEFAULT_ROOT = "/var/lib/bunker";
export const DEFAULT_STATE = "/run/bunker";
export const DEFAULT_ADDRESS = "/run/bunker/bunker.sock";

/** runc's state root for runc-type shims and foreground runs (the shim appends the namespace; see runc-root.ts). */
export function managerRuncRoot(state: string): string {
  return `${state.replace(/\/+$/, "")}/runc`;
}

/**
 * The cgroup parent of this bunker's containers: /bunker for the default instance, /bunker-<8 hex of
 * sha256(address)> for any other. runc joins an existing cgroup, and `kill --all` signals all of it,
 * so two owners' containers of one name (two bunkers, or bunker and containerd's `/<ns>/<id>`) must
 * never share one. The address names the instance, as it does for the shims' sockets.
 */
export function cgroupParent(address: string): string {
  if (address === DEFAULT_ADDRESS) return "/bunker";
  return `/bunker-${new Bun.CryptoHasher("sha256").update(address).digest("hex").slice(0, 8)}`;
}

/** Where binaries are looked for when PATH is unset or lacks them (Go's and containerd's default for root). */
export const DEFAULT_SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
