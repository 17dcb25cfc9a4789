// Copying files and directories into and out of a container's root filesystem, for `bunker cp`,
// with docker cp's rules (where a copy lands, what is refused, who owns the result) and its
// safety property: a symlink inside the container never makes a read or a write reach outside it.
//
// docker cp streams a tar between the daemon and the CLI; here the CLI is on the host and reaches
// the rootfs directly, so the tree is copied file by file instead, and what tar would enforce on
// extraction is done per entry: every path written under the root is resolved inside it
// (root-path.ts, continuity's RootPath: an absolute link restarts at the root, ".." stops there),
// and the last component is never followed: an entry already there that is not a directory (a
// symlink included) is replaced, not written through. Reading never follows a link either: the
// tree is walked with lstat and files are opened O_NOFOLLOW, then checked with fstat. Between those
// checks a running container could swap a directory for a link; the caller freezes it for the
// copy (moby's fix of CVE-2018-15664), which closes that window.
//
// Ownership is docker's: into a container, root's (0:0); out of one, the invoking user's; with
// `-a` (archive) the source's. Modes and modification times are kept as tar keeps them, and as
// the layer applier does, chown comes before chmod (chown clears setuid) and a directory's times
// are set after its children are written.
import { chmodSync, closeSync, constants, fstatSync, lchownSync, lstatSync, lutimesSync, mkdirSync, openSync, readdirSync, readlinkSync, readSync, rmSync, type Stats, symlinkSync, unlinkSync, writeSync } from "node:fs";
import { posix } from "node:path";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errdefs.ts";
import { resolveInRoot } from "./root-path.ts";

/** The one resolution both directions use, for the caller's checks before the copy. */
export { resolveInRoot };

const CHUNK = 1 << 20;

/** What is at the destination as given, before the copy (lstat after resolving it). */
export interface DestinationState {
  exists: boolean;
  isDirectory: boolean;
}

/**
 * Where the copied entry lands, by docker cp's rules (relative or absolute as `dst` is):
 * a file onto a missing path is saved there, unless the path ends in "/" (a directory that does
 * not exist); onto a file it overwrites, into a directory it keeps its name. A directory onto a
 * missing path becomes that path, onto a file is refused, into a directory keeps its name unless
 * the source ends in "/." (its contents are merged in).
 */
export function copyTarget(src: string, srcIsDirectory: boolean, dst: string, dstState: DestinationState): string {
  if (!srcIsDirectory && /\/\.?$/.test(src)) throw new InvalidArgumentError(`${src}: not a directory`);
  const contentsOnly = /(^|\/)\.$/.test(src);
  const name = posix.basename(posix.normalize(src));
  if (!dstState.exists) {
    if (!srcIsDirectory && dst.endsWith("/")) throw new NotFoundError(`destination directory ${dst} does not exist`);
    return dst;
  }
  if (!dstState.isDirectory) {
    if (srcIsDirectory) throw new InvalidArgumentError(`cannot copy a directory to a file (${dst})`);
    return dst;
  }
  if (contentsOnly || name === "/" || name === "." || name === "") return dst;
  return posix.join(dst, name);
}

export interface CopyOptions {
  /** Every entry's owner; undefined keeps the source's (`cp -a`). */
  owner?: { uid: number; gid: number };
}

/** Where each entry of the copy is written: `rel` is its path under the copied top entry ("" for it). */
export type WritePath = (rel: string) => string;

/** A writer for a host path: paths taken as they are (the host is the user's to write into). */
export function hostWriter(target: string): WritePath {
  return (rel) => (rel === "" ? target : posix.join(target, rel));
}

/** A writer inside a root: each path resolved in it, its last component never followed. */
export function rootWriter(root: string, target: string): WritePath {
  return (rel) => resolveInRoot(root, rel === "" ? target : posix.join(target, rel), false);
}

/** lstat, or undefined when nothing is there (or it cannot be seen). */
export function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

/** Makes room for a new entry at `path`: anything but a directory met by a directory is removed. */
function clear(path: string, forDirectory: boolean): boolean {
  const st = lstatOrUndefined(path);
  if (!st) return false;
  if (st.isDirectory()) {
    if (forDirectory) return true;
    throw new FailedPreconditionError(`cannot overwrite directory ${path} with a non-directory`);
  }
  unlinkSync(path);
  return false;
}

function applyMetadata(path: string, st: Stats, o: CopyOptions, isLink: boolean): void {
  const owner = o.owner ?? { uid: st.uid, gid: st.gid };
  lchownSync(path, owner.uid, owner.gid);
  if (!isLink) chmodSync(path, st.mode & 0o7777);
  lutimesSync(path, st.atime, st.mtime);
}

function copyFileData(srcPath: string, dstPath: string): Stats {
  const inFd = openSync(srcPath, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = fstatSync(inFd);
    if (!st.isFile()) throw new FailedPreconditionError(`${srcPath} changed while it was copied`);
    const outFd = openSync(dstPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      const buf = Buffer.allocUnsafe(CHUNK);
      for (;;) {
        const n = readSync(inFd, buf, 0, CHUNK, null);
        if (n === 0) break;
        for (let off = 0; off < n; ) off += writeSync(outFd, buf, off, n - off);
      }
    } finally {
      closeSync(outFd);
    }
    return st;
  } finally {
    closeSync(inFd);
  }
}

export interface CopyResult {
  /** Entries that are neither files, directories nor symlinks (devices, FIFOs, sockets): not copied. */
  skipped: string[];
}

/**
 * Copies the entry at `srcPath` (a real path: already resolved, never followed) and everything
 * under it to `write("")` and below. With `followTop`, a symlink at `srcPath` itself is copied as
 * what it points to (cp -L; the caller resolved it safely).
 */
export function copyTree(srcPath: string, write: WritePath, o: CopyOptions = {}): CopyResult {
  const result: CopyResult = { skipped: [] };
  const walk = (src: string, rel: string): void => {
    const st = lstatSync(src);
    const dst = write(rel);
    if (st.isDirectory()) {
      if (!clear(dst, true)) mkdirSync(dst, { mode: 0o700 });
      for (const name of readdirSync(src).sort()) walk(posix.join(src, name), rel === "" ? name : posix.join(rel, name));
      applyMetadata(write(rel), st, o, false);
      return;
    }
    if (st.isSymbolicLink()) {
      clear(dst, false);
      symlinkSync(readlinkSync(src), dst);
      applyMetadata(dst, st, o, true);
      return;
    }
    if (st.isFile()) {
      clear(dst, false);
      applyMetadata(dst, copyFileData(src, dst), o, false);
      return;
    }
    result.skipped.push(src);
  };
  walk(srcPath, "");
  return result;
}

/** Removes what a failed copy made at a target that did not exist before (never an existing tree). */
export function removePartial(path: string): void {
  rmSync(path, { recursive: true, force: true });
}
