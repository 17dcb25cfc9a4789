// Pods and containers made the way kubelet makes them (RunPodSandbox with a PodSandboxConfig, then
// CreateContainer with the same config beside the container's, then StartContainer), with what
// the CRI tests need to find afterwards: the pod's log directory, its cgroup parent, its shim.
// Host-network pods set no hostname: kubelet leaves it out too, and runc refuses one without a
// private UTS namespace.
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  ContainerState,
  NamespaceMode,
  type ContainerStatus,
  type LinuxContainerResourcesSchema,
  type PodSandboxConfigSchema,
} from "../../../src/gen/k8s/cri/v1/api_pb.ts";
import { BUSYBOX_IMAGE, type CriEnv, type Handler } from "./containerd-cri.ts";
import { allProcs, cmdline, descendants, type ProcInfo } from "../procs.ts";

export type PodConfig = MessageInitShape<typeof PodSandboxConfigSchema>;

export interface Pod {
  id: string;
  name: string;
  config: PodConfig;
  logDir: string;
  cgroupParent: string;
}

export interface PodOptions {
  /** RuntimeClass handler; "" (the default) is containerd's default_runtime_name. */
  handler?: Handler | "";
  /** Pod networking through the env's CNI config instead of the host's network. */
  podNetwork?: boolean;
}

/** RunPodSandbox for a fresh pod (unique name and uid); the caller removes it, or CriEnv.stop() does. */
export async function runPod(env: CriEnv, label: string, opts: PodOptions = {}): Promise<Pod> {
  const suffix = randomBytes(3).toString("hex");
  const name = `${label}-${suffix}`;
  const logDir = join(env.logRoot, name);
  mkdirSync(logDir, { recursive: true });
  const cgroupParent = `${env.cgroupRoot}/${name}`;
  const config: PodConfig = {
    metadata: { name, uid: `uid-${suffix}`, namespace: "bunker-test", attempt: 0 },
    logDirectory: logDir,
    labels: { "bunker.test/pod": name },
    linux: {
      cgroupParent,
      securityContext: { namespaceOptions: { network: opts.podNetwork ? NamespaceMode.POD : NamespaceMode.NODE, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD } },
    },
  };
  if (opts.podNetwork) config.hostname = name;
  const { podSandboxId } = await env.client.runtime.runPodSandbox({ config, runtimeHandler: opts.handler ?? "" }, { timeoutMs: 60_000 });
  return { id: podSandboxId, name, config, logDir, cgroupParent };
}

export interface ContainerOptions {
  /** Linux resources (memory limit for OOM cases). */
  resources?: MessageInitShape<typeof LinuxContainerResourcesSchema>;
  tty?: boolean;
  stdin?: boolean;
  /** ContainerMetadata.attempt: kubelet counts a container's restarts in it. */
  attempt?: number;
}

/** CreateContainer + StartContainer of a busybox container running `sh -c script`; returns its id. */
export async function startContainer(env: CriEnv, pod: Pod, name: string, script: string, opts: ContainerOptions = {}): Promise<string> {
  const id = await createContainer(env, pod, name, script, opts);
  await env.client.runtime.startContainer({ containerId: id }, { timeoutMs: 60_000 });
  return id;
}

export async function createContainer(env: CriEnv, pod: Pod, name: string, script: string, opts: ContainerOptions = {}): Promise<string> {
  const { containerId } = await env.client.runtime.createContainer(
    {
      podSandboxId: pod.id,
      sandboxConfig: pod.config,
      config: {
        metadata: { name, attempt: opts.attempt ?? 0 },
        image: { image: BUSYBOX_IMAGE },
        command: ["sh", "-c", script],
        logPath: `${name}_${opts.attempt ?? 0}.log`,
        tty: opts.tty ?? false,
        stdin: opts.stdin ?? false,
        labels: { "bunker.test/container": name },
        linux: { resources: opts.resources ?? {} },
      },
    },
    { timeoutMs: 60_000 },
  );
  return containerId;
}

/** The container's CRI log (`<RFC3339Nano> <stream> <P|F> <text>` per line), parsed. */
export function criLog(pod: Pod, name: string, attempt = 0): Array<{ time: string; stream: string; tag: string; text: string }> {
  let raw: string;
  try {
    raw = readFileSync(join(pod.logDir, `${name}_${attempt}.log`), "utf8");
  } catch {
    return [];
  }
  return raw
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [time = "", stream = "", tag = "", ...rest] = line.split(" ");
      return { time, stream, tag, text: rest.join(" ") };
    });
}

/** Polls ContainerStatus until the container has exited; returns that status. */
export async function waitExited(env: CriEnv, id: string, timeoutMs = 30_000): Promise<ContainerStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { status } = await env.client.runtime.containerStatus({ containerId: id });
    if (status?.state === ContainerState.CONTAINER_EXITED) return status;
    if (Date.now() > deadline) throw new Error(`container ${id} still ${ContainerState[status?.state ?? ContainerState.CONTAINER_UNKNOWN]} after ${timeoutMs} ms`);
    await Bun.sleep(100);
  }
}

/**
 * The shim serve processes of this environment's containerd, found by pid tree and argv: processes
 * whose argv names this containerd's private socket as `-address` and is no `start`/`delete` action.
 * Both shims daemonize (reparented away from containerd), so the socket address, unique to the test's
 * containerd, is what ties a shim to it.
 */
export function shimProcesses(env: CriEnv, handler: Handler): ProcInfo[] {
  const binary = handler === "runc" ? "containerd-shim-runc-v2" : "containerd-shim-bunker-v1";
  return allProcs().filter((p) => {
    const argv = cmdline(p.pid).split(" ");
    const i = argv.indexOf("-address");
    if (i < 0 || argv[i + 1] !== env.ctd.address) return false;
    if (argv.includes("start") || argv.includes("delete")) return false;
    return argv[0]?.endsWith(binary) === true || argv.some((a) => a.endsWith(`/${binary}`) || a === binary);
  });
}

/** The processes running under a shim (the pod's sandbox and container processes). */
export function shimChildren(shim: ProcInfo): ProcInfo[] {
  return descendants([shim.pid], allProcs());
}

/** The shim process whose descendants include `pid` (the shim a container runs under). */
export function shimOf(env: CriEnv, handler: Handler, pid: number): ProcInfo | undefined {
  return shimProcesses(env, handler).find((s) => shimChildren(s).some((c) => c.pid === pid));
}
