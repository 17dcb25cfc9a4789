// A container's network, as the task manager and the foreground run hold it through the container
// record (containers/record.ts ContainerNetworks): `--net bridge|NAME` gets a pinned network
// namespace attached over CNI, `host` the host's own, `none` an empty one runc makes (only `lo`),
// `container:ID` another container's; and docker's generated /etc/hosts, /etc/hostname and
// /etc/resolv.conf, bind-mounted over the image's. What a setup made is named by the container
// (namespace, id) alone, so release needs nothing but those two, after a crash or a reboot too: the
// attachment records (with the ADD result for DEL) live under --root, the netns pin and the /etc
// files under --state.
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { hostname as osHostname } from "node:os";
import { join } from "node:path";
import { errorMessage, FailedPreconditionError, InvalidArgumentError } from "../errdefs.ts";
import type { ContainerNetworks, NetworkRequest, NetworkSetup } from "../containers/record.ts";
import { attach, attachments, detach } from "./attach.ts";
import { type CniOptions } from "./cni.ts";
import { defaultHostname, parseAddHost, validateHostname, writeEtcFiles } from "./etc-files.ts";
import { createNetns, netnsPathFor, removeNetns } from "./netns.ts";
import { DEFAULT_NETWORK, NetworkStore, validateNetworkName } from "./networks.ts";
import { parsePublish, type PortMapping } from "./ports.ts";

export interface ContainerNetworkOptions extends CniOptions {
  root: string;
  state: string;
}

/** CNI_CONTAINERID: unique across namespaces whatever characters ids and namespaces use. */
export function cniContainerId(namespace: string, id: string): string {
  return `bunker-${createHash("sha256").update(`${namespace}\0${id}`).digest("hex").slice(0, 32)}`;
}

export type NetworkMode = { kind: "none" } | { kind: "host" } | { kind: "container"; id: string } | { kind: "network"; name: string };

/** `--net` as docker reads it; a network name is checked like `network create` does. */
export function parseNetworkMode(mode: string): NetworkMode {
  if (mode === "" || mode === "default") return { kind: "network", name: DEFAULT_NETWORK };
  if (mode === "none" || mode === "host") return { kind: mode };
  if (mode.startsWith("container:")) {
    const id = mode.slice("container:".length);
    if (id === "") throw new InvalidArgumentError("--net container: needs a container id");
    return { kind: "container", id };
  }
  if (mode === DEFAULT_NETWORK) return { kind: "network", name: mode };
  return { kind: "network", name: validateNetworkName(mode) };
}

export class ContainerNetworkProvider implements ContainerNetworks {
  readonly store: NetworkStore;

  constructor(private readonly o: ContainerNetworkOptions) {
    const cni: CniOptions = {};
    if (o.cniPath !== undefined) cni.cniPath = o.cniPath;
    if (o.timeoutMs !== undefined) cni.timeoutMs = o.timeoutMs;
    this.store = new NetworkStore(o.root, cni);
  }

  /** Where a container's generated /etc files are (another container joining its network reads them). */
  filesDir(namespace: string, id: string): string {
    return join(this.o.state, "networks", "containers", namespace, id);
  }

  private pin(namespace: string, id: string): string {
    return netnsPathFor(this.o.state, cniContainerId(namespace, id));
  }

  async setup(namespace: string, id: string, req: NetworkRequest, join?: { pid: number; namespace: string; id: string }): Promise<NetworkSetup> {
    const mode = parseNetworkMode(req.mode);
    const publish: PortMapping[] = (req.publish ?? []).map(parsePublish);
    if (publish.length > 0 && mode.kind !== "network") throw new InvalidArgumentError(`-p needs a network (--net bridge or a network's name), not --net ${req.mode}`);
    if (req.hostname !== undefined) validateHostname(req.hostname);
    switch (mode.kind) {
      case "none":
        return { ...(req.hostname ? { hostname: req.hostname } : {}), summary: { network: "none", ips: [], ports: [] } };
      case "host":
        // the host's own files, as docker does for --net host
        return {
          hostNetwork: true,
          hostname: req.hostname ?? osHostname(),
          files: ["/etc/hosts", "/etc/resolv.conf"].filter((f) => fs.existsSync(f)).map((f) => ({ destination: f, source: f })),
          summary: { network: "host", ips: [], ports: [] },
        };
      case "container": {
        if (!join || join.pid <= 0) throw new FailedPreconditionError(`--net container:${mode.id}: that container is not running`);
        const dir = this.filesDir(join.namespace, join.id);
        const files = ["hosts", "hostname", "resolv.conf"].filter((f) => fs.existsSync(`${dir}/${f}`)).map((f) => ({ destination: `/etc/${f}`, source: `${dir}/${f}` }));
        const netnsPath = `/proc/${join.pid}/ns/net`;
        if (!fs.existsSync(netnsPath)) throw new FailedPreconditionError(`--net container:${mode.id}: its process ${join.pid} is gone`);
        return { netnsPath, files, summary: { network: `container:${mode.id}`, ips: [], ports: [] } };
      }
      case "network":
        return await this.attachTo(namespace, id, mode.name, publish, req);
    }
  }

  private async attachTo(namespace: string, id: string, network: string, publish: PortMapping[], req: NetworkRequest): Promise<NetworkSetup> {
    const pin = this.pin(namespace, id);
    try {
      await createNetns(pin, this.store.cni);
      const a = await attach(this.store, { containerId: cniContainerId(namespace, id), netns: pin, network, portMappings: publish });
      const ips = a.ips.map((ip) => ip.address.split("/")[0]!);
      const hostname = req.hostname ?? defaultHostname(id);
      const files = writeEtcFiles(this.filesDir(namespace, id), {
        hostname,
        ips,
        extraHosts: (req.addHosts ?? []).map((h) => parseAddHost(h, a.ips.find((ip) => ip.gateway)?.gateway)),
        dns: { ...(req.dns?.length ? { nameservers: req.dns } : {}), ...(req.dnsSearch?.length ? { search: req.dnsSearch } : {}) },
      });
      return {
        netnsPath: pin,
        hostname,
        files: [
          { destination: "/etc/hosts", source: files.hosts },
          { destination: "/etc/hostname", source: files.hostname },
          { destination: "/etc/resolv.conf", source: files.resolvConf },
        ],
        summary: { network, ips, ports: publish.map(formatPort) },
      };
    } catch (err) {
      // whatever part was made goes now; the caller's own teardown would do it too (release is idempotent)
      await this.release(namespace, id).catch((cleanup: unknown) => {
        throw new FailedPreconditionError(`${errorMessage(err)} (and cleaning up failed: ${errorMessage(cleanup)})`);
      });
      throw err;
    }
  }

  async release(namespace: string, id: string): Promise<void> {
    const cniId = cniContainerId(namespace, id);
    const pin = this.pin(namespace, id);
    if (attachments(this.store, cniId).length > 0) await detach(this.store, cniId, { netns: pin });
    removeNetns(pin);
    fs.rmSync(this.filesDir(namespace, id), { recursive: true, force: true });
  }
}

function formatPort(p: PortMapping): string {
  return `${p.hostIP ? `${p.hostIP}:` : ""}${p.hostPort}->${p.containerPort}/${p.protocol}`;
}
