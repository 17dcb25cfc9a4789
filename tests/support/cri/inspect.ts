// What the CRI tests read back from containerd and the host: a pod's or container's pid (from the
// verbose status "info" JSON that crictl inspect shows), the cgroup file a process's limits are in,
// a line in the CRI log file, and kubelet's removal of a pod (StopPodSandbox, then RemovePodSandbox).
import { readFileSync } from "node:fs";
import type { CriEnv } from "./containerd-cri.ts";
import { criLog, type Pod } from "./pods.ts";

function pidOf(what: string, infoJson: string | undefined): number {
  const info = JSON.parse(infoJson ?? "{}") as { pid?: number };
  if (!info.pid) throw new Error(`the verbose status of ${what} names no pid: ${infoJson}`);
  return info.pid;
}

/** The container's init pid, from ContainerStatus's verbose info. */
export async function containerPid(env: CriEnv, id: string): Promise<number> {
  const r = await env.client.runtime.containerStatus({ containerId: id, verbose: true });
  return pidOf(`container ${id}`, r.info.info);
}

/** The sandbox (pause) process's pid, from PodSandboxStatus's verbose info. */
export async function podPid(env: CriEnv, id: string): Promise<number> {
  const r = await env.client.runtime.podSandboxStatus({ podSandboxId: id, verbose: true });
  return pidOf(`pod ${id}`, r.info.info);
}

/** A file of the cgroup a process is in for a v1 controller (or the unified v2 hierarchy). */
export function cgroupFile(pid: number, controller: string, file: string): string {
  const lines = readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n");
  const v1 = lines.find((l) => l.split(":")[1]?.split(",").includes(controller));
  if (v1) return `/sys/fs/cgroup/${v1.split(":")[1]}${v1.split(":")[2]}/${file}`;
  return `/sys/fs/cgroup${lines.find((l) => l.startsWith("0::"))!.slice(3)}/${file}`;
}

/** Waits until the container's CRI log holds a line with exactly `text`. */
export async function waitForLog(pod: Pod, name: string, text: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!criLog(pod, name).some((l) => l.text === text)) {
    if (Date.now() > deadline) throw new Error(`${name} never logged ${JSON.stringify(text)}: ${JSON.stringify(criLog(pod, name))}`);
    await Bun.sleep(50);
  }
}

/** What kubelet does to delete a pod: stop it, then remove it. */
export async function removePod(env: CriEnv, id: string): Promise<void> {
  await env.client.runtime.stopPodSandbox({ podSandboxId: id }, { timeoutMs: 30_000 });
  await env.client.runtime.removePodSandbox({ podSandboxId: id }, { timeoutMs: 30_000 });
}
