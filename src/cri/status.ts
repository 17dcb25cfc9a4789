// Container and sandbox status helpers of containerd's CRI server: the status kept for a container
// (containerstore.Status), the defaults when a status is unknown, the resources of an OCI spec as
// CRI reports them, host networking, and the target check of a shared PID namespace.
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errdefs.ts";
import { criContainerStateToString } from "./helpers.ts";
import {
  ContainerState,
  NamespaceMode,
  type ContainerResources,
  type LinuxContainerResources,
  type OciInt,
  type OciSpec,
  type PodSandboxConfig,
  type WindowsContainerResources,
} from "./types.ts";

export const unknownExitCode = 255;
export const unknownExitReason = "Unknown";

/** containerstore.Status: what the CRI plugin checkpoints per container. Times are unix nanoseconds, 0 = not yet. */
export interface ContainerStoreStatus {
  pid: number;
  createdAt: bigint;
  startedAt: bigint;
  finishedAt: bigint;
  exitCode: number;
  reason: string;
  message: string;
  starting: boolean;
  removing: boolean;
  unknown: boolean;
  resources?: ContainerResources;
}

/** containerstore.Status.State: the CRI state implied by which timestamps are set. */
export function containerStatusState(s: ContainerStoreStatus): number {
  if (s.unknown) return ContainerState.CONTAINER_UNKNOWN;
  if (s.finishedAt !== 0n) return ContainerState.CONTAINER_EXITED;
  if (s.startedAt !== 0n) return ContainerState.CONTAINER_RUNNING;
  if (s.createdAt !== 0n) return ContainerState.CONTAINER_CREATED;
  return ContainerState.CONTAINER_UNKNOWN;
}

/** unknownContainerStatus: exit code 255, reason Unknown, flagged unknown. */
export function unknownContainerStatus(): ContainerStoreStatus {
  return {
    pid: 0,
    createdAt: 0n,
    startedAt: 0n,
    finishedAt: 0n,
    exitCode: unknownExitCode,
    reason: unknownExitReason,
    message: "",
    starting: false,
    removing: false,
    unknown: true,
  };
}

/** sandboxstore.State. */
export const SandboxState = { READY: 0, NOT_READY: 1, UNKNOWN: 2 } as const;
export type SandboxState = (typeof SandboxState)[keyof typeof SandboxState];
const sandboxStateNames = ["SANDBOX_READY", "SANDBOX_NOTREADY", "SANDBOX_UNKNOWN"] as const;
export const sandboxStateToString = (s: SandboxState): string => sandboxStateNames[s] ?? "invalid sandbox state value: " + String(s);

/** sandboxstore.Status (createdAt in unix nanoseconds, 0 = Go's zero time). */
export interface SandboxStoreStatus {
  pid: number;
  createdAt: bigint;
  state: SandboxState;
}

/** unknownSandboxStatus: state Unknown, everything else zero. */
export function unknownSandboxStatus(): SandboxStoreStatus {
  return { pid: 0, createdAt: 0n, state: SandboxState.UNKNOWN };
}

function integer(value: unknown, field: string): bigint {
  if (typeof value === "bigint") return value;
  if (typeof value === "number" && Number.isInteger(value)) return BigInt(value);
  throw new InvalidArgumentError(`OCI spec ${field} must be an integer, got ${String(value)}`);
}
/** Go's int64(x) of a spec integer: a uint64 beyond 2^63-1 wraps as Go's conversion does. */
const int64 = (value: OciInt, field: string): bigint => BigInt.asIntN(64, integer(value, field));
const uint64 = (value: OciInt, field: string): bigint => BigInt.asUintN(64, integer(value, field));

function emptyLinuxResources(): LinuxContainerResources {
  return {
    cpuPeriod: 0n,
    cpuQuota: 0n,
    cpuShares: 0n,
    memoryLimitInBytes: 0n,
    oomScoreAdj: 0n,
    cpusetCpus: "",
    cpusetMems: "",
    hugepageLimits: [],
    unified: {},
    memorySwapLimitInBytes: 0n,
  };
}

function emptyWindowsResources(): WindowsContainerResources {
  return { cpuShares: 0n, cpuCount: 0n, cpuMaximum: 0n, memoryLimitInBytes: 0n, rootfsSizeInBytes: 0n };
}

/**
 * copyResourcesToStatus: the status with `resources` replaced by the constraints of the spec, as the
 * CRI ContainerStatus reports them. Like containerd, rootfsSizeInBytes is left 0 (there is no
 * mapping back from the spec), and absent spec fields stay 0.
 */
export function copyResourcesToStatus(spec: OciSpec, status: ContainerStoreStatus): ContainerStoreStatus {
  const resources: ContainerResources = {};
  const out = { ...status, resources };
  if (spec.linux !== undefined && spec.linux !== null) {
    const linux = emptyLinuxResources();
    resources.linux = linux;
    const oom = spec.process?.oomScoreAdj;
    if (oom !== undefined && oom !== null) linux.oomScoreAdj = int64(oom, "process.oomScoreAdj");
    const r = spec.linux.resources;
    if (r === undefined || r === null) return out;
    if (r.cpu) {
      if (r.cpu.period != null) linux.cpuPeriod = int64(r.cpu.period, "linux.resources.cpu.period");
      if (r.cpu.quota != null) linux.cpuQuota = int64(r.cpu.quota, "linux.resources.cpu.quota");
      if (r.cpu.shares != null) linux.cpuShares = int64(r.cpu.shares, "linux.resources.cpu.shares");
      linux.cpusetCpus = r.cpu.cpus ?? "";
      linux.cpusetMems = r.cpu.mems ?? "";
    }
    if (r.memory) {
      if (r.memory.limit != null) linux.memoryLimitInBytes = int64(r.memory.limit, "linux.resources.memory.limit");
      if (r.memory.swap != null) linux.memorySwapLimitInBytes = int64(r.memory.swap, "linux.resources.memory.swap");
    }
    if (r.hugepageLimits) {
      linux.hugepageLimits = r.hugepageLimits.map((l, i) => ({
        pageSize: l.pageSize ?? "",
        limit: uint64(l.limit, `linux.resources.hugepageLimits[${i}].limit`),
      }));
    }
    if (r.unified) linux.unified = { ...r.unified };
  }
  if (spec.windows !== undefined && spec.windows !== null) {
    const windows = emptyWindowsResources();
    resources.windows = windows;
    const r = spec.windows.resources;
    if (r === undefined || r === null) return out;
    if (r.cpu) {
      if (r.cpu.shares != null) windows.cpuShares = int64(r.cpu.shares, "windows.resources.cpu.shares");
      if (r.cpu.count != null) windows.cpuCount = int64(r.cpu.count, "windows.resources.cpu.count");
      if (r.cpu.maximum != null) windows.cpuMaximum = int64(r.cpu.maximum, "windows.resources.cpu.maximum");
    }
    if (r.memory?.limit != null) windows.memoryLimitInBytes = int64(r.memory.limit, "windows.resources.memory.limit");
  }
  return out;
}

/**
 * hostNetwork: whether the pod asked for the host's network. Windows: only HostProcess pods;
 * macOS: always (no CNI there); elsewhere: the network namespace mode is NODE.
 */
export function hostNetwork(config: PodSandboxConfig, platform: NodeJS.Platform = process.platform): boolean {
  switch (platform) {
    case "win32":
      return config.windows?.securityContext?.hostProcess ?? false;
    case "darwin":
      return true;
    default:
      return (config.linux?.securityContext?.namespaceOptions?.network ?? NamespaceMode.POD) === NamespaceMode.NODE;
  }
}

/** What validateTargetContainer needs to know of a stored container. */
export interface TargetContainer {
  id: string;
  sandboxId: string;
  status: ContainerStoreStatus;
}

/**
 * validateTargetContainer: a container may join another's PID namespace (NamespaceMode TARGET)
 * only if that one exists (NotFound otherwise), is in the same sandbox and is running.
 */
export function validateTargetContainer(
  sandboxId: string,
  targetContainerId: string,
  lookup: (id: string) => TargetContainer | undefined,
): TargetContainer {
  const target = lookup(targetContainerId);
  if (target === undefined) throw new NotFoundError(`container "${targetContainerId}" does not exist: not found`);
  if (target.sandboxId !== sandboxId) {
    throw new InvalidArgumentError(
      `container "${targetContainerId}" (sandbox ${target.sandboxId}) does not belong to sandbox ${sandboxId}`,
    );
  }
  const state = containerStatusState(target.status);
  if (state !== ContainerState.CONTAINER_RUNNING) {
    throw new FailedPreconditionError(`container "${targetContainerId}" is not running - in state ${criContainerStateToString(state)}`);
  }
  return target;
}
