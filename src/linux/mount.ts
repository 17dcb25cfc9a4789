// Mounting the rootfs a CreateTaskRequest carries (snapshotter mounts: overlay, bind) the way
// containerd's mount.Mount does on Linux (mount/mount_linux.go): the same option table, unknown
// options passed to the filesystem as data, and a read-only bind applied by a second remount.
import { resolve } from "node:path";
import { InvalidArgumentError, NotImplementedError } from "../errdefs.ts";
import type { Syscalls } from "../sys/types.ts";

export interface MountSpec {
  type: string;
  source: string;
  options: readonly string[];
}

const MS_RDONLY = 0x1;
const MS_NOSUID = 0x2;
const MS_NODEV = 0x4;
const MS_NOEXEC = 0x8;
const MS_SYNCHRONOUS = 0x10;
const MS_REMOUNT = 0x20;
const MS_MANDLOCK = 0x40;
const MS_DIRSYNC = 0x80;
const MS_NOATIME = 0x400;
const MS_NODIRATIME = 0x800;
const MS_BIND = 0x1000;
const MS_REC = 0x4000;
const MS_RELATIME = 0x200000;
const MS_STRICTATIME = 0x1000000;

const PAGE_SIZE = 4096;

/** [clear?, flag] exactly as containerd 1.6's table ("defaults" has no bit, so it falls to data). */
const OPTIONS: Record<string, [boolean, number]> = {
  async: [true, MS_SYNCHRONOUS],
  atime: [true, MS_NOATIME],
  bind: [false, MS_BIND],
  defaults: [false, 0],
  dev: [true, MS_NODEV],
  diratime: [true, MS_NODIRATIME],
  dirsync: [false, MS_DIRSYNC],
  exec: [true, MS_NOEXEC],
  mand: [false, MS_MANDLOCK],
  noatime: [false, MS_NOATIME],
  nodev: [false, MS_NODEV],
  nodiratime: [false, MS_NODIRATIME],
  noexec: [false, MS_NOEXEC],
  nomand: [true, MS_MANDLOCK],
  norelatime: [true, MS_RELATIME],
  nostrictatime: [true, MS_STRICTATIME],
  nosuid: [false, MS_NOSUID],
  rbind: [false, MS_BIND | MS_REC],
  relatime: [false, MS_RELATIME],
  remount: [false, MS_REMOUNT],
  ro: [false, MS_RDONLY],
  rw: [true, MS_RDONLY],
  strictatime: [false, MS_STRICTATIME],
  suid: [true, MS_NOSUID],
  sync: [false, MS_SYNCHRONOUS],
};

export interface ParsedOptions {
  flags: number;
  data: string;
  loop: boolean;
}

export function parseMountOptions(options: readonly string[]): ParsedOptions {
  let flags = 0;
  let loop = false;
  const data: string[] = [];
  for (const o of options) {
    const entry = OPTIONS[o];
    if (entry && entry[1] !== 0) {
      flags = entry[0] ? flags & ~entry[1] : flags | entry[1];
    } else if (o === "loop") {
      loop = true;
    } else {
      data.push(o);
    }
  }
  return { flags, data: data.join(","), loop };
}

/** The longest directory that contains every path (absolute, normalised). */
export function commonDir(paths: readonly string[]): string {
  const split = paths.map((p) => p.split("/").filter(Boolean));
  const first = split[0] ?? [];
  let n = 0;
  while (n < first.length && split.every((parts) => parts.length > n + 1 && parts[n] === first[n])) n++;
  return `/${first.slice(0, n).join("/")}`;
}

/**
 * containerd's compactLowerdirOption: overlay options past one page (an image of ~90+ layers with
 * absolute paths) are rewritten with every overlay dir relative to their longest common directory,
 * which the mount then runs from. Options that fit are left alone (absolute paths are what
 * /proc/self/mountinfo shows a person debugging).
 */
export function compactOverlayData(data: string): { data: string; chdir?: string } {
  if (data.length < PAGE_SIZE) return { data };
  const opts = data.split(",");
  const dirs: string[] = [];
  for (const o of opts) {
    const eq = o.indexOf("=");
    const key = o.slice(0, eq);
    if (key === "lowerdir") dirs.push(...o.slice(eq + 1).split(":"));
    else if (key === "upperdir" || key === "workdir") dirs.push(o.slice(eq + 1));
  }
  if (dirs.length === 0 || dirs.some((d) => !d.startsWith("/"))) return { data };
  const common = commonDir(dirs);
  const rel = (p: string): string => (common === "/" ? p.slice(1) : p.slice(common.length + 1));
  const compacted = opts
    .map((o) => {
      const eq = o.indexOf("=");
      const key = o.slice(0, eq);
      if (key === "lowerdir") return `lowerdir=${o.slice(eq + 1).split(":").map(rel).join(":")}`;
      if (key === "upperdir" || key === "workdir") return `${key}=${rel(o.slice(eq + 1))}`;
      return o;
    })
    .join(",");
  return { data: compacted, chdir: common };
}

/**
 * mount(2) from inside `chdir` when the data has relative paths. Changing the process's cwd is safe
 * here: the chdir, the synchronous FFI mount and the chdir back run on the one JavaScript thread with
 * nothing in between (containerd instead forks a helper or locks an OS thread). The way back may be
 * gone: a shim's cwd is the bundle its `start` ran in, removed with that container while the shim
 * serves others; then the process stays at "/" (a deleted dir cannot be entered again by path), and
 * the mount, which was made, stands.
 */
export function mountFrom(sys: Syscalls, chdir: string | undefined, source: string, target: string, fstype: string, flags: number, data: string): void {
  if (chdir === undefined) return sys.mount(source, target, fstype, flags, data);
  let previous: string;
  try {
    previous = process.cwd();
  } catch {
    previous = "/";
  }
  process.chdir(chdir);
  try {
    sys.mount(source, target, fstype, flags, data);
  } finally {
    try {
      process.chdir(previous);
    } catch {
      process.chdir("/");
    }
  }
}

/** Mounts one component onto target (containerd's Mount.Mount without helpers and loop devices). */
export function mountOne(sys: Syscalls, m: MountSpec, target: string): void {
  if (!m.type) throw new InvalidArgumentError(`mount of ${JSON.stringify(m.source)} has no type`);
  const parsed = parseMountOptions(m.options);
  const { flags, loop } = parsed;
  if (loop) throw new NotImplementedError(`loop mounts are not supported (mount of ${m.source})`);
  if (m.type.startsWith("fuse.")) throw new NotImplementedError(`mount helpers are not supported (type ${m.type})`);
  const { data, chdir } = m.type === "overlay" ? compactOverlayData(parsed.data) : { data: parsed.data, chdir: undefined };
  if (data.length > PAGE_SIZE) throw new InvalidArgumentError("mount options is too long");
  if ((flags & MS_REMOUNT) === 0 || data !== "") {
    // a relative overlay target would move with the chdir
    mountFrom(sys, chdir, m.source, chdir === undefined ? target : resolve(target), m.type, flags, data);
  }
  if ((flags & (MS_BIND | MS_RDONLY)) === (MS_BIND | MS_RDONLY)) {
    // the kernel ignores MS_RDONLY on the first bind; a remount applies it
    sys.mount("", target, "", flags | MS_REMOUNT, "");
  }
}

/** Mounts every component in order; on failure unmounts what was mounted and rethrows. */
export function mountAll(sys: Syscalls, mounts: readonly MountSpec[], target: string): void {
  try {
    for (const m of mounts) mountOne(sys, m, target);
  } catch (err) {
    try {
      sys.unmountAll(target); // also undoes a first step whose read-only remount failed
    } catch {
      // the original error is the one worth reporting
    }
    throw err;
  }
}
