// bunker's container networking over the standard CNI plugins (issue #17): the exec protocol
// (cni.ts), pinned network namespaces (netns.ts), named networks as conflists (networks.ts),
// attach/detach with the ADD result kept for DEL (attach.ts), each network's masquerade/forward
// rules and bridge made once (host-rules.ts), published ports (ports.ts) and the generated /etc
// files (etc-files.ts). The CLI and the container record import from here.
export { addNetworkList, checkNetworkList, delNetworkList, execPlugin, findPlugin, isRollbackIncomplete, pluginVersions, validateRuntimeConf, DEFAULT_CNI_PATH, DEFAULT_PLUGIN_TIMEOUT_MS } from "./cni.ts";
export type { CniCommand, CniOptions, CniResult, NetworkConfigList, PluginConfig, PluginExecEvent, RuntimeConf } from "./cni.ts";
export { createNetns, isNetnsPin, listNetnsPins, netnsDir, netnsPathFor, removeNetns, type CreateNetnsOptions } from "./netns.ts";
export { NetworkStore, DEFAULT_NETWORK, DEFAULT_BRIDGE, DEFAULT_SUBNET, RESERVED_NETWORK_NAMES, validateNetworkName, bridgeConflist } from "./networks.ts";
export type { BunkerConflist, CreateNetworkOptions, NetworkInfo, NetworkStoreOptions } from "./networks.ts";
export { networkHostRules, type HostRule, type HostTools } from "./host-rules.ts";
export { attach, attachedContainers, attachments, chainFor, checkAttachment, detach } from "./attach.ts";
export type { Attachment, AttachRequest, DetachOptions } from "./attach.ts";
export { parsePublish, type PortMapping } from "./ports.ts";
export { defaultHostname, hostResolvConf, hostsFile, parseAddHost, resolvConf, validateHostname, writeEtcFiles } from "./etc-files.ts";
export type { DnsOverrides, EtcFiles, EtcFilesOptions, ExtraHost } from "./etc-files.ts";
export { summarizeResult, type ResultIp, type ResultSummary } from "./result.ts";
