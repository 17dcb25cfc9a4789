// The OCI runtime spec (config.json) bunker generates for `bunker run`, modelled on containerd's
// oci.populateDefaultUnixSpec and `runc spec`: the container gets its own pid/ipc/uts/mount/network
// namespaces, the usual pseudo filesystems, containerd's default capabilities and masked paths.
import { InvalidArgumentError } from "../errdefs.ts";

export const DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export const DEFAULT_CAPABILITIES: readonly string[] = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
];

export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}

export interface OciSpec {
  ociVersion: string;
  process: {
    terminal: boolean;
    user: { uid: number; gid: number; additionalGids?: number[] };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: Record<"bounding" | "effective" | "permitted", string[]>;
    rlimits: { type: string; hard: number; soft: number }[];
    noNewPrivileges: boolean;
  };
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: OciMount[];
  annotations?: Record<string, string>;
  linux: {
    cgroupsPath: string;
    resources: LinuxResources;
    /** Device nodes runc makes in the container's /dev (`--device`, `--privileged`). */
    devices?: LinuxDevice[];
    namespaces: { type: string }[];
    maskedPaths: string[];
    readonlyPaths: string[];
  };
}

/** A device cgroup rule: type `a` (all), `c` or `b`; major/minor absent for "any". */
export interface LinuxDeviceCgroup {
  allow: boolean;
  type?: string;
  major?: number;
  minor?: number;
  access: string;
}

export interface LinuxDevice {
  path: string;
  type: string;
  major: number;
  minor: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
}

export interface LinuxResources {
  devices: LinuxDeviceCgroup[];
  memory?: { limit?: number; swap?: number };
  cpu?: { quota?: number; period?: number };
  pids?: { limit: number };
}

export interface SpecOptions {
  namespace: string;
  id: string;
  args: string[];
  env?: string[];
  cwd?: string;
  terminal?: boolean;
  hostname?: string;
  readonlyRootfs?: boolean;
  /**
   * The root filesystem's absolute host path, for a spec handed to runc or the executor as it is
   * (Executor.create takes the rootfs from root.path). Absent: "rootfs", relative to the bundle,
   * where the shim mounts the task's rootfs.
   */
  rootfs?: string;
  annotations?: Record<string, string>;
  /** The cgroup parent (paths.ts cgroupParent: one per bunker instance); the path is <parent>/<ns>/<id>. */
  cgroupParent?: string;
}

function defaultMounts(): OciMount[] {
  return [
    { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
    {
      destination: "/dev/pts",
      type: "devpts",
      source: "devpts",
      options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
    { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
    { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
  ];
}

/** Later entries override earlier ones with the same name (containerd's replaceOrAppendEnvValues). */
export function mergeEnv(base: readonly string[], extra: readonly string[]): string[] {
  const out = [...base];
  for (const kv of extra) {
    const eq = kv.indexOf("=");
    if (eq <= 0) throw new InvalidArgumentError(`environment variable ${JSON.stringify(kv)} must be KEY=VALUE`);
    const key = kv.slice(0, eq + 1);
    const at = out.findIndex((e) => e.startsWith(key));
    if (at >= 0) out[at] = kv;
    else out.push(kv);
  }
  return out;
}

export function generateSpec(opts: SpecOptions): OciSpec {
  if (opts.args.length === 0) throw new InvalidArgumentError("a command to run is required");
  const cwd = opts.cwd ?? "/";
  if (!cwd.startsWith("/")) throw new InvalidArgumentError(`working directory ${JSON.stringify(cwd)} must be absolute`);
  if (opts.rootfs !== undefined && !opts.rootfs.startsWith("/")) throw new InvalidArgumentError(`rootfs ${JSON.stringify(opts.rootfs)} must be an absolute path`);
  const env = mergeEnv([DEFAULT_PATH_ENV], [...(opts.terminal ? ["TERM=xterm"] : []), ...(opts.env ?? [])]);
  const spec: OciSpec = {
    ociVersion: "1.0.2-dev",
    process: {
      terminal: opts.terminal ?? false,
      user: { uid: 0, gid: 0 },
      args: [...opts.args],
      env,
      cwd,
      capabilities: {
        bounding: [...DEFAULT_CAPABILITIES],
        effective: [...DEFAULT_CAPABILITIES],
        permitted: [...DEFAULT_CAPABILITIES],
      },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    // Relative to the bundle unless given: the shim mounts the task's rootfs onto <bundle>/rootfs.
    root: { path: opts.rootfs ?? "rootfs", readonly: opts.readonlyRootfs ?? false },
    // docker's default: the first 12 characters of the id (the kernel takes at most 64)
    hostname: opts.hostname ?? opts.id.slice(0, 12),
    mounts: defaultMounts(),
    linux: {
      cgroupsPath: `${opts.cgroupParent ?? "/bunker"}/${opts.namespace}/${opts.id}`,
      resources: { devices: [{ allow: false, access: "rwm" }] },
      namespaces: ["pid", "ipc", "uts", "mount", "network"].map((type) => ({ type })),
      maskedPaths: [
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/sys/firmware",
        "/proc/scsi",
      ],
      readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
  };
  if (opts.annotations && Object.keys(opts.annotations).length > 0) spec.annotations = { ...opts.annotations };
  return spec;
}

/** The process section for an exec inside an existing container, derived from its spec. */
export function execProcess(base: OciSpec, args: string[], terminal: boolean, env: string[] = []): OciSpec["process"] {
  if (args.length === 0) throw new InvalidArgumentError("a command to execute is required");
  return { ...base.process, args: [...args], terminal, env: mergeEnv(base.process.env, env) };
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

const ARCH_ALIASES: Record<string, { architecture: string; variant?: string }> = {
  x86_64: { architecture: "amd64" },
  "x86-64": { architecture: "amd64" },
  amd64: { architecture: "amd64" },
  aarch64: { architecture: "arm64" },
  arm64: { architecture: "arm64" },
  armhf: { architecture: "arm", variant: "v7" },
  armel: { architecture: "arm", variant: "v6" },
  arm: { architecture: "arm" },
  i386: { architecture: "386" },
  "386": { architecture: "386" },
  ppc64le: { architecture: "ppc64le" },
  s390x: { architecture: "s390x" },
  riscv64: { architecture: "riscv64" },
};
const KNOWN_OS = new Set(["linux", "windows", "darwin", "freebsd"]);

/** The platforms a runtime config lists (containerd's platforms.Parse: os[/arch[/variant]] or arch). */
export function parsePlatforms(specs: readonly string[]): Platform[] {
  return specs.map((raw) => {
    const parts = raw.toLowerCase().split("/");
    if (parts.some((p) => !/^[a-z0-9_-]+$/.test(p)) || parts.length > 3) {
      throw new InvalidArgumentError(`invalid platform ${JSON.stringify(raw)}: must be os[/arch[/variant]]`);
    }
    const [first, arch, variant] = parts as [string, string | undefined, string | undefined];
    if (parts.length === 1) {
      if (KNOWN_OS.has(first)) return { os: first, architecture: hostArchitecture() };
      const a = ARCH_ALIASES[first];
      if (!a) throw new InvalidArgumentError(`invalid platform ${JSON.stringify(raw)}: unknown operating system or architecture`);
      return { os: "linux", ...a };
    }
    if (!KNOWN_OS.has(first)) throw new InvalidArgumentError(`invalid platform ${JSON.stringify(raw)}: unknown operating system ${first}`);
    const a = ARCH_ALIASES[arch ?? ""];
    if (!a) throw new InvalidArgumentError(`invalid platform ${JSON.stringify(raw)}: unknown architecture ${arch}`);
    const v = variant ?? a.variant;
    return v === undefined ? { os: first, architecture: a.architecture } : { os: first, architecture: a.architecture, variant: v };
  });
}

export function hostArchitecture(): string {
  const map: Record<string, string> = { x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386", ppc64: "ppc64le", s390x: "s390x" };
  return map[process.arch] ?? process.arch;
}

export function defaultPlatforms(): string[] {
  return [`linux/${hostArchitecture()}`];
}

/** How a container takes its network (containers/record.ts NetworkSetup, the parts the spec needs). */
export interface SpecNetwork {
  netnsPath?: string;
  hostNetwork?: boolean;
  hostname?: string;
  files?: { destination: string; source: string }[];
}

/**
 * The spec joined to its network: a pinned (or another container's) network namespace by path, or
 * none of its own for the host's network; the generated /etc files bind-mounted over the image's, as
 * docker and nerdctl do (rbind, so a symlinked /etc/resolv.conf in the image is replaced, not followed).
 * A mount the spec already has at one of those paths (`-v ./hosts:/etc/hosts`) wins, as in docker
 * (moby's NetworkMounts skips a file the container HasMountFor); one whose source is the file we
 * generate is ours from an earlier join and is replaced, so joining twice changes nothing.
 */
export function withNetwork<T extends { hostname?: string; mounts?: OciMount[]; linux?: { namespaces?: { type: string; path?: string }[] } }>(spec: T, net: SpecNetwork): T {
  const namespaces = (spec.linux?.namespaces ?? []).filter((n) => n.type !== "network");
  if (net.netnsPath) namespaces.push({ type: "network", path: net.netnsPath });
  else if (!net.hostNetwork) namespaces.push({ type: "network" });
  const out = { ...spec, linux: { ...spec.linux, namespaces } };
  if (net.hostname) out.hostname = net.hostname;
  const ours = new Set((net.files ?? []).map((f) => `${f.destination}\0${f.source}`));
  const kept = (spec.mounts ?? []).filter((m) => !ours.has(`${m.destination}\0${m.source ?? ""}`));
  const users = new Set(kept.map((m) => m.destination));
  const files = (net.files ?? []).filter((f) => !users.has(f.destination));
  if (files.length > 0 || kept.length !== (spec.mounts ?? []).length) {
    out.mounts = [...kept, ...files.map((f) => ({ destination: f.destination, type: "bind", source: f.source, options: ["rbind", "rprivate"] }))];
  }
  return out;
}
