// Symlink-safe path resolution inside a root, as continuity's `fs.RootPath` does for containerd's
// applier: the path is walked one component at a time with lstat, every symlink met is read and
// followed as if `root` were "/" (an absolute target restarts at root, ".." stops at root), so no
// symlink a layer plants can make a later write land outside the root. Components that do not exist
// (yet) are taken literally. Like Linux, at most 255 symlinks are followed.
import { lstatSync, readlinkSync } from "node:fs";
import { posix } from "node:path";
import { InvalidArgumentError } from "../errdefs.ts";

const MAX_SYMLINKS = 255;

/** The archive name as a clean path relative to root: absolute names and ".." climbs stay inside. */
export function cleanEntryName(name: string): string {
  return posix.normalize(`/${name}`).replace(/^\/+/, "").replace(/\/+$/, "");
}

function components(path: string): string[] {
  return path.split("/").filter((part) => part !== "" && part !== ".");
}

/**
 * `path` (relative to root, or absolute meaning relative to root) with every symlink in it resolved
 * inside root; the result is root itself or a path under it. With `followLast: false` the last
 * component is kept as it is (the entry to create or replace, or a hardlink's target).
 */
export function resolveInRoot(root: string, path: string, followLast = true): string {
  const pending = components(path);
  const resolved: string[] = [];
  let followed = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === "..") {
      resolved.pop();
      continue;
    }
    if (pending.length === 0 && !followLast) {
      resolved.push(part);
      break;
    }
    const candidate = joinRoot(root, [...resolved, part]);
    let isLink = false;
    try {
      isLink = lstatSync(candidate).isSymbolicLink();
    } catch {
      // ENOENT or ENOTDIR: nothing to follow here, the rest is literal.
    }
    if (!isLink) {
      resolved.push(part);
      continue;
    }
    if (++followed > MAX_SYMLINKS) throw new InvalidArgumentError(`too many levels of symbolic links resolving ${JSON.stringify(path)} in ${root}`);
    const target = readlinkSync(candidate);
    if (target.startsWith("/")) resolved.length = 0;
    pending.unshift(...components(target));
  }
  return joinRoot(root, resolved);
}

function joinRoot(root: string, parts: string[]): string {
  return parts.length === 0 ? root : `${root === "/" ? "" : root}/${parts.join("/")}`;
}
