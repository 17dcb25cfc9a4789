// Where a container's cgroup lives, on cgroup v1 (one directory per controller), v2 (one directory)
// or hybrid hosts (v1 controllers plus a v2 "unified" mount that holds none of the ones we read:
// treated as v1, as containerd's cgroups.Mode() Hybrid is). Stats (stats.ts) and OOM watching
// (oom.ts) take the Cgroup this module returns.
//
//   cgroupOfPid(pid, opts?): Cgroup         the cgroup of a live process (what containerd's shim does
//                                           right after `runc create`: cgroups.PidPath / PidGroupPath)
//   cgroupFromPath(cgroupsPath, id, opts?): Cgroup   from the OCI spec's linux.cgroupsPath as runc
//                                           resolves it (absolute, relative to our own cgroup, empty
//                                           = "<id>", or systemd "slice:prefix:name")
//   resolveCgroup(procCgroupText, mountinfoText): Cgroup   the pure part, for tests
//   cgroupExists(cg), cgroupMode(root?), controllerPath(cg, name)
//
// Resolve the cgroup once, at Create, and keep it: after the init process is gone its pid says
// nothing, but the directories stay until runc deletes them.
import { existsSync, readFileSync, statfsSync } from "node:fs";
import { join, posix } from "node:path";
import { InvalidArgumentError, NotFoundError } from "../errdefs.ts";

export const CGROUP_ROOT = "/sys/fs/cgroup";
const CGROUP2_SUPER_MAGIC = 0x63677270;

/** v1: the directory of each controller ("memory" -> /sys/fs/cgroup/memory/default/id). */
export interface CgroupV1 {
  version: 1;
  /** The path inside the hierarchies (of the memory controller when they differ). */
  path: string;
  controllers: Record<string, string>;
}

/** v2: one directory holds every controller's files. */
export interface CgroupV2 {
  version: 2;
  path: string;
  dir: string;
}

export type Cgroup = CgroupV1 | CgroupV2;

export type CgroupMode = "legacy" | "hybrid" | "unified";

/** containerd's cgroups.Mode(): by the filesystem type of /sys/fs/cgroup and of its unified mount. */
export function cgroupMode(root = CGROUP_ROOT): CgroupMode {
  const isV2 = (p: string) => {
    try {
      return statfsSync(p).type === CGROUP2_SUPER_MAGIC;
    } catch {
      return false;
    }
  };
  if (isV2(root)) return "unified";
  return isV2(join(root, "unified")) ? "hybrid" : "legacy";
}

export interface ProcCgroupLine {
  hierarchy: number;
  /** Controllers of a v1 hierarchy ("cpu", "cpuacct", "name=systemd"); empty for the v2 line. */
  controllers: string[];
  path: string;
}

/** /proc/<pid>/cgroup: `hierarchy-id:controller,list:path` per line. */
export function parseProcCgroup(text: string): ProcCgroupLine[] {
  const out: ProcCgroupLine[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    const first = line.indexOf(":");
    const second = line.indexOf(":", first + 1);
    if (first < 0 || second < 0) throw new InvalidArgumentError(`bad /proc/<pid>/cgroup line ${JSON.stringify(line)}`);
    const hierarchy = Number(line.slice(0, first));
    const list = line.slice(first + 1, second);
    out.push({ hierarchy, controllers: list ? list.split(",") : [], path: line.slice(second + 1) });
  }
  return out;
}

export interface CgroupMount {
  mountPoint: string;
  /** The directory of the cgroup filesystem that is mounted there ("/" unless in a nested container). */
  root: string;
  version: 1 | 2;
  /** v1 controllers of the hierarchy (from the super options); empty for v2. */
  controllers: string[];
}

const V1_CONTROLLERS = new Set([
  "cpu",
  "cpuacct",
  "cpuset",
  "memory",
  "devices",
  "freezer",
  "blkio",
  "pids",
  "hugetlb",
  "net_cls",
  "net_prio",
  "perf_event",
  "rdma",
  "misc",
]);

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** The cgroup and cgroup2 mounts of a /proc/<pid>/mountinfo. */
export function parseCgroupMounts(mountinfo: string): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of mountinfo.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(" ");
    const [fstype, , superOpts = ""] = line.slice(sep + 3).split(" ");
    if (fstype !== "cgroup" && fstype !== "cgroup2") continue;
    const root = unescapeMountField(left[3] ?? "/");
    const mountPoint = unescapeMountField(left[4] ?? "");
    const controllers = fstype === "cgroup" ? superOpts.split(",").filter((o) => V1_CONTROLLERS.has(o) || o.startsWith("name=")) : [];
    out.push({ mountPoint, root, version: fstype === "cgroup2" ? 2 : 1, controllers });
  }
  return out;
}

/** The host directory of `path` in a hierarchy mounted at `m` (null if the mount does not reach it). */
function hostDir(m: CgroupMount, path: string): string | null {
  const rel = posix.relative(m.root, path);
  if (rel.startsWith("..")) return null;
  return rel ? join(m.mountPoint, rel) : m.mountPoint;
}

/**
 * The cgroup of a process, from its /proc/<pid>/cgroup and our mountinfo. v1 wins when any real
 * controller hierarchy is listed (legacy and hybrid hosts); otherwise the v2 line is used.
 */
export function resolveCgroup(procCgroup: string, mountinfo: string): Cgroup {
  const lines = parseProcCgroup(procCgroup);
  const mounts = parseCgroupMounts(mountinfo);
  const v1 = lines.filter((l) => l.hierarchy !== 0 && l.controllers.some((c) => V1_CONTROLLERS.has(c)));
  if (v1.length > 0) {
    const controllers: Record<string, string> = {};
    for (const line of v1) {
      const m = mounts.find((mt) => mt.version === 1 && line.controllers.every((c) => mt.controllers.includes(c)) && hostDir(mt, line.path));
      if (!m) continue; // a hierarchy nobody mounted here: its files cannot be read anyway
      const dir = hostDir(m, line.path)!;
      for (const c of line.controllers) if (V1_CONTROLLERS.has(c)) controllers[c] = dir;
    }
    if (Object.keys(controllers).length === 0) throw new NotFoundError("no cgroup v1 hierarchy of the process is mounted");
    const memory = v1.find((l) => l.controllers.includes("memory")) ?? v1[0]!;
    return { version: 1, path: memory.path, controllers };
  }
  const unified = lines.find((l) => l.hierarchy === 0);
  if (!unified) throw new NotFoundError("the process is in no cgroup");
  const m = mounts.find((mt) => mt.version === 2 && hostDir(mt, unified.path));
  if (!m) throw new NotFoundError("no cgroup2 filesystem is mounted");
  return { version: 2, path: unified.path, dir: hostDir(m, unified.path)! };
}

export interface ResolveOptions {
  /** /proc by default (tests point it at fixtures). */
  procRoot?: string;
}

function readProc(procRoot: string, file: string): string {
  try {
    return readFileSync(join(procRoot, file), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "ESRCH") {
      throw new NotFoundError(`${join(procRoot, file)} does not exist (the process is gone)`, { cause: err });
    }
    throw err;
  }
}

/** The cgroup of a live process. NotFoundError when the process is gone. */
export function cgroupOfPid(pid: number, opts: ResolveOptions = {}): Cgroup {
  if (!Number.isInteger(pid) || pid <= 0) throw new InvalidArgumentError(`bad pid ${pid}`);
  const procRoot = opts.procRoot ?? "/proc";
  return resolveCgroup(readProc(procRoot, `${pid}/cgroup`), readProc(procRoot, "self/mountinfo"));
}

/** systemd's slice naming: "a-b-c.slice" lives at /a.slice/a-b.slice/a-b-c.slice. */
export function expandSlice(slice: string): string {
  if (!slice.endsWith(".slice") || slice.includes("/")) throw new InvalidArgumentError(`invalid slice name ${JSON.stringify(slice)}`);
  const name = slice.slice(0, -".slice".length);
  if (name === "-") return "/";
  let path = "";
  let prefix = "";
  for (const part of name.split("-")) {
    if (part === "") throw new InvalidArgumentError(`invalid slice name ${JSON.stringify(slice)}`);
    path += `/${prefix}${part}.slice`;
    prefix += `${part}-`;
  }
  return path;
}

/** The path inside the hierarchies that runc uses for linux.cgroupsPath (with the systemd driver's "slice:prefix:name" form). */
export function cgroupsPathOf(cgroupsPath: string, id: string, opts: { systemd?: boolean } = {}): string {
  if (opts.systemd || /^[^/:]*:[^/:]*:[^/:]*$/.test(cgroupsPath)) {
    const [slice = "", prefix = "", name = ""] = (cgroupsPath || `system.slice:runc:${id}`).split(":");
    if (!name) throw new InvalidArgumentError(`systemd cgroupsPath must be slice:prefix:name, got ${JSON.stringify(cgroupsPath)}`);
    const unit = name.endsWith(".slice") ? name : `${prefix ? `${prefix}-` : ""}${name}.scope`;
    return posix.join(expandSlice(slice || "system.slice"), unit);
  }
  return cgroupsPath || id;
}

/**
 * The cgroup runc makes for a container from the OCI spec's linux.cgroupsPath. A relative path is
 * below the cgroup of the process that runs runc (ours, by default), as runc's cgroupfs driver does.
 */
export function cgroupFromPath(cgroupsPath: string, id: string, opts: ResolveOptions & { systemd?: boolean; parentPid?: number } = {}): Cgroup {
  const inner = cgroupsPathOf(cgroupsPath, id, opts);
  const procRoot = opts.procRoot ?? "/proc";
  const mountinfo = readProc(procRoot, "self/mountinfo");
  if (posix.isAbsolute(inner)) {
    const own = readProc(procRoot, `${opts.parentPid ?? "self"}/cgroup`);
    const lines = parseProcCgroup(own).map((l) => `${l.hierarchy}:${l.controllers.join(",")}:${posix.normalize(inner)}`);
    return resolveCgroup(lines.join("\n"), mountinfo);
  }
  const own = parseProcCgroup(readProc(procRoot, `${opts.parentPid ?? "self"}/cgroup`));
  const lines = own.map((l) => `${l.hierarchy}:${l.controllers.join(",")}:${posix.join(l.path, inner)}`);
  return resolveCgroup(lines.join("\n"), mountinfo);
}

/** The directory holding a controller's files (v2: the one directory), or undefined if not mounted. */
export function controllerPath(cg: Cgroup, controller: string): string | undefined {
  return cg.version === 2 ? cg.dir : cg.controllers[controller];
}

/** Whether the cgroup's directory still exists (v1: the memory one, else any). */
export function cgroupExists(cg: Cgroup): boolean {
  if (cg.version === 2) return existsSync(join(cg.dir, "cgroup.procs"));
  const dir = cg.controllers.memory ?? Object.values(cg.controllers)[0];
  return dir !== undefined && existsSync(join(dir, "cgroup.procs"));
}

/** Throws NotFoundError (containerd: "cgroup does not exist") when the cgroup is gone. */
export function requireCgroup(cg: Cgroup): void {
  if (!cgroupExists(cg)) throw new NotFoundError("cgroup does not exist");
}
