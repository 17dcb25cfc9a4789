// Kubernetes CRI (k8s.io/cri-api runtime/v1) message shapes used by the CRI helpers, as plain types.
// Field names are the proto's JSON names; int64/uint64 fields are bigint, as protobuf-es would make
// them, so that values such as a memory limit of 2^63-1 survive and a later switch to generated
// types changes no caller. Only the messages and fields the helpers read or write are spelled out.

export const ContainerState = {
  CONTAINER_CREATED: 0,
  CONTAINER_RUNNING: 1,
  CONTAINER_EXITED: 2,
  CONTAINER_UNKNOWN: 3,
} as const;
export type ContainerState = number;

export const NamespaceMode = { POD: 0, CONTAINER: 1, NODE: 2, TARGET: 3 } as const;
export type NamespaceMode = number;

export const PodSandboxState = { SANDBOX_READY: 0, SANDBOX_NOTREADY: 1 } as const;
export type PodSandboxState = number;

export const ContainerEventType = {
  CONTAINER_CREATED_EVENT: 0,
  CONTAINER_STARTED_EVENT: 1,
  CONTAINER_STOPPED_EVENT: 2,
  CONTAINER_DELETED_EVENT: 3,
} as const;
export type ContainerEventType = number;

export interface PodSandboxMetadata {
  name: string;
  uid: string;
  namespace: string;
  attempt: number; // uint32
}

export interface ContainerMetadata {
  name: string;
  attempt: number; // uint32
}

export interface NamespaceOption {
  network?: NamespaceMode;
  pid?: NamespaceMode;
  ipc?: NamespaceMode;
  targetId?: string;
}

export interface LinuxSandboxSecurityContext {
  namespaceOptions?: NamespaceOption;
  privileged?: boolean;
  readonlyRootfs?: boolean;
}

export interface LinuxPodSandboxConfig {
  cgroupParent?: string;
  securityContext?: LinuxSandboxSecurityContext;
  sysctls?: Record<string, string>;
}

export interface WindowsSandboxSecurityContext {
  runAsUsername?: string;
  credentialSpec?: string;
  hostProcess?: boolean;
}

export interface WindowsPodSandboxConfig {
  securityContext?: WindowsSandboxSecurityContext;
}

export interface PodSandboxConfig {
  metadata?: PodSandboxMetadata;
  hostname?: string;
  logDirectory?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  linux?: LinuxPodSandboxConfig;
  windows?: WindowsPodSandboxConfig;
}

export interface Mount {
  containerPath: string;
  hostPath: string;
  readonly?: boolean;
  selinuxRelabel?: boolean;
}

export interface HugepageLimit {
  pageSize: string;
  limit: bigint; // uint64
}

export interface LinuxContainerResources {
  cpuPeriod: bigint;
  cpuQuota: bigint;
  cpuShares: bigint;
  memoryLimitInBytes: bigint;
  oomScoreAdj: bigint;
  cpusetCpus: string;
  cpusetMems: string;
  hugepageLimits: HugepageLimit[];
  unified: Record<string, string>;
  memorySwapLimitInBytes: bigint;
}

export interface WindowsContainerResources {
  cpuShares: bigint;
  cpuCount: bigint;
  cpuMaximum: bigint;
  memoryLimitInBytes: bigint;
  rootfsSizeInBytes: bigint;
}

export interface ContainerResources {
  linux?: LinuxContainerResources;
  windows?: WindowsContainerResources;
}

export interface AuthConfig {
  username: string;
  password: string;
  auth: string;
  serverAddress: string;
  identityToken: string;
  registryToken: string;
}

/** Only the fields the helpers touch; a CRI server fills in the rest. */
export interface PodSandboxStatus {
  id: string;
  metadata?: PodSandboxMetadata;
  state: PodSandboxState;
  createdAt: bigint;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface ContainerStatus {
  id: string;
  metadata?: ContainerMetadata;
  state: ContainerState;
  createdAt: bigint;
  startedAt: bigint;
  finishedAt: bigint;
  exitCode: number;
  reason: string;
  message: string;
  resources?: ContainerResources;
}

export interface ContainerEventResponse {
  containerId: string;
  containerEventType: ContainerEventType;
  createdAt: bigint; // unix nanoseconds
  podSandboxStatus: PodSandboxStatus | null;
  containersStatuses: ContainerStatus[];
}

// --- OCI runtime-spec fields read by copyResourcesToStatus (JSON names of specs-go). Integers come
// from JSON.parse as numbers; bigint is accepted too for values beyond 2^53.
export type OciInt = number | bigint;

export interface OciLinuxCPU {
  shares?: OciInt; // uint64
  quota?: OciInt; // int64
  period?: OciInt; // uint64
  cpus?: string;
  mems?: string;
}

export interface OciLinuxMemory {
  limit?: OciInt; // int64
  swap?: OciInt; // int64
}

export interface OciLinuxHugepageLimit {
  pageSize: string;
  limit: OciInt; // uint64
}

export interface OciLinuxResources {
  cpu?: OciLinuxCPU;
  memory?: OciLinuxMemory;
  hugepageLimits?: OciLinuxHugepageLimit[];
  unified?: Record<string, string>;
}

export interface OciWindowsResources {
  memory?: { limit?: OciInt }; // uint64
  cpu?: { count?: OciInt; shares?: OciInt; maximum?: OciInt }; // uint64, uint16, uint16
  storage?: { iops?: OciInt; bps?: OciInt; sandboxSize?: OciInt };
}

export interface OciSpec {
  process?: { oomScoreAdj?: number };
  linux?: { resources?: OciLinuxResources };
  windows?: { resources?: OciWindowsResources };
}
