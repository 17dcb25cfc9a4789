// Named networks: `<root>/networks/<name>.conflist`, one CNI conflist per network, the way nerdctl
// keeps them (`/etc/cni/net.d/nerdctl-<name>.conflist`) but under bunker's root so two bunkers never
// share one. The default network `bridge` (bridge device "bunker0", 10.14.0.0/24) is written on
// first use; other networks get a device "br-<12 hex>" and, without --subnet, the next free 10.14.N.0/24.
//
// The chain is shorter than nerdctl's (bridge + host-local, portmap, firewall, tuning), because a
// container's attach and detach pay for every plugin exec and the budget for both is 60 ms
// (bench/network.ts measures it). What each dropped piece did, and where it went:
//   - bridge's `ipMasq` (a NAT chain per container, ~35 ms ADD + ~55 ms DEL) and `firewall` (two
//     FORWARD accepts per container, ~40 + ~45 ms): one masquerade rule for the subnet and two
//     FORWARD accepts for the bridge, installed once per network (host-rules.ts; the list says so
//     with `bunkerHostRules: true`) and removed by `network rm`, as docker's bridge driver does;
//   - `tuning` with no sysctls or settings configured does nothing but cost an exec each way;
//   - `portmap` stays in the list but runs only for a container that publishes ports (attach.ts
//     derives the chain per attach and records which plugins ran, so DEL runs exactly those).
//
// A subnet that overlaps a host route (other than its own bridge's) or another bunker network is
// refused: traffic to it would go to the wrong place. A network is in use while an attachment
// record names it (attach.ts); `remove` refuses then. Files are published by link(2) from a temp
// name, so a racing create of the same name fails cleanly and no reader sees half a file.
import * as fs from "node:fs";
import { join } from "node:path";
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError, errorMessage } from "../errdefs.ts";
import { DEFAULT_CNI_PATH, DEFAULT_PLUGIN_TIMEOUT_MS, type CniOptions, type NetworkConfigList, type PluginConfig } from "./cni.ts";
import { defaultHostTools, deleteLink, ensureNetworkHostSetup, removeNetworkHostSetup, type HostTools } from "./host-rules.ts";
import { addressAt, formatIp, formatPrefix, hostRoutes, lastAddress, parseIp, parsePrefix, prefixContains, prefixesOverlap, type HostRoute, type Prefix } from "./subnets.ts";

export const DEFAULT_NETWORK = "bridge";
export const DEFAULT_BRIDGE = "bunker0";
export const DEFAULT_SUBNET = "10.14.0.0/24";
/** What `--net` may say besides a network name; no network may be called one of these. */
export const RESERVED_NETWORK_NAMES: readonly string[] = ["host", "none", "container", "default"];
export const CNI_VERSION = "1.0.0";

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const BRIDGE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

export interface CreateNetworkOptions {
  subnet?: string;
  gateway?: string;
  /** The bridge device; default "br-" + 12 hex of the name's sha256. */
  bridge?: string;
}

export interface NetworkInfo {
  name: string;
  bridge: string;
  subnet: string;
  gateway: string;
  plugins: string[];
  file: string;
  /** The CNI container ids attached to it now. */
  containers: string[];
}

export interface NetworkStoreOptions extends CniOptions {
  /** Where /proc/net is (route, ipv6_route, dev; tests point it at a fixture). */
  procNet?: string;
  /** iptables, ip6tables and ip for the per-network host setup (tests point them at fakes). */
  hostTools?: Partial<HostTools>;
}

/** A conflist as bunker writes it: `bunkerHostRules` marks a network whose masquerade and forward rules bunker installs (host-rules.ts). */
export interface BunkerConflist extends NetworkConfigList {
  bunkerHostRules?: boolean;
}

export function validateNetworkName(name: string): string {
  if (!NAME.test(name)) throw new InvalidArgumentError(`network name ${JSON.stringify(name)} must match ${NAME.source}`);
  if (RESERVED_NETWORK_NAMES.includes(name)) throw new InvalidArgumentError(`network name ${JSON.stringify(name)} is reserved (--net ${name} means something else)`);
  return name;
}

/** The conflist bunker writes for a bridge network (also what unit tests check against). */
export function bridgeConflist(name: string, bridge: string, subnet: string, gateway: string, ipamDir: string): BunkerConflist {
  const family = parsePrefix(subnet).version;
  const bridgePlugin: PluginConfig = {
    type: "bridge",
    bridge,
    isGateway: true,
    ipMasq: false,
    hairpinMode: true,
    ipam: {
      type: "host-local",
      ranges: [[{ subnet, gateway }]],
      routes: [{ dst: family === 4 ? "0.0.0.0/0" : "::/0" }],
      dataDir: ipamDir,
    },
  };
  return {
    cniVersion: CNI_VERSION,
    name,
    bunkerHostRules: true,
    plugins: [bridgePlugin, { type: "portmap", capabilities: { portMappings: true } }],
  };
}

/** The bridge device, subnet and gateway a stored conflist names (its first bridge plugin's). */
export function describeConflist(list: NetworkConfigList): { bridge: string; subnet: string; gateway: string } {
  const bridge = list.plugins.find((p) => p.type === "bridge");
  const ipam = bridge?.ipam as { ranges?: { subnet?: string; gateway?: string }[][] } | undefined;
  const range = ipam?.ranges?.[0]?.[0];
  return { bridge: String(bridge?.bridge ?? ""), subnet: String(range?.subnet ?? ""), gateway: String(range?.gateway ?? "") };
}

export class NetworkStore {
  /** `<root>/networks`. */
  readonly dir: string;
  /** host-local's dataDir: leases persist across reboots, so a kept ADD result can still free its lease. */
  readonly ipamDir: string;
  /** Attachment records (attach.ts): `<dir>/attachments/<container id>/<network>.json`. */
  readonly attachmentsDir: string;
  /** Host port reservations (attach.ts). */
  readonly portsDir: string;
  readonly cni: CniOptions & Required<Pick<CniOptions, "cniPath" | "timeoutMs">>;
  readonly hostTools: HostTools;
  /** Where /proc/net is: routes for subnet checks, dev for links. */
  readonly procNet: string;

  constructor(root: string, opts: NetworkStoreOptions = {}) {
    this.dir = join(root, "networks");
    this.ipamDir = join(this.dir, "ipam");
    this.attachmentsDir = join(this.dir, "attachments");
    this.portsDir = join(this.dir, "ports");
    this.cni = { cniPath: opts.cniPath ?? DEFAULT_CNI_PATH, timeoutMs: opts.timeoutMs ?? DEFAULT_PLUGIN_TIMEOUT_MS };
    if (opts.onExec) this.cni.onExec = opts.onExec;
    this.procNet = opts.procNet ?? "/proc/net";
    this.hostTools = { ...defaultHostTools(), ...opts.hostTools };
  }

  private get hostRulesLock(): string {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    return join(this.dir, "host-rules.lock");
  }

  /**
   * The network's masquerade and forward rules and its bridge (host-rules.ts), when its list asks
   * for them; one read of /proc/net/dev once they are there. attach runs it before every ADD (a
   * reboot takes rules and bridge), `network create` may run it to set up eagerly.
   */
  async ensureHostSetup(name: string, list: BunkerConflist = this.config(name)): Promise<void> {
    if (list.bunkerHostRules !== true) return;
    const { bridge, subnet } = describeConflist(list);
    await ensureNetworkHostSetup({ name, bridge, subnet }, this.hostRulesLock, this.hostTools, this.procNet);
  }

  private file(name: string): string {
    return join(this.dir, `${name}.conflist`);
  }

  /** Creates a named network; `bridge` is the default network's name and only ensureDefault makes it. */
  create(name: string, opts: CreateNetworkOptions = {}): NetworkInfo {
    if (name !== DEFAULT_NETWORK) validateNetworkName(name);
    if (fs.existsSync(this.file(name))) throw new AlreadyExistsError(`network ${JSON.stringify(name)} already exists`);
    const bridge = opts.bridge ?? (name === DEFAULT_NETWORK ? DEFAULT_BRIDGE : `br-${new Bun.CryptoHasher("sha256").update(name).digest("hex").slice(0, 12)}`);
    if (!BRIDGE_NAME.test(bridge)) throw new InvalidArgumentError(`bridge name ${JSON.stringify(bridge)} must be 1-15 characters of [A-Za-z0-9_.-]`);
    const others = this.list();
    const taken = others.find((n) => n.bridge === bridge);
    if (taken) throw new AlreadyExistsError(`bridge ${bridge} is already used by network ${JSON.stringify(taken.name)}`);
    const routes = hostRoutes(this.procNet).filter((r) => r.iface !== bridge);
    const subnet = opts.subnet !== undefined ? parsePrefix(opts.subnet) : this.freeSubnet(others, routes);
    if (subnet.bits > (subnet.version === 4 ? 30 : 126)) throw new InvalidArgumentError(`subnet ${formatPrefix(subnet)} is too small for a gateway and a container`);
    const clash = others.find((n) => n.subnet && prefixesOverlap(parsePrefix(n.subnet), subnet));
    if (clash) throw new FailedPreconditionError(`subnet ${formatPrefix(subnet)} overlaps network ${JSON.stringify(clash.name)} (${clash.subnet})`);
    const route = routes.find((r) => prefixesOverlap(r.prefix, subnet));
    if (route) throw new FailedPreconditionError(`subnet ${formatPrefix(subnet)} overlaps the host route ${formatPrefix(route.prefix)} on ${route.iface}; pick another --subnet`);
    const gateway = this.gatewayFor(subnet, opts.gateway);
    const list = bridgeConflist(name, bridge, formatPrefix(subnet), gateway, this.ipamDir);
    this.publish(name, list);
    return this.inspect(name);
  }

  private gatewayFor(subnet: Prefix, given: string | undefined): string {
    if (given === undefined) return formatIp(subnet.version, addressAt(subnet, 1n));
    const ip = parseIp(given);
    if (!ip || !prefixContains(subnet, ip.version, ip.value)) throw new InvalidArgumentError(`gateway ${JSON.stringify(given)} is not an address inside ${formatPrefix(subnet)}`);
    if (ip.value === subnet.network || (subnet.version === 4 && ip.value === lastAddress(subnet))) {
      throw new InvalidArgumentError(`gateway ${given} is the network or broadcast address of ${formatPrefix(subnet)}`);
    }
    return formatIp(ip.version, ip.value);
  }

  /** nerdctl's rule for a network without --subnet: the first free /24 after the default's. */
  private freeSubnet(others: NetworkInfo[], routes: HostRoute[]): Prefix {
    const used = [...others.filter((n) => n.subnet).map((n) => parsePrefix(n.subnet)), ...routes.map((r) => r.prefix)];
    const base = parsePrefix(DEFAULT_SUBNET);
    for (let i = 1n; i < 256n; i++) {
      const candidate: Prefix = { version: 4, network: base.network + (i << 8n), bits: 24 };
      if (!used.some((u) => prefixesOverlap(u, candidate))) return candidate;
    }
    throw new FailedPreconditionError(`no free /24 left in 10.14.0.0/16 for a new network; pass --subnet`);
  }

  private publish(name: string, list: NetworkConfigList): void {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const temp = join(this.dir, `.${name}.${process.pid}.${Date.now()}.tmp`);
    fs.writeFileSync(temp, `${JSON.stringify(list, null, 2)}\n`, { mode: 0o600 });
    try {
      fs.linkSync(temp, this.file(name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") throw new AlreadyExistsError(`network ${JSON.stringify(name)} already exists`);
      throw err;
    } finally {
      fs.rmSync(temp, { force: true });
    }
  }

  /** The default network, written on first use (a racing writer's file wins and is read back). */
  ensureDefault(): BunkerConflist {
    if (!fs.existsSync(this.file(DEFAULT_NETWORK))) {
      try {
        this.create(DEFAULT_NETWORK, { subnet: DEFAULT_SUBNET, bridge: DEFAULT_BRIDGE });
      } catch (err) {
        if (!(err instanceof AlreadyExistsError && fs.existsSync(this.file(DEFAULT_NETWORK)))) throw err;
      }
    }
    return this.config(DEFAULT_NETWORK);
  }

  /** The stored conflist; the default network is made here on first use. */
  config(name: string): BunkerConflist {
    if (name === DEFAULT_NETWORK && !fs.existsSync(this.file(name))) return this.ensureDefault();
    if (name !== DEFAULT_NETWORK) validateNetworkName(name);
    let text: string;
    try {
      text = fs.readFileSync(this.file(name), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new NotFoundError(`network ${JSON.stringify(name)} not found`);
      throw err;
    }
    try {
      const list = JSON.parse(text) as BunkerConflist;
      if (typeof list.cniVersion !== "string" || !Array.isArray(list.plugins) || list.name !== name) throw new Error("not a conflist for this name");
      return list;
    } catch (err) {
      throw new FailedPreconditionError(`network ${JSON.stringify(name)}: ${this.file(name)} is damaged (${errorMessage(err)})`);
    }
  }

  inspect(name: string): NetworkInfo {
    const list = this.config(name);
    return { name, ...describeConflist(list), plugins: list.plugins.map((p) => p.type), file: this.file(name), containers: this.usedBy(name) };
  }

  list(): NetworkInfo[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir).filter((f) => f.endsWith(".conflist") && !f.startsWith(".")).map((f) => f.slice(0, -".conflist".length));
    } catch {
      return [];
    }
    return names.sort().flatMap((n) => {
      try {
        return [this.inspect(n)];
      } catch {
        return []; // a damaged file is reported by inspect, not by every list
      }
    });
  }

  /** The CNI container ids with an attachment record on this network. */
  usedBy(name: string): string[] {
    let containers: string[];
    try {
      containers = fs.readdirSync(this.attachmentsDir);
    } catch {
      return [];
    }
    return containers.filter((c) => fs.existsSync(join(this.attachmentsDir, c, `${name}.json`))).sort();
  }

  /**
   * Removes a network that no container uses, with its bridge device and (for bunker's lists) its
   * host rules, as nerdctl's and docker's `network rm` do. The host side goes first: a crash
   * half-way leaves the network listed, and the next attach or rm completes the job.
   */
  async remove(name: string): Promise<void> {
    if (name === DEFAULT_NETWORK) throw new FailedPreconditionError(`network ${JSON.stringify(name)} is the default network and cannot be removed`);
    const list = this.config(name);
    const info = this.inspect(name);
    if (info.containers.length > 0) throw new FailedPreconditionError(`network ${JSON.stringify(name)} is in use by ${info.containers.join(", ")}`);
    if (list.bunkerHostRules === true) await removeNetworkHostSetup({ name, bridge: info.bridge, subnet: info.subnet }, this.hostRulesLock, this.hostTools);
    else if (info.bridge) await deleteLink(info.bridge, this.hostTools);
    fs.rmSync(this.file(name));
    fs.rmSync(join(this.ipamDir, name), { recursive: true, force: true });
  }
}
