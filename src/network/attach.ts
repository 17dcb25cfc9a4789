// Attaching a container's netns to a network and detaching it again, with the ADD result kept on
// disk so DEL can run later — from another process, after a crash or after a reboot — as libcni's
// result cache (`/var/lib/cni/results`) lets containerd's CRI do. The record
// `<root>/networks/attachments/<cni container id>/<network>.json` holds the conflist as it was at
// ADD (a network removed or recreated later does not change what DEL gets), the interface, the
// netns, the port mappings and the result.
//
// Order makes it crash-safe: the record is written (result: null) before the first plugin runs and
// before host ports are reserved, so whatever a SIGKILL interrupts, a record exists that makes
// detach run DEL (plugins treat DEL of what they never made as success) and release the ports. A
// record goes only after its DEL succeeded; the netns goes after all of a container's records.
// A netns that is gone (reboot) is passed to DEL as "" so plugins still free leases and rules.
import * as fs from "node:fs";
import { join } from "node:path";
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errdefs.ts";
import { addNetworkList, checkNetworkList, delNetworkList, isRollbackIncomplete, type CniResult, type NetworkConfigList, type RuntimeConf } from "./cni.ts";
import { isNetnsPin, removeNetns } from "./netns.ts";
import type { NetworkStore } from "./networks.ts";
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
  config: NetworkConfigList;
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

/** ADD: the container's netns joins `network`; the result is kept for DEL. Nothing stays behind when it fails. */
export async function attach(store: NetworkStore, req: AttachRequest): Promise<Attachment> {
  const dir = containerDir(store, req.containerId);
  if (!isNetnsPin(req.netns)) throw new FailedPreconditionError(`${req.netns} is not a network namespace (make it with createNetns first)`);
  const config = store.config(req.network);
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
  let first: unknown;
  for (const r of records.reverse()) {
    if (opts.network === undefined) netnsPaths.add(r.netns);
    try {
      await delNetworkList(r.config, runtimeOf(r, isNetnsPin(r.netns) ? r.netns : ""), r.result ?? undefined, store.cni);
    } catch (err) {
      first ??= err;
      continue;
    }
    releasePorts(store.portsDir, containerId, r.portMappings);
    fs.rmSync(join(dir, `${r.network}.json`), { force: true });
  }
  removeIfEmpty(dir);
  if (first !== undefined) throw first;
  if (readRecords(store, containerId).length === 0) for (const pin of netnsPaths) removeNetns(pin);
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
