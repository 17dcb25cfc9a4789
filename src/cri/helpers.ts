// containerd's CRI server helpers (pkg/cri/server/helpers.go) that are pure functions: names,
// root and volatile directories, state names, labels and label filters, CRI mounts, auth config,
// and the pod annotations a runtime is allowed to see.
import pino, { type Logger } from "pino";
import { InvalidArgumentError } from "../errdefs.ts";
import { validateIdentifier } from "../identifiers.ts";
import { goQuote, pathClean, pathJoin, pathMatch, utf8Length } from "../gostd.ts";
import { ContainerState, type AuthConfig, type ContainerMetadata, type Mount, type PodSandboxMetadata } from "./types.ts";

export const errorStartReason = "StartError";
export const errorStartExitCode = 128; // what Docker reports for a container that failed to start
export const completeExitReason = "Completed";
export const errorExitReason = "Error";
export const oomExitReason = "OOMKilled";
export const sandboxesDir = "sandboxes";
export const containersDir = "containers";
export const nameDelimiter = "_";
export const criContainerdPrefix = "io.cri-containerd";
export const containerKindLabel = `${criContainerdPrefix}.kind`;
export const containerKindSandbox = "sandbox";
export const containerKindContainer = "container";
export const sandboxMetadataExtension = `${criContainerdPrefix}.sandbox.metadata`;
export const containerMetadataExtension = `${criContainerdPrefix}.container.metadata`;
export const defaultIfName = "eth0";
export const runtimeRunhcsV1 = "io.containerd.runhcs.v1";

let defaultLogger: Logger | undefined;
/** Where the helpers warn when no logger is passed: stderr, never stdout (a shim's start/delete reply goes there). */
export function criLogger(): Logger {
  defaultLogger ??= pino({ name: "cri" }, pino.destination({ dest: 2, sync: true }));
  return defaultLogger;
}

function attempt(value: number, what: string): string {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new InvalidArgumentError(`${what} attempt must be a uint32, got ${String(value)}`);
  }
  return String(value);
}

/** makeSandboxName: name_namespace_uid_attempt, unique while the sandbox metadata is. */
export function makeSandboxName(s: PodSandboxMetadata): string {
  return [s.name, s.namespace, s.uid, attempt(s.attempt, "sandbox")].join(nameDelimiter);
}

/** makeContainerName: container_pod_namespace_uid_attempt (the container's attempt, not the pod's). */
export function makeContainerName(c: ContainerMetadata, s: PodSandboxMetadata): string {
  return [c.name, s.name, s.namespace, s.uid, attempt(c.attempt, "container")].join(nameDelimiter);
}

export interface CriDirsConfig {
  /** Persistent root (containerd's CRI `RootDir`), e.g. /var/lib/bunker/cri. */
  rootDir: string;
  /** Volatile state (containerd's CRI `StateDir`), e.g. /run/bunker/cri. */
  stateDir: string;
}

// Ids are checked before they become path elements: Go's filepath.Join would resolve `..`.
const dir = (base: string, kind: string, id: string): string => pathJoin(base, kind, validateIdentifier(id, "id"));

/** getSandboxRootDir: persistent files of a sandbox (e.g. hosts files). */
export const getSandboxRootDir = (c: CriDirsConfig, id: string): string => dir(c.rootDir, sandboxesDir, id);
/** getVolatileSandboxRootDir: volatile files of a sandbox (e.g. named pipes). */
export const getVolatileSandboxRootDir = (c: CriDirsConfig, id: string): string => dir(c.stateDir, sandboxesDir, id);
/** getContainerRootDir: persistent files of a container (e.g. its state checkpoint). */
export const getContainerRootDir = (c: CriDirsConfig, id: string): string => dir(c.rootDir, containersDir, id);
/** getVolatileContainerRootDir: volatile files of a container (e.g. named pipes). */
export const getVolatileContainerRootDir = (c: CriDirsConfig, id: string): string => dir(c.stateDir, containersDir, id);

const containerStateNames = new Map<number, string>(Object.entries(ContainerState).map(([k, v]) => [v, k]));

/** criContainerStateToString: the proto enum name, "" for a value the enum does not define (Go's map miss). */
export function criContainerStateToString(state: number): string {
  return containerStateNames.get(state) ?? "";
}

/** isInCRIMounts: whether a CRI mount targets dst, comparing cleaned paths. */
export function isInCRIMounts(dst: string, mounts: readonly Mount[]): boolean {
  const want = pathClean(dst);
  return mounts.some((m) => pathClean(m.containerPath) === want);
}

/** filterLabel: a containerd filter on one label; both sides Go-quoted (%q), as containerd's filter syntax needs. */
export function filterLabel(k: string, v: string): string {
  return `labels.${goQuote(k)}==${goQuote(v)}`;
}

const MAX_LABEL_SIZE = 4096;

/** containerd's labels.Validate: key and value together at most 4096 bytes. */
export function validateLabel(k: string, v: string): void {
  if (utf8Length(k) + utf8Length(v) > MAX_LABEL_SIZE) {
    const shortKey = new TextDecoder().decode(new TextEncoder().encode(k).subarray(0, 10));
    throw new InvalidArgumentError(
      `label key and value greater than maximum size (${MAX_LABEL_SIZE} bytes), key: ${shortKey}: invalid argument`,
    );
  }
}

/**
 * buildLabels: image labels that pass validation (an invalid one is skipped with a warning, it must
 * not fail the container), then the CRI config's labels over them, then the container kind.
 */
export function buildLabels(
  configLabels: Readonly<Record<string, string>> | undefined,
  imageConfigLabels: Readonly<Record<string, string>> | undefined,
  containerType: string,
  log: Logger = criLogger(),
): Record<string, string> {
  const labels = new Map<string, string>();
  for (const [k, v] of Object.entries(imageConfigLabels ?? {})) {
    try {
      validateLabel(k, v);
      labels.set(k, v);
    } catch (err) {
      log.warn({ err, key: k }, `unable to add image label with key ${k} to the container`);
    }
  }
  for (const [k, v] of Object.entries(configLabels ?? {})) labels.set(k, v);
  labels.set(containerKindLabel, containerType);
  // fromEntries defines own properties, so a "__proto__" key stays a label.
  return Object.fromEntries(labels);
}

/** toRuntimeAuthConfig: a registry auth entry of the CRI config as the CRI AuthConfig message. */
export function toRuntimeAuthConfig(a: { username?: string; password?: string; auth?: string; identityToken?: string }): AuthConfig {
  return {
    username: a.username ?? "",
    password: a.password ?? "",
    auth: a.auth ?? "",
    serverAddress: "",
    identityToken: a.identityToken ?? "",
    registryToken: "",
  };
}

/**
 * getPassthroughAnnotations: the pod annotations whose key matches one of the runtime's patterns
 * (Go path.Match: `*` stops at `/`). A malformed pattern matches nothing, as in containerd.
 */
export function getPassthroughAnnotations(
  podAnnotations: Readonly<Record<string, string>> | undefined,
  runtimePodAnnotations: readonly string[] | undefined,
): Record<string, string> {
  const out = new Map<string, string>();
  for (const [key, value] of Object.entries(podAnnotations ?? {})) {
    for (const pattern of runtimePodAnnotations ?? []) {
      let ok = false;
      try {
        ok = pathMatch(pattern, key);
      } catch {
        ok = false;
      }
      if (ok) out.set(key, value);
    }
  }
  return Object.fromEntries(out);
}
