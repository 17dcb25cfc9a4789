// What a container is made of, kept beside its record (<root>/containers/<ns>/<id>/config.json) so
// that it can be made again: by `start` of a stopped container, by its restart policy after it
// exits, and by the daemon's start after a reboot wiped --state (the bundle, the runc state, the
// netns and the shim are all volatile; the writable layer, the network's leases and this are not).
// docker keeps the same split (config.v2.json + hostconfig.json under /var/lib/docker/containers).
// Written once at create; the changing part (restart count, the last exit, whether a user stopped
// it) is state.json, rewritten on each change, so a torn write there can never lose the config.
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ImageSource, NetworkRequest } from "./record.ts";
import type { RestartPolicy } from "./restart-policy.ts";

export const CONFIG_FILE = "config.json";
export const STATE_FILE = "state.json";

/** The create request, minus what only lives as long as one attach (FIFO stdio). */
export interface ContainerConfig {
  runtime: string;
  /** The OCI spec as the client sent it (before the network joined it: a new netns each time). */
  spec: string;
  /** The rootfs mounts of a container over a host directory (empty for one from an image). */
  rootfs: { type: string; source: string; target?: string; options: string[] }[];
  image?: ImageSource;
  network?: NetworkRequest;
  /** Output that outlives an attach: file://, binary:// (FIFOs of an attached client are dropped). */
  stdout: string;
  stderr: string;
  terminal: boolean;
  /** The runtime options Any, base64 of its binary form. */
  options?: string;
  labels: Record<string, string>;
  /** docker's --log-driver/--log-opt and an explicit --log path, planned again at each run (runtime/container-log.ts). */
  log?: { driver: string; options: Record<string, string>; path?: string };
  stopSignal?: string;
  stopTimeout?: number;
  restart: RestartPolicy;
}

/** What changes over a container's life and must survive the daemon and a reboot. */
export interface ContainerState {
  /** Times a restart policy (not a user) started it again since its create (docker's RestartCount). */
  restartCount: number;
  /** A user stopped or killed it: `always` waits for the next daemon start, `unless-stopped` for a start. */
  manuallyStopped: boolean;
  startedAt?: string;
  /** The last exit seen (255 when bunker never saw one, as after a reboot). */
  lastExit?: { status: number; at: string };
  /** What the last run held (task, network, bundle) is released: set when a reboot's leftovers are settled, cleared by a run. */
  settled?: boolean;
}

export function writeConfig(dir: string, config: ContainerConfig): void {
  writeFileSync(join(dir, CONFIG_FILE), JSON.stringify(config), { mode: 0o600 });
}

export function readConfig(dir: string): ContainerConfig | undefined {
  try {
    const c = JSON.parse(readFileSync(join(dir, CONFIG_FILE), "utf8")) as ContainerConfig;
    return typeof c.runtime === "string" && typeof c.spec === "string" && typeof c.restart?.name === "string" ? c : undefined;
  } catch {
    return undefined;
  }
}

export function readState(dir: string): ContainerState {
  return parseState(readStateText(dir));
}

function readStateText(dir: string): string | undefined {
  try {
    return readFileSync(join(dir, STATE_FILE), "utf8");
  } catch {
    return undefined;
  }
}

function parseState(text: string | undefined): ContainerState {
  try {
    const s = JSON.parse(text ?? "") as Partial<ContainerState>;
    const out: ContainerState = { restartCount: typeof s.restartCount === "number" ? s.restartCount : 0, manuallyStopped: s.manuallyStopped === true };
    if (typeof s.startedAt === "string") out.startedAt = s.startedAt;
    if (s.settled === true) out.settled = true;
    if (typeof s.lastExit?.status === "number" && typeof s.lastExit.at === "string") out.lastExit = { status: s.lastExit.status, at: s.lastExit.at };
    return out;
  } catch {
    return { restartCount: 0, manuallyStopped: false };
  }
}

/**
 * Read, change, write (through a rename: a torn write leaves the old state, not none). A change
 * that leaves the file's text as it is writes nothing: a restart policy's loop records the same
 * exit twice (the TaskExit event, then the task's delete), and each write under --root is a new
 * inode on the host's disk.
 */
export function updateState(dir: string, change: (s: ContainerState) => void): ContainerState {
  const before = readStateText(dir);
  const s = parseState(before);
  change(s);
  const text = JSON.stringify(s);
  if (text === before) return s;
  const tmp = join(dir, `.${STATE_FILE}.${process.pid}`);
  try {
    writeFileSync(tmp, text, { mode: 0o600 });
    renameSync(tmp, join(dir, STATE_FILE));
  } catch {
    // the record is gone (removed meanwhile): nothing to keep
  }
  return s;
}
