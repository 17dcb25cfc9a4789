// The host side of the run flags (run-options.ts): what docker's daemon looks up before it writes
// the spec, done once, before anything is created:
// - --device: the host path's symlinks resolved, then its type, major/minor, mode, uid and gid
//   from stat (runc's DeviceFromPath); a directory brings every device under it (docker's
//   DevicesFromPath); anything else is refused;
// - --privileged: every device node under the host's /dev, skipping what runc's HostDevices skips
//   (pts, shm, fd, mqueue, console, and the .lxc/.udev helpers);
// - --mount type=bind: the source must exist (docker refuses it); -v makes a missing host
//   directory instead (docker's -v does), but only after every other check passed, so a refused
//   run leaves no directory behind;
// - --cpus: at most the host's CPUs (docker's range check); --memory without --memory-swap gives
//   twice the memory as memory+swap where the cgroup accounts swap (docker's default);
// - --privileged, --cap-add ALL: the capabilities of our own bounding set;
// - --init: the init binary written under --root (init-binary.ts, loaded only then).
// Node's fs is enough here (stat, readdir, realpath): nothing Bun lacks, so no src/sys.
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { InvalidArgumentError, NotFoundError, FailedPreconditionError } from "../errdefs.ts";
import type { LinuxDevice } from "./spec.ts";
import { ALL_CAPABILITIES, type ResolvedDevice, type RunSpecFlags, type RunSpecOptions } from "./run-options.ts";

/** What the resolution reads of the host; tests give their own. */
export interface HostFacts {
  cpus: number;
  swapAccounting: boolean;
  /** The capabilities of our own bounding set (what ALL can give); undefined when unreadable. */
  capabilities: string[] | undefined;
  devRoot: string;
}

export function hostFacts(): HostFacts {
  return { cpus: availableParallelism(), swapAccounting: swapAccounting(), capabilities: boundingCapabilities(), devRoot: "/dev" };
}

/** /proc/self/status CapBnd, as names (numbers past our table are capabilities runc cannot name either). */
export function boundingCapabilities(status?: string): string[] | undefined {
  let text = status;
  try {
    text ??= readFileSync("/proc/self/status", "utf8");
  } catch {
    return undefined;
  }
  const hex = /^CapBnd:\s*([0-9a-f]+)$/m.exec(text)?.[1];
  if (hex === undefined) return undefined;
  const mask = BigInt(`0x${hex}`);
  return ALL_CAPABILITIES.filter((_, bit) => (mask >> BigInt(bit)) & 1n);
}

/** cgroup v1: the memory controller has memsw files (swapaccount); v2: a memory controller at all (docker's sysinfo). */
function swapAccounting(): boolean {
  if (existsSync("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")) return true;
  try {
    return readFileSync("/sys/fs/cgroup/cgroup.controllers", "utf8").split(/\s+/).includes("memory");
  } catch {
    return false;
  }
}

// glibc's gnu_dev_major/gnu_dev_minor over the 64-bit dev_t
const majorOf = (dev: bigint): number => Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
const minorOf = (dev: bigint): number => Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));

/** The device node at `path` (not following a last symlink), or undefined when it is not one. */
export function deviceAt(path: string, containerPath: string): LinuxDevice | undefined {
  const st = statSync(path, { bigint: true, throwIfNoEntry: true });
  const type = st.isCharacterDevice() ? "c" : st.isBlockDevice() ? "b" : undefined;
  if (!type) return undefined;
  return { path: containerPath, type, major: majorOf(st.rdev), minor: minorOf(st.rdev), fileMode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid) };
}

const SKIPPED_DEV_DIRS = new Set(["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"]);

/** runc's HostDevices: every char or block device under /dev, symlinks and the console left out. */
export function hostDevices(devRoot = "/dev"): LinuxDevice[] {
  const out: LinuxDevice[] = [];
  const walk = (dir: string, inContainer: string): void => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return; // a directory that vanished or is unreadable has nothing we can pass on
    }
    for (const e of entries) {
      if (e.isDirectory()) {
        if (!SKIPPED_DEV_DIRS.has(e.name)) walk(join(dir, e.name), join(inContainer, e.name));
        continue;
      }
      if (e.name === "console" || !(e.isCharacterDevice() || e.isBlockDevice())) continue;
      try {
        const d = deviceAt(join(dir, e.name), join(inContainer, e.name));
        if (d) out.push(d);
      } catch {
        // gone between readdir and stat
      }
    }
  };
  walk(devRoot, "/dev");
  return out;
}

/** One --device: a node, or every node under a directory, mapped to the container path. */
function resolveDevice(host: string, container: string, access: string): ResolvedDevice[] {
  let real: string;
  try {
    real = realpathSync(host);
  } catch {
    throw new NotFoundError(`--device ${host}: no such device on the host`);
  }
  const st = statSync(real);
  if (st.isDirectory()) {
    const found = hostDevices(real).map((d) => ({ ...d, path: join(container, d.path.slice("/dev".length)), access }));
    if (found.length === 0) throw new InvalidArgumentError(`--device ${host}: the directory holds no device nodes`);
    return found;
  }
  const d = deviceAt(real, container);
  if (!d) throw new InvalidArgumentError(`--device ${host}: not a device node`);
  return [{ ...d, access }];
}

export interface ResolveContext {
  /** bunker's --root: where --init's binary is written. */
  root: string;
  facts?: HostFacts;
}

/** The flags looked up on the host (see the header); throws one clear error before creating anything. */
export async function resolveRunOptions(flags: RunSpecFlags, ctx: ResolveContext): Promise<RunSpecOptions> {
  const { devices, init, ...rest } = flags;
  const out: RunSpecOptions = { ...rest };
  const needsFacts = flags.nanoCpus !== undefined || flags.memory !== undefined || flags.memorySwap !== undefined || flags.privileged || flags.capAdd?.includes("ALL");
  const facts = needsFacts ? (ctx.facts ?? hostFacts()) : undefined;

  if (flags.nanoCpus !== undefined && facts && flags.nanoCpus > facts.cpus * 1e9) {
    throw new InvalidArgumentError(`--cpus: range of CPUs is from 0.01 to ${facts.cpus}.00, as there are only ${facts.cpus} CPUs available`);
  }
  if (facts && flags.memory !== undefined && flags.memorySwap === undefined) {
    if (facts.swapAccounting) out.memorySwap = flags.memory * 2;
  } else if (facts && flags.memorySwap !== undefined && flags.memorySwap !== -1 && !facts.swapAccounting) {
    throw new FailedPreconditionError("--memory-swap: the host's memory cgroup does not account swap (no memory.memsw files)");
  }
  if (facts?.capabilities !== undefined && (flags.privileged || flags.capAdd?.includes("ALL"))) out.availableCapabilities = facts.capabilities;

  if (devices && devices.length > 0) out.devices = devices.flatMap((d) => resolveDevice(d.host, d.container, d.access));
  if (flags.privileged) out.hostDevices = hostDevices(facts?.devRoot);

  for (const m of flags.mounts ?? []) {
    if (m.type === "bind" && !m.createSource && !existsSync(m.source)) {
      throw new NotFoundError(`--mount: bind source path does not exist: ${m.source}`);
    }
  }
  // Last: the only steps that leave something on the host.
  for (const m of flags.mounts ?? []) {
    if (m.type === "bind" && m.createSource && !existsSync(m.source)) mkdirSync(m.source, { recursive: true, mode: 0o755 });
  }
  if (init) {
    const { installInit } = await import("./init-binary.ts");
    out.initPath = await installInit(ctx.root);
  }
  return out;
}
