// Attaching a container's netns to a network and detaching it again, with the ADD result kept on
// disk so DEL can run later — from another process, after a crash or after a reboot — as libcni's
// result cache (`/var/lib/cni/results`) lets containerd's CRI do. The record
// `<root>/networks/attachments/<cni container id>/<network>.json` holds the chain that ran (the
// network's conflist as it was at ADD, without `portmap` for a container that publishes nothing:
// a network removed or recreated later does not change what DEL gets), the interface, the netns,
// the port mappings and the result.
//
// Order makes it crash-safe: the record is written (result: null) before the first plugin runs and
// before host ports are reserved, so whatever a SIGKILL interrupts, a record exists that makes
// detach run DEL (plugins treat DEL of what they never made as success) and release the ports. A
// record goes only after its DEL succeeded; the netns goes after all of a container's records.
// A netns that is gone (reboot) is passed to DEL as "" so plugins still free leases and rules.
//
// Detaching everything from a bunker chain (bridge + host-local, maybe portmap) takes a shorter
// way, because it is on every `run --rm`'s path: the netns pin goes first, so the kernel tears the
// container's side down (and the veth pair with it) while the plugins run; DEL then gets netns ""
// (bridge only releases the host-local lease, portmap only drops its rules: neither needs the
// netns), and the two run at once, since neither reads what the other writes. With netns "" the
// bridge plugin's DEL is only its IPAM plugin's DEL with the same stdin (plugins/main/bridge's
// cmdDel, for a config without ipMasq or macspoofchk, which bunker's lists never set), so detach
// runs host-local so directly and saves the bridge exec. Measured (bench/network.ts): bridge DEL
// with the netns ~50 ms, with "" ~22 ms, host-local alone ~9 ms. If something else still holds the
// netns, the host end of the veth is still there after DEL (and a wait for the kernel's own
// teardown) and is deleted by name, which takes the pair down: detach never returns with a veth
// left. It is deleted only if it still has the MAC the ADD result names (a reboot may have given
// its name to another container's veth).
import * as fs from "node:fs";
import { join } from "node:path";
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errdefs.ts";
import { addNetworkList, checkNetworkList, delNetworkList, execPlugin, findPlugin, isRollbackIncomplete, pluginStdin, type CniResult, type NetworkConfigList, type RuntimeConf } from "./cni.ts";
import { deleteLinkWithMac, linkExists } from "./host-rules.ts";
import { isNetnsPin, removeNetns } from "./netns.ts";
import type { BunkerConflist, NetworkStore } from "./networks.ts";
import { releasePorts, reservePorts, type PortMapping } from "./ports.ts";
import { summarizeResult, type ResultInterface, type ResultIp } from "./result.ts";

export interface AttachRequest {
  /** CNI_CONTAINERID: unique per container across namespaces (e.g. `<ns>-<id>`). */
  containerId: string;
  /** The pinned netns (netns.ts). */
  netns: string;
  network: string;
  /** Default: eth0 for the first network, eth1 for the next, ... */
  ifName?: string;
  portMappings?: readonly PortMapping[];
  /** CNI_ARGS. */
  args?: Record<string, string>;
}

interface AttachmentRecord {
  containerId: string;
  network: string;
  ifName: string;
  netns: string;
  /** The chain this attach ran (chainFor), which is what DEL runs. */
  config: BunkerConflist;
  portMappings: PortMapping[];
  args?: Record<string, string>;
  /** null until ADD finished: a record still null after a crash still gets its DEL. */
  result: CniResult | null;
}

export interface Attachment {
  containerId: string;
  network: string;
  ifName: string;
  netns: string;
  ips: ResultIp[];
  interfaces: ResultInterface[];
  mac?: string;
  portMappings: PortMapping[];
  /** False when ADD never finished (a crash): detach will still clean it up. */
  complete: boolean;
  /** The plugins' own result, for `inspect`. */
  result: CniResult | null;
}

const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

function containerDir(store: NetworkStore, containerId: string): string {
  if (!CONTAINER_ID.test(containerId)) throw new InvalidArgumentError(`CNI container id ${JSON.stringify(containerId)} must match ${CONTAINER_ID.source}`);
  return join(store.attachmentsDir, containerId);
}

function readRecords(store: NetworkStore, containerId: string): AttachmentRecord[] {
  const dir = containerDir(store, containerId);
  let files: string[];
  try {
    files = fs.readdirSync(dir).filter((f) => f.endsWith(".json"));
  } catch {
    return [];
  }
  const records: AttachmentRecord[] = [];
  for (const f of files) {
    try {
      records.push(JSON.parse(fs.readFileSync(join(dir, f), "utf8")) as AttachmentRecord);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") continue; // a detach finished meanwhile
      throw new FailedPreconditionError(`attachment record ${join(dir, f)} is damaged: ${(err as Error).message}`);
    }
  }
  return records.sort((a, b) => a.ifName.localeCompare(b.ifName, undefined, { numeric: true }));
}

function writeRecord(path: string, record: AttachmentRecord, exclusive: boolean): void {
  const text = `${JSON.stringify(record)}\n`;
  if (exclusive) {
    try {
      fs.writeFileSync(path, text, { flag: "wx", mode: 0o600 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") throw new AlreadyExistsError(`container ${record.containerId} is already attached to network ${JSON.stringify(record.network)}`);
      throw err;
    }
    return;
  }
  const temp = `${path}.${process.pid}.tmp`;
  fs.writeFileSync(temp, text, { mode: 0o600 });
  fs.renameSync(temp, path);
}

function toAttachment(r: AttachmentRecord): Attachment {
  const summary = summarizeResult(r.result);
  const out: Attachment = {
    containerId: r.containerId, network: r.network, ifName: r.ifName, netns: r.netns,
    ips: summary.ips, interfaces: summary.interfaces, portMappings: r.portMappings, complete: r.result !== null, result: r.result,
  };
  if (summary.mac) out.mac = summary.mac;
  return out;
}

const runtimeOf = (r: AttachmentRecord, netns: string): RuntimeConf => ({
  containerId: r.containerId, netns, ifName: r.ifName, args: r.args, capabilityArgs: { portMappings: r.portMappings },
});

/**
 * The plugins one attach runs: the network's list, without `portmap` when the container publishes
 * no port (portmap then does nothing but cost an exec on ADD and on DEL).
 */
export function chainFor(list: BunkerConflist, portMappings: readonly PortMapping[]): BunkerConflist {
  if (portMappings.length > 0) return list;
  return { ...list, plugins: list.plugins.filter((p) => p.type !== "portmap") };
}

/** ADD: the container's netns joins `network`; the result is kept for DEL. Nothing stays behind when it fails. */
export async function attach(store: NetworkStore, req: AttachRequest): Promise<Attachment> {
  const dir = containerDir(store, req.containerId);
  if (!isNetnsPin(req.netns)) throw new FailedPreconditionError(`${req.netns} is not a network namespace (make it with createNetns first)`);
  const network = store.config(req.network);
  const config = chainFor(network, req.portMappings ?? []);
  // A missing plugin fails the attach before the network's host setup is made, too.
  for (const plugin of config.plugins) findPlugin(plugin.type, store.cni.cniPath);
  await store.ensureHostSetup(req.network, network);
  const existing = readRecords(store, req.containerId);
  const ifName = req.ifName ?? `eth${existing.length}`;
  const clash = existing.find((r) => r.ifName === ifName);
  if (clash && clash.network !== req.network) throw new AlreadyExistsError(`container ${req.containerId} already has ${ifName} on network ${JSON.stringify(clash.network)}`);
  const record: AttachmentRecord = {
    containerId: req.containerId, network: req.network, ifName, netns: req.netns, config,
    portMappings: [...(req.portMappings ?? [])], result: null,
  };
  if (req.args) record.args = req.args;
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, `${req.network}.json`);
  writeRecord(path, record, true);
  try {
    reservePorts(store.portsDir, req.containerId, record.portMappings, (holder) => !fs.existsSync(join(store.attachmentsDir, holder)));
  } catch (err) {
    fs.rmSync(path, { force: true });
    removeIfEmpty(dir);
    throw err;
  }
  let result: CniResult;
  try {
    result = await addNetworkList(config, runtimeOf(record, req.netns), store.cni);
  } catch (err) {
    // addNetworkList rolled back the plugins it ran; the record stays only if that rollback failed.
    if (!isRollbackIncomplete(err)) {
      releasePorts(store.portsDir, req.containerId, record.portMappings);
      fs.rmSync(path, { force: true });
      removeIfEmpty(dir);
    }
    throw err;
  }
  record.result = result;
  try {
    writeRecord(path, record, false);
  } catch (err) {
    await delNetworkList(config, runtimeOf(record, req.netns), result, store.cni).catch(() => undefined);
    throw err;
  }
  return toAttachment(record);
}

function removeIfEmpty(dir: string): void {
  try {
    fs.rmdirSync(dir);
  } catch {
    // not empty (another network's record) or already gone
  }
}

export interface DetachOptions {
  /** Only this network (default: all of the container's, last attached first). */
  network?: string;
  /** A netns pin to remove once every attachment is gone (e.g. one made for a container never attached). */
  netns?: string;
}

/** DEL with the kept results, then the records, the ports and the netns. Idempotent; a failed DEL keeps its record for the next try. */
export async function detach(store: NetworkStore, containerId: string, opts: DetachOptions = {}): Promise<void> {
  const dir = containerDir(store, containerId);
  const records = readRecords(store, containerId).filter((r) => opts.network === undefined || r.network === opts.network);
  const netnsPaths = new Set<string>(opts.netns ? [opts.netns] : []);
  if (opts.network === undefined) for (const r of records) netnsPaths.add(r.netns);
  if (opts.network === undefined && records.length > 0 && records.every(isBunkerChain)) {
    await detachAllBunkerChains(store, dir, records, netnsPaths);
    return;
  }
  let first: unknown;
  for (const r of records.reverse()) {
    try {
      await delNetworkList(r.config, runtimeOf(r, isNetnsPin(r.netns) ? r.netns : ""), r.result ?? undefined, store.cni);
    } catch (err) {
      first ??= err;
      continue;
    }
    dropRecord(store, dir, r);
  }
  removeIfEmpty(dir);
  if (first !== undefined) throw first;
  if (readRecords(store, containerId).length === 0) for (const pin of netnsPaths) removeNetns(pin);
}

function dropRecord(store: NetworkStore, dir: string, r: AttachmentRecord): void {
  releasePorts(store.portsDir, r.containerId, r.portMappings);
  fs.rmSync(join(dir, `${r.network}.json`), { force: true });
}

const BUNKER_PLUGINS = new Set(["bridge", "portmap"]);

/** A finished attach over a chain bunker wrote: DEL needs no netns, and the host veth is named in the result. */
function isBunkerChain(r: AttachmentRecord): boolean {
  return r.result !== null && r.config.bunkerHostRules === true && r.config.plugins.every((p) => BUNKER_PLUGINS.has(p.type));
}

/** The host end of the bridge plugin's veth pair: the result's interface that is neither in the sandbox nor the bridge. */
function hostVeths(r: AttachmentRecord): ResultInterface[] {
  const bridge = String(r.config.plugins.find((p) => p.type === "bridge")?.bridge ?? "");
  return summarizeResult(r.result).interfaces.filter((i) => !i.sandbox && i.name !== bridge);
}

/** How long the kernel gets to take a veth down with its netns before detach deletes it by name (typically ~7 ms). */
const NETNS_TEARDOWN_WAIT_MS = 100;

/**
 * True once `dev` is gone from this netns, false if it is still there after the wait. Deleting it
 * by name right away would only queue `ip` behind the kernel's own teardown (both take RTNL).
 */
async function linkGone(dev: string, procNet: string): Promise<boolean> {
  const deadline = performance.now() + NETNS_TEARDOWN_WAIT_MS;
  for (;;) {
    if (!linkExists(dev, procNet)) return true;
    if (performance.now() >= deadline) return false;
    await Bun.sleep(1);
  }
}

/** The short way (see the header): pins first, then every plugin's DEL at once with netns "", then any veth the kernel has not taken. */
async function detachAllBunkerChains(store: NetworkStore, dir: string, records: AttachmentRecord[], netnsPaths: Set<string>): Promise<void> {
  for (const pin of netnsPaths) removeNetns(pin);
  const outcomes = await Promise.allSettled(records.map(async (r) => {
    const rt = runtimeOf(r, "");
    const dels = await Promise.allSettled(r.config.plugins.map((p) => {
      const stdin = pluginStdin(r.config, p, rt, r.result ?? undefined);
      const ipam = p.type === "bridge" ? (p.ipam as { type?: unknown } | undefined)?.type : undefined;
      const onlyIpam = typeof ipam === "string" && p.ipMasq !== true && p.macspoofchk !== true;
      return execPlugin("DEL", stdin, rt, store.cni, onlyIpam ? ipam : p.type);
    }));
    const failed = dels.find((d) => d.status === "rejected");
    if (failed) throw failed.reason;
    for (const veth of hostVeths(r)) {
      // After a reboot a new veth may carry the old name: only the one with the kept MAC is ours.
      if (!(await linkGone(veth.name, store.procNet))) await deleteLinkWithMac(veth.name, veth.mac, store.hostTools);
    }
    dropRecord(store, dir, r);
  }));
  removeIfEmpty(dir);
  const failed = outcomes.find((o) => o.status === "rejected");
  if (failed) throw failed.reason;
}

/** What a container is attached to (for ps and inspect); complete: false marks an ADD a crash cut short. */
export function attachments(store: NetworkStore, containerId: string): Attachment[] {
  return readRecords(store, containerId).map(toAttachment);
}

/** Every CNI container id with a record (a daemon start's sweep: records of containers that are gone get detached). */
export function attachedContainers(store: NetworkStore): string[] {
  try {
    return fs.readdirSync(store.attachmentsDir).filter((c) => CONTAINER_ID.test(c)).sort();
  } catch {
    return [];
  }
}

/** CHECK with the kept result: the plugins confirm the attachment is still as ADD left it. */
export async function checkAttachment(store: NetworkStore, containerId: string, network: string): Promise<void> {
  const r = readRecords(store, containerId).find((x) => x.network === network);
  if (!r) throw new NotFoundError(`container ${containerId} is not attached to network ${JSON.stringify(network)}`);
  if (r.result === null) throw new FailedPreconditionError(`container ${containerId}'s attachment to ${JSON.stringify(network)} never finished`);
  await checkNetworkList(r.config, runtimeOf(r, r.netns), r.result, store.cni);
}
