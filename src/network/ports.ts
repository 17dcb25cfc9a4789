// Published ports (`-p [IP:]HOST:CONTAINER[/tcp|udp]`, docker's syntax) and their reservation.
// The portmap plugin only writes DNAT rules: it neither notices a host process already bound to
// the port nor a second container given the same one (the later rule would silently lose). So,
// as nerdctl does before it calls CNI, a host port is refused when a socket in the host's netns
// holds it (/proc/net/{tcp,tcp6} LISTEN, /proc/net/{udp,udp6} bound), and reserved by an
// O_EXCL file `<root>/networks/ports/<proto>-<port>` naming its container, so two racing attaches
// cannot both win. The key ignores the host IP (stricter than docker, which lets 127.0.0.1:80
// and 127.0.0.2:80 coexist) because a wildcard and a specific binding of one port do conflict.
import * as fs from "node:fs";
import { join } from "node:path";
import { FailedPreconditionError, InvalidArgumentError } from "../errdefs.ts";
import { parseIp } from "./subnets.ts";

/** The CNI `portMappings` capability argument, as portmap reads it. */
export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: "tcp" | "udp";
  hostIP?: string;
}

const port = (text: string, what: string, spec: string): number => {
  const n = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= 65535)) throw new InvalidArgumentError(`-p ${JSON.stringify(spec)}: ${what} port ${JSON.stringify(text)} is not 1-65535`);
  return n;
};

/** `-p [IP:]HOST:CONTAINER[/tcp|udp]`; an IPv6 host IP is written in brackets. */
export function parsePublish(spec: string): PortMapping {
  const slash = spec.lastIndexOf("/");
  const proto = slash < 0 ? "tcp" : spec.slice(slash + 1).toLowerCase();
  if (proto !== "tcp" && proto !== "udp") throw new InvalidArgumentError(`-p ${JSON.stringify(spec)}: protocol must be tcp or udp`);
  const body = slash < 0 ? spec : spec.slice(0, slash);
  const m = /^(?:(\[[^\]]+\]|[^:]+):)?([^:]+):([^:]+)$/.exec(body);
  if (!m) throw new InvalidArgumentError(`-p ${JSON.stringify(spec)} is not [IP:]HOST:CONTAINER[/tcp|udp]`);
  const mapping: PortMapping = { hostPort: port(m[2]!, "host", spec), containerPort: port(m[3]!, "container", spec), protocol: proto };
  if (m[1] !== undefined) {
    const ip = m[1].replace(/^\[(.*)\]$/, "$1");
    if (!parseIp(ip)) throw new InvalidArgumentError(`-p ${JSON.stringify(spec)}: ${JSON.stringify(ip)} is not an IP address`);
    mapping.hostIP = ip;
  }
  return mapping;
}

/** Host ports some socket in this netns holds: TCP listeners, bound UDP sockets. */
export function portsInUse(protocol: "tcp" | "udp", procNet = "/proc/net"): Set<number> {
  const used = new Set<number>();
  for (const file of protocol === "tcp" ? ["tcp", "tcp6"] : ["udp", "udp6"]) {
    let text = "";
    try {
      text = fs.readFileSync(join(procNet, file), "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 4) continue;
      if (protocol === "tcp" && f[3] !== "0A") continue; // TCP_LISTEN
      used.add(Number.parseInt(f[1]!.split(":").pop()!, 16));
    }
  }
  return used;
}

const reservationName = (m: PortMapping): string => `${m.protocol}-${m.hostPort}`;

/**
 * Reserves every mapping's host port for `owner`, all or none. `isStale(owner)` says whether a
 * reservation's holder is gone (no attachment record), so a crashed attach never blocks a port.
 */
export function reservePorts(dir: string, owner: string, mappings: readonly PortMapping[], isStale: (holder: string) => boolean, procNet = "/proc/net"): void {
  if (mappings.length === 0) return;
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const taken: PortMapping[] = [];
  try {
    const seen = new Set<string>();
    for (const m of mappings) {
      const name = reservationName(m);
      if (seen.has(name)) throw new InvalidArgumentError(`host port ${m.hostPort}/${m.protocol} is published twice`);
      seen.add(name);
      if (portsInUse(m.protocol, procNet).has(m.hostPort)) throw new FailedPreconditionError(`host port ${m.hostPort}/${m.protocol} is already in use on this host`);
      const path = join(dir, name);
      for (;;) {
        try {
          fs.writeFileSync(path, owner, { flag: "wx", mode: 0o600 });
          taken.push(m);
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
        }
        const holder = readHolder(path);
        if (holder === owner) break;
        if (holder !== undefined && !isStale(holder)) throw new FailedPreconditionError(`host port ${m.hostPort}/${m.protocol} is already published by container ${holder}`);
        fs.rmSync(path, { force: true }); // a crashed attach's leftover (or a file cut short): take it over
      }
    }
  } catch (err) {
    releasePorts(dir, owner, taken);
    throw err;
  }
}

function readHolder(path: string): string | undefined {
  try {
    return fs.readFileSync(path, "utf8") || undefined;
  } catch {
    return undefined;
  }
}

/** Drops the reservations `owner` holds; others' are left alone. */
export function releasePorts(dir: string, owner: string, mappings: readonly PortMapping[]): void {
  for (const m of mappings) {
    const path = join(dir, reservationName(m));
    if (readHolder(path) === owner) fs.rmSync(path, { force: true });
  }
}
