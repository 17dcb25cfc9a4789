// `bunker cp`'s tar streams (docker cp with "-"): a container's file or tree written as a tar
// (`cp CONTAINER:PATH -`) and a tar extracted into a directory of a container (`cp - CONTAINER:DIR`).
//
// Out: docker's layout (moby's TarResourceRebase): the top entry is named after the copied path's
// base name (a directory's children under it), or "." for "DIR/." (its contents), with the owners,
// modes and times the container has; hardlinked files are written once and linked after, as Go's
// tar writer does. The tree is read as container-copy.ts reads it (lstat, O_NOFOLLOW, fstat), so a
// symlink inside is written as a symlink, never followed.
//
// In: moby's Unpack rules for cp, stricter where docker leans on its chroot. Before anything is
// written, a first pass over the whole archive refuses what is hostile by its names alone: an
// absolute name, a name or hardlink that climbs out with "..", a symlink whose relative target
// leaves the directory (docker's "breakout" errors; docker strips a leading "/" and goes on, bunker
// says no, since no tar tool writes one unasked). The second pass writes each entry under the
// directory with its parent resolved inside the container's root (root-path.ts) and checked to be
// still under the directory, so a symlink already there, or one the archive made, can never carry a
// write elsewhere; the entry itself is never followed. As docker cp does (NoOverwriteDirNonDir), a
// directory is never replaced by a non-directory nor the reverse. Owners are root's (0:0) unless
// the caller keeps the archive's (`-a`), as docker's CopyUIDGID. Sockets cannot be in a tar and are
// skipped on the way out, as Go's archive/tar refuses them.
import { chmodSync, closeSync, constants, fstatSync, lchownSync, linkSync, lstatSync, lutimesSync, mkdirSync, openSync, readdirSync, readlinkSync, readSync, symlinkSync, unlinkSync, writeSync } from "node:fs";
import { posix } from "node:path";
import { FailedPreconditionError, InvalidArgumentError } from "../errdefs.ts";
import { sys as defaultSys, type Syscalls } from "../sys/index.ts";
import { lstatOrUndefined } from "./container-copy.ts";
import { resolveInRoot } from "./root-path.ts";
import { TarReader, type TarHeader } from "./tar.ts";
import { tarStream, type TarWriteEntry } from "./tar-writer.ts";

const CHUNK = 1 << 20;
const NODE_TYPE = { char: constants.S_IFCHR, block: constants.S_IFBLK, fifo: constants.S_IFIFO } as const;

function nsOf(ms: number): bigint {
  return BigInt(Math.round(ms * 1000)) * 1000n;
}

async function* fileBody(path: string, size: number): AsyncGenerator<Uint8Array> {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    if (!fstatSync(fd).isFile()) throw new FailedPreconditionError(`${path} changed while it was copied`);
    let left = size;
    while (left > 0) {
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, left));
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) throw new FailedPreconditionError(`${path} shrank while it was copied`);
      left -= n;
      yield buf.subarray(0, n);
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * The tar of the entry at `srcPath` (a real path, already resolved inside the container's root and
 * never followed) and everything under it, named `topName` ("." for a directory's contents).
 * `onSkipped` hears of sockets, which a tar cannot hold.
 */
export function treeTarStream(srcPath: string, topName: string, onSkipped: (path: string) => void = () => undefined): ReadableStream<Uint8Array> {
  const seenInodes = new Map<string, string>();
  async function* entries(): AsyncGenerator<TarWriteEntry> {
    const walk = async function* (path: string, name: string): AsyncGenerator<TarWriteEntry> {
      const st = lstatSync(path);
      const base = { name, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtimeNs: nsOf(st.mtimeMs) };
      if (st.isDirectory()) {
        yield { header: { ...base, type: "dir" } };
        for (const child of readdirSync(path).sort()) yield* walk(posix.join(path, child), name === "." ? `./${child}` : `${name}/${child}`);
      } else if (st.isSymbolicLink()) {
        yield { header: { ...base, type: "symlink", linkname: readlinkSync(path) } };
      } else if (st.isFile()) {
        const inode = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? seenInodes.get(inode) : undefined;
        if (first !== undefined) {
          yield { header: { ...base, type: "hardlink", linkname: first } };
          return;
        }
        if (st.nlink > 1) seenInodes.set(inode, name);
        yield { header: { ...base, type: "file", size: st.size }, body: fileBody(path, st.size) };
      } else if (st.isFIFO() || st.isCharacterDevice() || st.isBlockDevice()) {
        const type = st.isFIFO() ? "fifo" : st.isCharacterDevice() ? "char" : "block";
        yield { header: { ...base, type, devmajor: Number((BigInt(st.rdev) >> 8n) & 0xfffn), devminor: (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00) } };
      } else {
        onSkipped(path);
      }
    };
    yield* walk(srcPath, topName);
  }
  return tarStream(entries());
}

/** An entry name made relative and checked: absolute names and climbs out with ".." are refused. */
export function checkedEntryName(name: string): string {
  if (name.startsWith("/")) throw new InvalidArgumentError(`tar entry ${JSON.stringify(name)}: absolute names are refused`);
  const clean = posix.normalize(name).replace(/\/+$/, "");
  if (clean === ".." || clean.startsWith("../")) throw new InvalidArgumentError(`tar entry ${JSON.stringify(name)}: outside of the target directory`);
  return clean === "." ? "" : clean.replace(/^\.\//, "");
}

/** The lexical checks of one header, for the first pass (nothing written yet). */
export function checkHeader(header: TarHeader): void {
  const name = checkedEntryName(header.name);
  if (header.type === "symlink" && !header.linkname.startsWith("/")) {
    const target = posix.normalize(posix.join(posix.dirname(name === "" ? "." : name), header.linkname));
    if (target === ".." || target.startsWith("../")) throw new InvalidArgumentError(`tar entry ${JSON.stringify(header.name)}: symlink to ${JSON.stringify(header.linkname)} points outside of the target directory`);
  }
  if (header.type === "hardlink") {
    if (header.linkname.startsWith("/")) throw new InvalidArgumentError(`tar entry ${JSON.stringify(header.name)}: hardlink to an absolute name ${JSON.stringify(header.linkname)}`);
    const target = posix.normalize(header.linkname);
    if (target === ".." || target.startsWith("../") || target === ".") throw new InvalidArgumentError(`tar entry ${JSON.stringify(header.name)}: hardlink to ${JSON.stringify(header.linkname)} is outside of the target directory`);
  }
}

export interface ExtractOptions {
  /** Every entry's owner; undefined keeps the archive's (`cp -a`). */
  owner?: { uid: number; gid: number };
  sys?: Syscalls;
}

function under(dir: string, path: string): boolean {
  return path === dir || path.startsWith(dir === "/" ? "/" : `${dir}/`);
}

/**
 * Extracts a tar into `dir` of the container whose root is `root` (`dir` is the container's path,
 * already checked to be a directory). `open` gives the archive from its start each time it is
 * called: it is read twice (checked whole, then written).
 */
export async function extractTarInto(root: string, dir: string, open: () => ReadableStream<Uint8Array>, o: ExtractOptions = {}): Promise<number> {
  const first = new TarReader(open());
  let count = 0;
  try {
    for (let e = await first.next(); e; e = await first.next()) {
      checkHeader(e.header);
      count++;
    }
  } catch (err) {
    await first.cancel(err);
    throw err;
  }
  const top = resolveInRoot(root, dir, true);
  const dirTimes: { path: string; atime: number; mtime: number }[] = [];
  const reader = new TarReader(open());
  let name = "";
  try {
    for (let e = await reader.next(); e; e = await reader.next()) {
      const { header, body } = e;
      name = header.name;
      const rel = checkedEntryName(header.name);
      if (rel === "") continue; // the archive's "./": the target keeps its own metadata
      const slash = rel.lastIndexOf("/");
      const parentRel = slash < 0 ? "" : rel.slice(0, slash);
      const parent = resolveInRoot(root, posix.join(dir, parentRel), true);
      if (!under(top, parent)) throw new InvalidArgumentError(`goes through a symlink out of ${dir}`);
      const parentSt = lstatOrUndefined(parent);
      if (!parentSt) mkdirSync(parent, { recursive: true, mode: 0o755 });
      else if (!parentSt.isDirectory()) throw new FailedPreconditionError(`${posix.join(dir, parentRel)} is not a directory`);
      const path = posix.join(parent, rel.slice(slash + 1));
      const existing = lstatOrUndefined(path);
      if (existing?.isDirectory() && header.type !== "dir") throw new FailedPreconditionError(`cannot overwrite directory ${posix.join(dir, rel)} with a non-directory`);
      if (existing && !existing.isDirectory() && header.type === "dir") throw new FailedPreconditionError(`cannot overwrite non-directory ${posix.join(dir, rel)} with a directory`);
      if (existing && !existing.isDirectory()) unlinkSync(path);
      switch (header.type) {
        case "dir":
          if (!existing) mkdirSync(path, 0o700);
          break;
        case "file": {
          const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
          try {
            for await (const chunk of body) for (let off = 0; off < chunk.length; ) off += writeSync(fd, chunk, off, chunk.length - off);
          } finally {
            closeSync(fd);
          }
          break;
        }
        case "symlink":
          symlinkSync(header.linkname, path);
          break;
        case "hardlink": {
          const target = resolveInRoot(root, posix.join(dir, checkedEntryName(header.linkname)), false);
          const st = under(top, target) ? lstatOrUndefined(target) : undefined;
          if (!st || st.isDirectory()) throw new InvalidArgumentError(`hardlink to ${JSON.stringify(header.linkname)}: no such file in the archive's directory`);
          linkSync(target, path);
          continue; // the target's inode already has its metadata
        }
        default:
          (o.sys ?? defaultSys()).mknod(path, NODE_TYPE[header.type] | header.mode, header.devmajor, header.devminor);
      }
      const owner = o.owner ?? { uid: header.uid, gid: header.gid };
      lchownSync(path, owner.uid, owner.gid);
      if (header.type !== "symlink") chmodSync(path, header.mode); // after chown, which clears setuid
      const mtime = Number(header.mtimeNs / 1000n) / 1e6;
      if (header.type === "dir") dirTimes.push({ path, atime: mtime, mtime });
      else lutimesSync(path, mtime, mtime);
    }
    for (const t of dirTimes.reverse()) lutimesSync(t.path, t.atime, t.mtime);
  } catch (err) {
    await reader.cancel(err);
    const message = err instanceof Error ? err.message.split("\n")[0] : String(err);
    const Cls = err instanceof InvalidArgumentError ? InvalidArgumentError : FailedPreconditionError;
    throw new Cls(`tar entry ${JSON.stringify(name)}: ${message}`, { cause: err });
  }
  return count;
}
