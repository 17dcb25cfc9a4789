// bunker's own record of a task in its bundle (runtime name, labels, log path): not part of the
// shim protocol. Light on purpose: the CLI's foreground path writes it without loading the shim client.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Bundle } from "./bundle.ts";

/** bunker's own record of a task (runtime name, labels, log path): not part of the shim protocol. */
export const META_FILE = "bunker.json";

export interface TaskMeta {
  runtime: string;
  labels: Record<string, string>;
  logPath?: string;
  /** How the output at logPath is kept: json-file, file (raw), none (container-log.ts). */
  logDriver?: string;
  /** The image the container was made from (for ps). */
  image?: string;
  /** What `stop` sends first, and how many seconds it waits before SIGKILL. */
  stopSignal?: string;
  stopTimeout?: number;
  /** Its network, addresses and published ports (for ps and inspect). */
  network?: { network: string; ips: string[]; ports: string[] };
  created: string;
}

export function writeMeta(bundle: Pick<Bundle, "path">, meta: TaskMeta): void {
  writeFileSync(join(bundle.path, META_FILE), JSON.stringify(meta), { mode: 0o600 });
}

export function readMeta(bundle: Pick<Bundle, "path">): TaskMeta | undefined {
  try {
    const m = JSON.parse(readFileSync(join(bundle.path, META_FILE), "utf8")) as Partial<TaskMeta>;
    if (typeof m.runtime !== "string") return undefined;
    const meta: TaskMeta = { runtime: m.runtime, labels: m.labels ?? {}, created: m.created ?? "" };
    if (typeof m.logPath === "string") meta.logPath = m.logPath;
    if (typeof m.logDriver === "string") meta.logDriver = m.logDriver;
    if (typeof m.image === "string") meta.image = m.image;
    if (typeof m.stopSignal === "string") meta.stopSignal = m.stopSignal;
    if (typeof m.stopTimeout === "number") meta.stopTimeout = m.stopTimeout;
    if (m.network && typeof m.network.network === "string") meta.network = { network: m.network.network, ips: m.network.ips ?? [], ports: m.network.ports ?? [] };
    return meta;
  } catch {
    return undefined;
  }
}
