// The overlay mount's data string, kept within the kernel's limits. mount(2) copies at most one
// page (4096 bytes, NUL included) of options, and overlayfs stacks at most 500 lower dirs
// (OVL_MAX_STACK in fs/overlayfs/params.h). Absolute paths under a store such as
// /var/lib/bunker/snapshots/overlayfs/ cost ~45 bytes a layer, so past ~90 layers the options no
// longer fit. containerd's mount_linux.go (compactLowerdirOption + mountAt) answers this by making
// the paths relative to their longest common directory and mounting from inside it; we do the same
// (our snapshot dirs are short numbers, "123/fs", so 500 layers fit in a page). Absolute paths are
// kept whenever they fit, because they are what /proc/self/mountinfo shows a person debugging.
import { InvalidArgumentError } from "../errdefs.ts";
import { commonDir } from "../linux/mount.ts";

export const OVERLAY_MAX_LOWER_DIRS = 500;
/** The longest options string mount(2) accepts: one page minus the terminating NUL. */
export const MAX_MOUNT_DATA = 4095;

export interface OverlayPlan {
  /** The directory to chdir into before mount(2) when the paths are relative; absent when absolute. */
  chdir?: string;
  data: string;
}

/** `lowers` is top first, as overlayfs reads lowerdir (the image's top layer leftmost). */
export function overlayMountPlan(opts: { upper: string; work: string; lowers: readonly string[]; extra?: readonly string[] }): OverlayPlan {
  const { upper, work, lowers } = opts;
  if (lowers.length === 0) throw new InvalidArgumentError("an overlay mount needs at least one lower dir");
  if (lowers.length > OVERLAY_MAX_LOWER_DIRS) {
    throw new InvalidArgumentError(`image has ${lowers.length} layers; overlayfs stacks at most ${OVERLAY_MAX_LOWER_DIRS} lower directories (the kernel's OVL_MAX_STACK)`);
  }
  const all = [upper, work, ...lowers];
  for (const p of all) {
    if (!p.startsWith("/")) throw new InvalidArgumentError(`overlay dir ${JSON.stringify(p)} is not absolute`);
    if (/[:,\\]/.test(p)) throw new InvalidArgumentError(`overlay dir ${JSON.stringify(p)} contains ':', ',' or '\\', which overlayfs options cannot carry`);
  }
  const absolute = joinData(opts.extra ?? [], upper, work, lowers);
  if (absolute.length <= MAX_MOUNT_DATA) return { data: absolute };

  const common = commonDir(all);
  const rel = (p: string) => (common === "/" ? p.slice(1) : p.slice(common.length + 1));
  const data = joinData(opts.extra ?? [], rel(upper), rel(work), lowers.map(rel));
  if (data.length > MAX_MOUNT_DATA) {
    throw new InvalidArgumentError(`overlay mount options for ${lowers.length} layers take ${data.length} bytes even relative to ${common}; mount(2) takes at most ${MAX_MOUNT_DATA}`);
  }
  return { chdir: common, data };
}

function joinData(extra: readonly string[], upper: string, work: string, lowers: readonly string[]): string {
  return [...extra, `workdir=${work}`, `upperdir=${upper}`, `lowerdir=${lowers.join(":")}`].join(",");
}

/** The options with absolute paths, as a mount list carries them to the shim (linux/mount.ts compacts them past a page). */
export function overlayOptions(opts: { upper: string; work: string; lowers: readonly string[]; extra?: readonly string[] }): string[] {
  return joinData(opts.extra ?? [], opts.upper, opts.work, opts.lowers).split(",");
}

export { commonDir };
