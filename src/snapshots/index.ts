// Entry point of src/snapshots: the snapshotter (snapshotter.ts) and the chain ID helpers (chain.ts).
export { chainId, chainIds, validateDigest } from "./chain.ts";
export { MAX_MOUNT_DATA, OVERLAY_MAX_LOWER_DIRS } from "./overlay-options.ts";
export { openSnapshotter, type ActiveSnapshot, type ApplyLayer, type CommittedSnapshot, type Snapshotter, type SnapshotterKind, type WhiteoutMode } from "./snapshotter.ts";
