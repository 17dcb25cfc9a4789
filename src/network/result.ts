// Reading a CNI result whatever spec version printed it (SPEC.md "Result"; libcni's
// `pkg/types/{020,040,100}`): 0.1.0/0.2.0 carry `ip4`/`ip6` objects, 0.3.0–1.0.0 carry
// `interfaces` and `ips` whose `interface` is an index into `interfaces`. bunker shows and uses
// one shape (addresses, the container-side interface, gateways), so ps, inspect and /etc/hosts
// never branch on the version.
import type { CniResult } from "./cni.ts";

export interface ResultIp {
  /** CIDR form, e.g. "10.14.0.2/24". */
  address: string;
  /** The bare address, e.g. "10.14.0.2". */
  ip: string;
  version: 4 | 6;
  gateway?: string;
  /** The interface the address is on, when the plugin said so. */
  interface?: string;
}

export interface ResultInterface {
  name: string;
  mac?: string;
  /** The netns path for the container side; absent for host-side interfaces (a veth's peer, the bridge). */
  sandbox?: string;
}

export interface ResultSummary {
  ips: ResultIp[];
  interfaces: ResultInterface[];
  /** The MAC of the container-side interface the first address sits on. */
  mac?: string;
}

const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);

function ipOf(address: string, gateway: string | undefined, iface: string | undefined): ResultIp {
  const ip = address.split("/")[0]!;
  const out: ResultIp = { address, ip, version: ip.includes(":") ? 6 : 4 };
  if (gateway) out.gateway = gateway;
  if (iface) out.interface = iface;
  return out;
}

export function summarizeResult(result: CniResult | undefined | null): ResultSummary {
  if (!result || typeof result !== "object") return { ips: [], interfaces: [] };
  const interfaces: ResultInterface[] = [];
  if (Array.isArray(result.interfaces)) {
    for (const raw of result.interfaces as Record<string, unknown>[]) {
      const name = str(raw?.name);
      if (!name) continue;
      const entry: ResultInterface = { name };
      const mac = str(raw.mac);
      const sandbox = str(raw.sandbox);
      if (mac) entry.mac = mac;
      if (sandbox) entry.sandbox = sandbox;
      interfaces.push(entry);
    }
  }
  const ips: ResultIp[] = [];
  if (Array.isArray(result.ips)) {
    const rawInterfaces = Array.isArray(result.interfaces) ? (result.interfaces as Record<string, unknown>[]) : [];
    for (const raw of result.ips as Record<string, unknown>[]) {
      const address = str(raw?.address);
      if (!address) continue;
      const index = typeof raw.interface === "number" ? raw.interface : undefined;
      ips.push(ipOf(address, str(raw.gateway), index === undefined ? undefined : str(rawInterfaces[index]?.name)));
    }
  } else {
    for (const key of ["ip4", "ip6"] as const) {
      const block = result[key] as Record<string, unknown> | undefined;
      const address = str(block?.ip);
      if (address) ips.push(ipOf(address, str(block?.gateway), undefined));
    }
  }
  const summary: ResultSummary = { ips, interfaces };
  const first = ips[0]?.interface;
  const mac = interfaces.find((i) => i.name === first && i.sandbox)?.mac ?? interfaces.find((i) => i.sandbox)?.mac;
  if (mac) summary.mac = mac;
  return summary;
}
