// IP prefixes for network creation: parsing (IPv4 and IPv6, the forms `ip route` prints), overlap,
// and the host's routes read from /proc/net/route and /proc/net/ipv6_route (the files iproute2's
// ancestors read; no netlink and no `ip` binary needed). nerdctl and docker refuse a bridge subnet
// that overlaps a route the host already has (the container's traffic would be misrouted); this is
// that check. Addresses are bigints so one code path serves both families.
import * as fs from "node:fs";
import { endianness } from "node:os";
import { InvalidArgumentError } from "../errdefs.ts";

export interface Prefix {
  version: 4 | 6;
  /** The network address (host bits cleared). */
  network: bigint;
  bits: number;
}

export interface HostRoute {
  prefix: Prefix;
  iface: string;
}

const BITS = { 4: 32, 6: 128 } as const;

export function parseIp(text: string): { version: 4 | 6; value: bigint } | undefined {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(text)) {
    const octets = text.split(".").map(Number);
    if (octets.some((o) => o > 255)) return undefined;
    return { version: 4, value: octets.reduce((acc, o) => (acc << 8n) | BigInt(o), 0n) };
  }
  if (!/^[0-9a-fA-F:.]+$/.test(text) || !text.includes(":")) return undefined;
  let body = text;
  const v4 = /(\d{1,3}(?:\.\d{1,3}){3})$/.exec(text);
  if (v4) {
    // An embedded IPv4 tail ("::ffff:10.0.0.1") is the last two groups.
    const parsed = parseIp(v4[1]!);
    if (!parsed) return undefined;
    body = `${text.slice(0, -v4[1]!.length)}${(parsed.value >> 16n).toString(16)}:${(parsed.value & 0xffffn).toString(16)}`;
  }
  const halves = body.split("::");
  if (halves.length > 2) return undefined;
  const group = (s: string): bigint[] | undefined => {
    if (s === "") return [];
    const parts = s.split(":");
    if (parts.some((p) => !/^[0-9a-fA-F]{1,4}$/.test(p))) return undefined;
    return parts.map((p) => BigInt(`0x${p}`));
  };
  const head = group(halves[0]!);
  const rest = halves.length === 2 ? group(halves[1]!) : [];
  if (!head || !rest) return undefined;
  const known = head.length + rest.length;
  if (halves.length === 1 ? known !== 8 : known > 7) return undefined;
  const groups = [...head, ...Array<bigint>(8 - known).fill(0n), ...rest];
  return { version: 6, value: groups.reduce((acc, g) => (acc << 16n) | g, 0n) };
}

export function formatIp(version: 4 | 6, value: bigint): string {
  if (version === 4) return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join(".");
  const groups = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt(112 - 16 * i)) & 0xffffn));
  // RFC 5952: the longest run (of two or more) of zero groups becomes "::".
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}

const mask = (version: 4 | 6, bits: number): bigint => {
  const total = BigInt(BITS[version]);
  return ((1n << total) - 1n) ^ ((1n << (total - BigInt(bits))) - 1n);
};

/** "10.14.0.0/24" → a Prefix; host bits set in the address are refused (a typo more often than intent). */
export function parsePrefix(text: string, what = "subnet"): Prefix {
  const [addr, bitsText, extra] = text.split("/");
  const ip = addr === undefined ? undefined : parseIp(addr);
  const bits = bitsText !== undefined && /^\d{1,3}$/.test(bitsText) ? Number(bitsText) : NaN;
  if (!ip || extra !== undefined || !(bits >= 0 && bits <= BITS[ip.version])) {
    throw new InvalidArgumentError(`${what} ${JSON.stringify(text)} is not an IP prefix like 10.14.0.0/24`);
  }
  const network = ip.value & mask(ip.version, bits);
  if (network !== ip.value) throw new InvalidArgumentError(`${what} ${JSON.stringify(text)} has host bits set; did you mean ${formatPrefix({ version: ip.version, network, bits })}?`);
  return { version: ip.version, network, bits };
}

export const formatPrefix = (p: Prefix): string => `${formatIp(p.version, p.network)}/${p.bits}`;

export function prefixContains(p: Prefix, version: 4 | 6, value: bigint): boolean {
  return p.version === version && (value & mask(version, p.bits)) === p.network;
}

export function prefixesOverlap(a: Prefix, b: Prefix): boolean {
  if (a.version !== b.version) return false;
  const bits = Math.min(a.bits, b.bits);
  return (a.network & mask(a.version, bits)) === (b.network & mask(b.version, bits));
}

/** The address `offset` into the prefix (1 = the conventional gateway). */
export function addressAt(p: Prefix, offset: bigint): bigint {
  return p.network + offset;
}

/** The last address of the prefix (IPv4's broadcast). */
export function lastAddress(p: Prefix): bigint {
  return p.network | ((1n << BigInt(BITS[p.version] - p.bits)) - 1n);
}

function hostOrderHexToIpv4(hex: string): bigint {
  // /proc/net/route prints the network-order u32 as a host-order integer.
  const n = Number.parseInt(hex, 16) >>> 0;
  const buf = Buffer.alloc(4);
  if (endianness() === "LE") buf.writeUInt32LE(n); else buf.writeUInt32BE(n);
  return BigInt(buf.readUInt32BE());
}

/**
 * The host's routes that a new bridge subnet must not overlap: IPv4's main table and IPv6's, minus
 * default routes, link-local and multicast (every host has those; they never carry a subnet).
 */
export function hostRoutes(procNet = "/proc/net"): HostRoute[] {
  const routes: HostRoute[] = [];
  const read = (name: string): string[] => {
    try {
      return fs.readFileSync(`${procNet}/${name}`, "utf8").split("\n");
    } catch {
      return [];
    }
  };
  for (const line of read("route").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const network = hostOrderHexToIpv4(f[1]!);
    const maskValue = hostOrderHexToIpv4(f[7]!);
    const bits = maskValue.toString(2).replace(/0+$/, "").length;
    if (bits === 0) continue;
    routes.push({ prefix: { version: 4, network: network & mask(4, bits), bits }, iface: f[0]! });
  }
  for (const line of read("ipv6_route")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const bits = Number.parseInt(f[1]!, 16);
    const network = BigInt(`0x${f[0]}`);
    if (bits === 0 || f[9] === "lo") continue;
    const prefix: Prefix = { version: 6, network: network & mask(6, bits), bits };
    if (prefixesOverlap(prefix, parsePrefix("fe80::/10")) || prefixesOverlap(prefix, parsePrefix("ff00::/8"))) continue;
    routes.push({ prefix, iface: f[9]! });
  }
  return routes;
}
