// Parsing of `bunker run`'s spec-shaping flags into oci/run-options.ts RunSpecFlags, with docker's
// names, syntax and checks (docker's cli/opts and runconfig parsers, our own code):
//   -v/--volume HOST:CTR[:ro|rw|PROPAGATION|z|Z]   --mount type=bind|tmpfs,source=…,target=…,…
//   --tmpfs CTR[:OPTIONS]   --read-only   -m/--memory SIZE   --memory-swap SIZE|-1   --cpus N.N
//   --pids-limit N   --cap-add CAP   --cap-drop CAP   --privileged   --device HOST[:CTR][:rwm]   --init
// Only the form is checked here (units, names, absolute paths, duplicates); what needs the host
// (a device's numbers, a bind source's existence, the CPU count) is oci/run-resolve.ts's, at run.
// Every refusal is one line naming the flag and the value. z/Z (SELinux relabelling) are accepted
// and ignored, as docker does on a host without SELinux.
import { posix } from "node:path";
import { InvalidArgumentError } from "../errdefs.ts";
import { type BindMountRequest, type DeviceRequest, type MountRequest, normalizeCapability, type RunSpecFlags, type TmpfsMountRequest } from "../oci/run-options.ts";
import type { FlagSpec } from "./args.ts";

export const RUN_SPEC_FLAGS: FlagSpec[] = [
  { names: ["-v", "--volume"], key: "volume", kind: "list" },
  { names: ["--mount"], key: "mount", kind: "list" },
  { names: ["--tmpfs"], key: "tmpfs", kind: "list" },
  { names: ["--read-only"], key: "readOnly", kind: "bool" },
  { names: ["-m", "--memory"], key: "memory", kind: "string" },
  { names: ["--memory-swap"], key: "memorySwap", kind: "string" },
  { names: ["--cpus"], key: "cpus", kind: "string" },
  { names: ["--pids-limit"], key: "pidsLimit", kind: "string" },
  { names: ["--cap-add"], key: "capAdd", kind: "list" },
  { names: ["--cap-drop"], key: "capDrop", kind: "list" },
  { names: ["--privileged"], key: "privileged", kind: "bool" },
  { names: ["--device"], key: "device", kind: "list" },
  { names: ["--init"], key: "init", kind: "bool" },
];

const PROPAGATIONS = ["shared", "rshared", "slave", "rslave", "private", "rprivate"];
const UNITS: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/** docker's units.RAMInBytes: `64m`, `1g`, `1.5GiB`, `100` (bytes); powers of 1024. */
export function parseSize(value: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$/i.exec(value);
  if (!m) throw new InvalidArgumentError(`${flag}: invalid size ${JSON.stringify(value)} (a number with an optional unit: b, k, m, g, t, p)`);
  const bytes = Math.floor(Number(m[1]) * UNITS[(m[2] ?? "").toLowerCase()]!);
  if (!Number.isSafeInteger(bytes)) throw new InvalidArgumentError(`${flag}: size ${JSON.stringify(value)} is too large`);
  return bytes;
}

/** An absolute container path, cleaned (`/data/` -> `/data`); `/` itself is refused (docker). */
function containerPath(path: string, flag: string, value: string): string {
  if (!path.startsWith("/")) throw new InvalidArgumentError(`${flag} ${value}: the container path ${JSON.stringify(path)} must be absolute`);
  const clean = posix.normalize(path).replace(/(.)\/+$/, "$1");
  if (clean === "/") throw new InvalidArgumentError(`${flag} ${value}: the container path cannot be /`);
  return clean;
}

function hostPath(path: string, flag: string, value: string): string {
  if (path === "") throw new InvalidArgumentError(`${flag} ${value}: the host path is empty`);
  if (!path.startsWith("/")) {
    throw new InvalidArgumentError(`${flag} ${value}: ${JSON.stringify(path)} is not an absolute host path, and named volumes are not supported yet`);
  }
  return posix.normalize(path).replace(/(.)\/+$/, "$1");
}

/** -v HOST:CTR[:OPTIONS]: a bind mount (a missing HOST directory is made at run, as docker does). */
export function parseVolume(value: string): BindMountRequest {
  const flag = "-v";
  const parts = value.split(":");
  if (parts.length === 1) throw new InvalidArgumentError(`${flag} ${value}: anonymous volumes are not supported yet (use HOST:CONTAINER)`);
  if (parts.length > 3) throw new InvalidArgumentError(`${flag} ${value}: must be HOST:CONTAINER[:OPTIONS]`);
  const source = hostPath(parts[0]!, flag, value);
  const target = containerPath(parts[1]!, flag, value);
  let readonly = false;
  let propagation = "rprivate";
  const seen = new Set<string>();
  for (const opt of parts[2] === undefined ? [] : parts[2].split(",")) {
    const kind = opt === "ro" || opt === "rw" ? "mode" : PROPAGATIONS.includes(opt) ? "propagation" : opt === "z" || opt === "Z" ? "label" : undefined;
    if (!kind) throw new InvalidArgumentError(`${flag} ${value}: unknown option ${JSON.stringify(opt)} (ro, rw, ${PROPAGATIONS.join(", ")}, z, Z)`);
    if (seen.has(kind)) throw new InvalidArgumentError(`${flag} ${value}: more than one ${kind} option`);
    seen.add(kind);
    if (kind === "mode") readonly = opt === "ro";
    else if (kind === "propagation") propagation = opt;
  }
  return { type: "bind", source, target, readonly, propagation, createSource: true };
}

function parseBool(key: string, v: string | undefined, flag: string, value: string): boolean {
  if (v === undefined || v === "true" || v === "1") return true;
  if (v === "false" || v === "0") return false;
  throw new InvalidArgumentError(`${flag} ${value}: ${key} must be true or false, not ${JSON.stringify(v)}`);
}

/** tmpfs-size in bytes as docker writes it into the options: the largest unit that divides it. */
function tmpfsSizeOption(bytes: number): string {
  for (const [suffix, div] of [["g", 1024 ** 3], ["m", 1024 ** 2], ["k", 1024]] as const) if (bytes % div === 0) return `size=${bytes / div}${suffix}`;
  return `size=${bytes}`;
}

/** --mount type=bind|tmpfs,source=…,target=…[,readonly][,bind-propagation=…][,tmpfs-size=…][,tmpfs-mode=…]. */
export function parseMount(value: string): MountRequest {
  const flag = "--mount";
  const fields = new Map<string, string | undefined>();
  for (const field of value.split(",")) {
    if (field === "") continue;
    const eq = field.indexOf("=");
    const key = (eq < 0 ? field : field.slice(0, eq)).trim().toLowerCase();
    fields.set(key, eq < 0 ? undefined : field.slice(eq + 1));
  }
  const type = fields.get("type") ?? "volume";
  if (type === "volume") throw new InvalidArgumentError(`${flag} ${value}: named volumes are not supported yet (type=bind or type=tmpfs)`);
  if (type !== "bind" && type !== "tmpfs") throw new InvalidArgumentError(`${flag} ${value}: unknown mount type ${JSON.stringify(type)} (bind or tmpfs)`);
  const allowed = new Set(["type", "source", "src", "target", "destination", "dst", "readonly", "ro", ...(type === "bind" ? ["bind-propagation", "bind-nonrecursive"] : ["tmpfs-size", "tmpfs-mode"])]);
  for (const key of fields.keys()) if (!allowed.has(key)) throw new InvalidArgumentError(`${flag} ${value}: unexpected key ${JSON.stringify(key)} for type=${type}`);
  const pick = (...keys: string[]) => keys.map((k) => fields.get(k)).find((v) => v !== undefined);
  const rawTarget = pick("target", "destination", "dst");
  if (!rawTarget) throw new InvalidArgumentError(`${flag} ${value}: target is required`);
  const target = containerPath(rawTarget, flag, value);
  const ro = fields.has("readonly") || fields.has("ro") ? parseBool("readonly", fields.has("readonly") ? fields.get("readonly") : fields.get("ro"), flag, value) : false;
  if (type === "bind") {
    const rawSource = pick("source", "src");
    if (!rawSource) throw new InvalidArgumentError(`${flag} ${value}: source is required for type=bind`);
    const propagation = fields.get("bind-propagation") ?? "rprivate";
    if (!PROPAGATIONS.includes(propagation)) throw new InvalidArgumentError(`${flag} ${value}: bind-propagation must be one of ${PROPAGATIONS.join(", ")}`);
    const m: BindMountRequest = { type: "bind", source: hostPath(rawSource, flag, value), target, readonly: ro, propagation, createSource: false };
    if (fields.has("bind-nonrecursive") && parseBool("bind-nonrecursive", fields.get("bind-nonrecursive"), flag, value)) m.nonRecursive = true;
    return m;
  }
  if (pick("source", "src") !== undefined) throw new InvalidArgumentError(`${flag} ${value}: type=tmpfs takes no source`);
  const options: string[] = [];
  const size = fields.get("tmpfs-size");
  if (size !== undefined) options.push(tmpfsSizeOption(parseSize(size, `${flag} tmpfs-size`)));
  const mode = fields.get("tmpfs-mode");
  if (mode !== undefined) {
    if (!/^[0-7]{1,4}$/.test(mode)) throw new InvalidArgumentError(`${flag} ${value}: tmpfs-mode must be octal (e.g. 1777), not ${JSON.stringify(mode)}`);
    options.push(`mode=${parseInt(mode, 8).toString(8)}`);
  }
  if (ro) options.push("ro");
  return { type: "tmpfs", target, options } satisfies TmpfsMountRequest;
}

const TMPFS_FLAGS = new Set([
  "ro", "rw", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "sync", "async", "dirsync", "atime", "noatime",
  "diratime", "nodiratime", "relatime", "norelatime", "strictatime", "nostrictatime", "mand", "nomand", "defaults", ...PROPAGATIONS,
]);
const TMPFS_VALUES: Record<string, RegExp> = {
  size: /^\d+[kmg%]?$/i,
  nr_blocks: /^\d+[kmg]?$/i,
  nr_inodes: /^\d+[kmg]?$/i,
  mode: /^[0-7]{1,4}$/,
  uid: /^\d+$/,
  gid: /^\d+$/,
  huge: /^(never|always|within_size|advise|deny|force)$/,
};

/** --tmpfs CTR[:OPTIONS]: the kernel's tmpfs options, checked by name and form. */
export function parseTmpfs(value: string): TmpfsMountRequest {
  const flag = "--tmpfs";
  const colon = value.indexOf(":");
  const target = containerPath(colon < 0 ? value : value.slice(0, colon), flag, value);
  const options = colon < 0 ? [] : value.slice(colon + 1).split(",").filter((o) => o !== "");
  for (const o of options) {
    const eq = o.indexOf("=");
    if (eq < 0 ? !TMPFS_FLAGS.has(o) : !TMPFS_VALUES[o.slice(0, eq)]?.test(o.slice(eq + 1))) {
      throw new InvalidArgumentError(`${flag} ${value}: invalid tmpfs option ${JSON.stringify(o)}`);
    }
  }
  return { type: "tmpfs", target, options };
}

/** --device HOST[:CTR][:PERMS] (docker's ParseDevice: a second part of only r/w/m is the permissions). */
export function parseDevice(value: string): DeviceRequest {
  const flag = "--device";
  const parts = value.split(":");
  const isPerms = (s: string) => s !== "" && /^[rwm]+$/.test(s) && new Set(s).size === s.length;
  let host = parts[0]!;
  let container = host;
  let access = "rwm";
  if (parts.length === 2) {
    if (isPerms(parts[1]!)) access = parts[1]!;
    else container = parts[1]!;
  } else if (parts.length === 3) {
    container = parts[1]!;
    if (!isPerms(parts[2]!)) throw new InvalidArgumentError(`${flag} ${value}: invalid permissions ${JSON.stringify(parts[2])} (some of r, w, m)`);
    access = parts[2]!;
  } else if (parts.length > 3) {
    throw new InvalidArgumentError(`${flag} ${value}: must be HOST[:CONTAINER][:PERMISSIONS]`);
  }
  if (!host.startsWith("/")) throw new InvalidArgumentError(`${flag} ${value}: the host path ${JSON.stringify(host)} must be absolute`);
  host = posix.normalize(host);
  return { host, container: containerPath(container, flag, value), access };
}

/** --cpus: a decimal number of CPUs, exactly, in billionths (docker's NanoCPUs); 0 means no limit. */
export function parseCpus(value: string): number | undefined {
  const m = /^(\d+)(?:\.(\d{1,9}))?$/.exec(value);
  if (!m) throw new InvalidArgumentError(`--cpus: ${JSON.stringify(value)} is not a number of CPUs (e.g. 1.5)`);
  const nano = Number(m[1]) * 1e9 + Number((m[2] ?? "").padEnd(9, "0"));
  if (!Number.isSafeInteger(nano)) throw new InvalidArgumentError(`--cpus: ${value} is too large`);
  if (nano === 0) return undefined;
  if (nano < 1e7) throw new InvalidArgumentError(`--cpus: ${value} is below the minimum of 0.01`);
  return nano;
}

/** The parsed flags (only those given), from parseFlags' values. */
export function parseRunSpecFlags(values: Map<string, string | boolean | string[]>): RunSpecFlags {
  const list = (k: string) => (values.get(k) as string[] | undefined) ?? [];
  const str = (k: string) => values.get(k) as string | undefined;
  const out: RunSpecFlags = {};
  const mounts: MountRequest[] = [...list("volume").map(parseVolume), ...list("mount").map(parseMount), ...list("tmpfs").map(parseTmpfs)];
  const targets = new Set<string>();
  for (const m of mounts) {
    if (targets.has(m.target)) throw new InvalidArgumentError(`duplicate mount point: ${m.target}`);
    targets.add(m.target);
  }
  if (mounts.length > 0) out.mounts = mounts;
  if (values.get("readOnly") === true) out.readonlyRootfs = true;
  const memory = str("memory");
  if (memory !== undefined) {
    const bytes = parseSize(memory, "--memory");
    if (bytes > 0 && bytes < 6 * 1024 * 1024) throw new InvalidArgumentError(`--memory: ${memory} is below the minimum of 6m`);
    if (bytes > 0) out.memory = bytes;
  }
  const swap = str("memorySwap");
  if (swap !== undefined) {
    const bytes = swap === "-1" ? -1 : parseSize(swap, "--memory-swap");
    if (out.memory === undefined) throw new InvalidArgumentError("--memory-swap needs --memory (it is the limit of memory and swap together)");
    if (bytes !== -1 && bytes !== 0 && bytes < out.memory) throw new InvalidArgumentError(`--memory-swap: ${swap} is below --memory ${memory} (it is memory and swap together)`);
    if (bytes !== 0) out.memorySwap = bytes;
  }
  const cpus = str("cpus");
  if (cpus !== undefined) {
    const nano = parseCpus(cpus);
    if (nano !== undefined) out.nanoCpus = nano;
  }
  const pids = str("pidsLimit");
  if (pids !== undefined) {
    if (!/^-?\d+$/.test(pids) || Number(pids) < -1 || !Number.isSafeInteger(Number(pids))) {
      throw new InvalidArgumentError(`--pids-limit: ${JSON.stringify(pids)} must be a whole number (0 or -1: no limit)`);
    }
    if (Number(pids) > 0) out.pidsLimit = Number(pids);
  }
  const capAdd = list("capAdd").map((c) => normalizeCapability(c, "--cap-add"));
  const capDrop = list("capDrop").map((c) => normalizeCapability(c, "--cap-drop"));
  if (capAdd.length > 0) out.capAdd = capAdd;
  if (capDrop.length > 0) out.capDrop = capDrop;
  if (values.get("privileged") === true) out.privileged = true;
  const devices = list("device").map(parseDevice);
  if (devices.length > 0) out.devices = devices;
  if (values.get("init") === true) out.init = true;
  return out;
}
