// The three files a networked container sees at /etc/hosts, /etc/hostname and /etc/resolv.conf,
// generated into a per-container state dir and bind-mounted by the spec, as docker and nerdctl do
// (moby libnetwork/etchosts and resolvconf; nerdctl pkg/dnsutil and pkg/containerutil):
//   - hosts: docker's localhost block, then `--add-host` entries, then the container's own
//     addresses with its hostname;
//   - resolv.conf: the host's, minus nameservers in 127.0.0.0/8 and ::1 (unreachable from a
//     container's netns); with none left, docker's fallback (8.8.8.8, 8.8.4.4). `--dns`,
//     `--dns-search` and `--dns-option` replace the host's lines of that kind. A host running
//     systemd-resolved's stub (127.0.0.53) is read through its upstream file instead;
//   - hostname: the hostname (default: the id's first 12 characters, as docker).
// Files are written to a temp name and renamed, so a bind mount never sees half a file.
import * as fs from "node:fs";
import { join } from "node:path";
import { InvalidArgumentError } from "../errdefs.ts";
import { parseIp } from "./subnets.ts";

export const FALLBACK_NAMESERVERS: readonly string[] = ["8.8.8.8", "8.8.4.4"];
/** sethostname(2)'s limit (HOST_NAME_MAX). */
export const MAX_HOSTNAME = 64;

export interface ExtraHost {
  host: string;
  ip: string;
}

export interface DnsOverrides {
  nameservers?: readonly string[];
  search?: readonly string[];
  options?: readonly string[];
}

const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

export function validateHostname(name: string): string {
  if (name.length === 0 || name.length > MAX_HOSTNAME || !HOSTNAME.test(name)) {
    throw new InvalidArgumentError(`hostname ${JSON.stringify(name.slice(0, 80))} must be at most ${MAX_HOSTNAME} characters of letters, digits, "-" and "."`);
  }
  return name;
}

/** docker's default: the first 12 characters of the container id (ids run to 76; sethostname stops at 64). */
export function defaultHostname(containerId: string): string {
  return validateHostname(containerId.slice(0, 12).replace(/[^A-Za-z0-9-]/g, "-").replace(/^-+|-+$/g, "") || "container");
}

/** `--add-host NAME:IP` (IPv6 addresses keep their colons: the split is at the first one). */
export function parseAddHost(spec: string, hostGateway?: string): ExtraHost {
  const at = spec.indexOf(":");
  const host = at < 0 ? "" : spec.slice(0, at);
  let ip = at < 0 ? "" : spec.slice(at + 1).replace(/^\[(.*)\]$/, "$1");
  if (ip === "host-gateway") {
    if (!hostGateway) throw new InvalidArgumentError(`--add-host ${JSON.stringify(spec)}: host-gateway has no address on this network`);
    ip = hostGateway;
  }
  if (!host || !HOSTNAME.test(host) || !parseIp(ip)) throw new InvalidArgumentError(`--add-host ${JSON.stringify(spec)} is not NAME:IP`);
  return { host, ip };
}

export function hostsFile(hostname: string, ips: readonly string[], extra: readonly ExtraHost[] = []): string {
  const lines = [
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    "fe00::0\tip6-localnet",
    "ff00::0\tip6-mcastprefix",
    "ff02::1\tip6-allnodes",
    "ff02::2\tip6-allrouters",
    ...extra.map((e) => `${e.ip}\t${e.host}`),
    ...ips.map((ip) => `${ip}\t${hostname}`),
  ];
  return `${lines.join("\n")}\n`;
}

export const hostnameFile = (hostname: string): string => `${validateHostname(hostname)}\n`;

function isLocalNameserver(ip: string): boolean {
  const parsed = parseIp(ip.replace(/%.*$/, ""));
  if (!parsed) return false;
  return parsed.version === 4 ? parsed.value >> 24n === 127n : parsed.value === 1n;
}

/** The container's resolv.conf from the host's text. */
export function resolvConf(hostText: string, overrides: DnsOverrides = {}): string {
  const nameservers: string[] = [];
  const rest: string[] = [];
  let search: string[] | undefined;
  let options: string[] | undefined;
  for (const raw of hostText.split("\n")) {
    const line = raw.trim();
    const [key, ...values] = line.split(/\s+/);
    if (key === "nameserver" && values[0]) {
      if (!isLocalNameserver(values[0])) nameservers.push(values[0]);
    } else if (key === "search" || key === "domain") {
      search = values; // the last of search/domain wins (resolv.conf(5))
    } else if (key === "options") {
      options = [...(options ?? []), ...values];
    } else if (line !== "" && !line.startsWith("#") && !line.startsWith(";")) {
      rest.push(line);
    }
  }
  for (const ns of overrides.nameservers ?? []) {
    if (!parseIp(ns)) throw new InvalidArgumentError(`--dns ${JSON.stringify(ns)} is not an IP address`);
  }
  const servers = overrides.nameservers?.length ? [...overrides.nameservers] : nameservers.length ? nameservers : [...FALLBACK_NAMESERVERS];
  if (overrides.search?.length) search = [...overrides.search];
  if (overrides.options?.length) options = [...overrides.options];
  const out = [
    ...(search?.length ? [`search ${search.join(" ")}`] : []),
    ...servers.map((s) => `nameserver ${s}`),
    ...(options?.length ? [`options ${options.join(" ")}`] : []),
    ...rest,
  ];
  return `${out.join("\n")}\n`;
}

/** The host resolv.conf a container's is made from: systemd-resolved's upstream list when the host uses its stub. */
export function hostResolvConf(path = "/etc/resolv.conf", resolvedUpstream = "/run/systemd/resolve/resolv.conf"): string {
  let text = "";
  try {
    text = fs.readFileSync(path, "utf8");
  } catch {
    return "";
  }
  if (/^\s*nameserver\s+127\.0\.0\.53\s*$/m.test(text)) {
    try {
      return fs.readFileSync(resolvedUpstream, "utf8");
    } catch {
      // no upstream file: the stub is dropped below and the fallback servers are used
    }
  }
  return text;
}

export interface EtcFilesOptions {
  hostname: string;
  /** The container's addresses (bare, not CIDR), for its own hosts line. */
  ips: readonly string[];
  extraHosts?: readonly ExtraHost[];
  dns?: DnsOverrides;
  /** The host's resolv.conf text (default: hostResolvConf()). */
  hostResolv?: string;
}

export interface EtcFiles {
  hosts: string;
  hostname: string;
  resolvConf: string;
}

/** Writes hosts, hostname and resolv.conf into `dir`; returns their paths (bind-mount sources for the spec). */
export function writeEtcFiles(dir: string, opts: EtcFilesOptions): EtcFiles {
  validateHostname(opts.hostname);
  const contents: Record<keyof EtcFiles, [string, string]> = {
    hosts: ["hosts", hostsFile(opts.hostname, opts.ips, opts.extraHosts)],
    hostname: ["hostname", hostnameFile(opts.hostname)],
    resolvConf: ["resolv.conf", resolvConf(opts.hostResolv ?? hostResolvConf(), opts.dns)],
  };
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const out = {} as EtcFiles;
  for (const [key, [name, text]] of Object.entries(contents) as [keyof EtcFiles, [string, string]][]) {
    const path = join(dir, name);
    const temp = `${path}.${process.pid}.tmp`;
    fs.writeFileSync(temp, text, { mode: 0o644 });
    fs.renameSync(temp, path);
    out[key] = path;
  }
  return out;
}
