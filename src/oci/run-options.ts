// The `run` flags that shape a container's OCI spec, with docker's semantics: -v/--mount/--tmpfs,
// --read-only, --memory/--memory-swap, --cpus, --pids-limit, --cap-add/--cap-drop, --privileged,
// --device and --init.
//
// Two types, in two steps, so that the spec itself is a pure function of plain data:
// - RunSpecFlags: what the user asked for, already checked for form (cli/run-flags.ts parses it;
//   the executor's callers may build it); nothing on the host looked at yet;
// - RunSpecOptions: the same, resolved against the host (oci/run-resolve.ts: device numbers from
//   stat, the host's devices for --privileged, the init binary's path, swap accounting).
// applyRunOptions() then writes the RunSpecOptions into a spec from generateSpec() (the --rootfs and
// the image paths alike), as moby's daemon/oci_linux.go With* functions do over its defaults:
// user mounts replace a default at the same destination; capabilities follow moby's
// caps.TweakCapabilities; --privileged is all capabilities, no masked or read-only paths, /sys
// writable, every host device and an allow-all device rule; --init mounts the init read-only at
// /sbin/docker-init (docker's path: what `ps` in a docker --init container shows) and runs the
// command under it after `--`.
import { InvalidArgumentError } from "../errdefs.ts";
import { DEFAULT_CAPABILITIES, type LinuxDevice, type OciMount, type OciSpec } from "./spec.ts";

/** Every capability, in the kernel's order (CAP_CHOWN is 0); --privileged keeps those the host knows. */
export const ALL_CAPABILITIES: readonly string[] = [
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
  "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
  "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
  "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
  "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
  "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
  "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
];

/** Where --init's binary appears in the container (docker's). */
export const INIT_PATH_IN_CONTAINER = "/sbin/docker-init";

/** docker's cpu.cfs_period_us for --cpus: 100 ms. */
export const CPU_PERIOD_US = 100_000;

export interface BindMountRequest {
  type: "bind";
  source: string;
  target: string;
  readonly: boolean;
  /** rprivate unless asked (docker's default propagation). */
  propagation: string;
  /** bind-nonrecursive=true: "bind" instead of "rbind". */
  nonRecursive?: boolean;
  /** -v makes a missing host directory (docker does); --mount refuses it. */
  createSource: boolean;
}

export interface TmpfsMountRequest {
  type: "tmpfs";
  target: string;
  /** The tmpfs data options (size=…, mode=…, ro, exec, …) as given, merged over docker's defaults at apply. */
  options: string[];
}

export type MountRequest = BindMountRequest | TmpfsMountRequest;

export interface DeviceRequest {
  host: string;
  container: string;
  /** Some of r, w, m. */
  access: string;
}

/** The run flags as the user gave them, checked for form only. */
export interface RunSpecFlags {
  mounts?: MountRequest[];
  readonlyRootfs?: boolean;
  /** Bytes. */
  memory?: number;
  /** Bytes of memory plus swap, or -1 for unlimited swap (docker's --memory-swap). */
  memorySwap?: number;
  /** Billionths of a CPU (docker's NanoCPUs). */
  nanoCpus?: number;
  pidsLimit?: number;
  /** Normalised names (CAP_…) or ALL. */
  capAdd?: string[];
  capDrop?: string[];
  privileged?: boolean;
  devices?: DeviceRequest[];
  init?: boolean;
}

/** A device to make in the container, with the access its cgroup rule grants. */
export interface ResolvedDevice extends LinuxDevice {
  access: string;
}

/** The flags resolved against the host (run-resolve.ts): what applyRunOptions needs, and nothing to look up. */
export interface RunSpecOptions extends Omit<RunSpecFlags, "devices" | "init"> {
  devices?: ResolvedDevice[];
  /** --privileged: every device node of the host's /dev. */
  hostDevices?: LinuxDevice[];
  /** --init: the host path of the static init binary. */
  initPath?: string;
  /**
   * What ALL means here (--privileged, --cap-add ALL): the capabilities in bunker's own bounding set
   * (moby since 23 does the same), so that a privileged run works where bunker itself was given
   * fewer than the kernel knows (nested in a container or a sandbox).
   */
  availableCapabilities?: string[];
}

/** True when no flag asks for anything: the spec is left untouched (and nothing was loaded for it). */
export function isEmptyRunSpec(f: RunSpecFlags | RunSpecOptions): boolean {
  return Object.values(f).every((v) => v === undefined || v === false || (Array.isArray(v) && v.length === 0));
}

/** `chown`, `CAP_chown`, `all` -> `CAP_CHOWN`, `ALL`; an unknown name is refused (moby's NormalizeLegacyCapabilities). */
export function normalizeCapability(name: string, flag: string): string {
  const upper = name.trim().toUpperCase();
  if (upper === "ALL") return "ALL";
  const cap = upper.startsWith("CAP_") ? upper : `CAP_${upper}`;
  if (!ALL_CAPABILITIES.includes(cap)) throw new InvalidArgumentError(`${flag}: unknown capability ${JSON.stringify(name)}`);
  return cap;
}

/** moby's caps.TweakCapabilities: ALL in --cap-add wins over --cap-drop ALL; otherwise drop, then add. */
export function tweakCapabilities(base: readonly string[], add: readonly string[], drop: readonly string[], privileged: boolean, all: readonly string[]): string[] {
  if (privileged) return [...all];
  if (add.length === 0 && drop.length === 0) return [...base];
  let caps: string[];
  if (add.includes("ALL")) caps = all.filter((c) => !drop.includes(c));
  else if (drop.includes("ALL")) caps = [...add];
  else caps = [...base.filter((c) => !drop.includes(c)), ...add];
  return [...new Set(caps)];
}

// Pairs of tmpfs/mount flags that cancel each other: the later one given wins (moby's MergeTmpfsOptions).
const FLAG_GROUPS: readonly (readonly string[])[] = [
  ["ro", "rw"], ["exec", "noexec"], ["suid", "nosuid"], ["dev", "nodev"], ["sync", "async"], ["atime", "noatime"],
  ["diratime", "nodiratime"], ["relatime", "norelatime"], ["strictatime", "nostrictatime"],
  ["shared", "rshared", "slave", "rslave", "private", "rprivate", "unbindable", "runbindable"],
];

/** The last option of each group or key wins, in its own place (moby's MergeTmpfsOptions); "defaults" is dropped. */
export function mergeTmpfsOptions(options: readonly string[]): string[] {
  const groupOf = (o: string): string => {
    const eq = o.indexOf("=");
    if (eq > 0) return `key:${o.slice(0, eq)}`;
    const g = FLAG_GROUPS.findIndex((grp) => grp.includes(o));
    return g >= 0 ? `group:${g}` : `flag:${o}`;
  };
  const seen = new Set<string>();
  const out: string[] = [];
  for (let i = options.length - 1; i >= 0; i--) {
    const o = options[i]!;
    const g = groupOf(o);
    if (o === "defaults" || seen.has(g)) continue;
    seen.add(g);
    out.unshift(o);
  }
  return out;
}

function bindMount(m: BindMountRequest): OciMount {
  const options = [m.nonRecursive ? "bind" : "rbind"];
  if (m.readonly) options.push("ro");
  options.push(m.propagation);
  return { destination: m.target, type: "bind", source: m.source, options };
}

function tmpfsMount(m: TmpfsMountRequest): OciMount {
  return { destination: m.target, type: "tmpfs", source: "tmpfs", options: mergeTmpfsOptions(["noexec", "nosuid", "nodev", "rprivate", ...m.options]) };
}

/** Writes the options into the spec (in place, and returned); a spec with no flags is left as it was. */
export function applyRunOptions(spec: OciSpec, o: RunSpecOptions): OciSpec {
  if (isEmptyRunSpec(o)) return spec;
  const userMounts = (o.mounts ?? []).map((m) => (m.type === "bind" ? bindMount(m) : tmpfsMount(m)));
  if (o.initPath !== undefined) {
    userMounts.push({ destination: INIT_PATH_IN_CONTAINER, type: "bind", source: o.initPath, options: ["bind", "ro"] });
    spec.process.args = [INIT_PATH_IN_CONTAINER, "--", ...spec.process.args];
  }
  if (userMounts.length > 0) {
    const taken = new Set(userMounts.map((m) => m.destination));
    spec.mounts = [...spec.mounts.filter((m) => !taken.has(m.destination)), ...userMounts];
  }
  if (o.readonlyRootfs) spec.root.readonly = true;

  const resources = spec.linux.resources;
  if (o.memory !== undefined || o.memorySwap !== undefined) {
    resources.memory = { ...(o.memory !== undefined ? { limit: o.memory } : {}), ...(o.memorySwap !== undefined ? { swap: o.memorySwap } : {}) };
  }
  if (o.nanoCpus !== undefined) resources.cpu = { quota: Math.floor((o.nanoCpus * CPU_PERIOD_US) / 1e9), period: CPU_PERIOD_US };
  if (o.pidsLimit !== undefined && o.pidsLimit > 0) resources.pids = { limit: o.pidsLimit };

  const all = o.availableCapabilities ?? ALL_CAPABILITIES;
  const caps = tweakCapabilities(spec.process.capabilities.bounding ?? DEFAULT_CAPABILITIES, o.capAdd ?? [], o.capDrop ?? [], o.privileged ?? false, all);
  spec.process.capabilities = { bounding: caps, effective: [...caps], permitted: [...caps] };

  const devices: LinuxDevice[] = [];
  if (o.privileged) {
    spec.linux.maskedPaths = [];
    spec.linux.readonlyPaths = [];
    for (const m of spec.mounts) if (m.destination === "/sys" && m.options) m.options = m.options.filter((x) => x !== "ro");
    devices.push(...(o.hostDevices ?? []));
    resources.devices = [{ allow: true, access: "rwm" }];
  }
  for (const d of o.devices ?? []) {
    const { access, ...device } = d;
    devices.push(device);
    // privileged: every device is allowed already (docker ignores --device's access there)
    if (!o.privileged) resources.devices.push({ allow: true, type: d.type, major: d.major, minor: d.minor, access });
  }
  if (devices.length > 0) {
    // a --device at a host device's path replaces it, as runc would keep only one node per path
    const byPath = new Map(devices.map((d) => [d.path, d]));
    spec.linux.devices = [...byPath.values()];
  }
  return spec;
}
