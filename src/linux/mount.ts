// Mounting the rootfs a CreateTaskRequest carries (snapshotter mounts: overlay, bind) the way
// containerd's mount.Mount does on Linux (mount/mount_linux.go): the same option table, unknown
// options passed to the filesystem as data, and a read-only bind applied by a second remount.
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

/** Mounts one component onto target (containerd's Mount.Mount without helpers and loop devices). */
export function mountOne(sys: Syscalls, m: MountSpec, target: string): void {
  if (!m.type) throw new InvalidArgumentError(`mount of ${JSON.stringify(m.source)} has no type`);
  const { flags, data, loop } = parseMountOptions(m.options);
  if (loop) throw new NotImplementedError(`loop mounts are not supported (mount of ${m.source})`);
  if (m.type.startsWith("fuse.")) throw new NotImplementedError(`mount helpers are not supported (type ${m.type})`);
  if (data.length > PAGE_SIZE) throw new InvalidArgumentError("mount options is too long");
  if ((flags & MS_REMOUNT) === 0 || data !== "") {
    sys.mount(m.source, target, m.type, flags, data);
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
