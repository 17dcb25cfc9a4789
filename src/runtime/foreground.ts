// Foreground containers: `bunker run --rm` with no daemon and the default runtime runs the
// container the way `runc run` does, with the CLI process as its only supervisor and no shim, so
// that a one-off container costs one runc call instead of two Bun processes and three runc calls.
// Its bundle (<state>/<ns>/<id>) still reserves the id and carries a `foreground` record naming
// the CLI that owns it, so every other bunker (an embedded ps, kill or rm, a daemon starting up)
// can list and signal it, must leave it alone while that CLI lives, and cleans it up once it died.
//
// This module stays light (no protobuf, no pino, no FFI): the CLI's fast path imports it.
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { processStartTime } from "../proc.ts";
import { listBundleIds } from "./bundle.ts";
import { managerRuncRoot } from "./paths.ts";
import { INIT_PID_FILE } from "../contract/bundle.ts";

export const FOREGROUND_FILE = "foreground";
/** The container's init pid, written by `runc run --pid-file`. */
export const FOREGROUND_PID_FILE = INIT_PID_FILE;
/** What `bunker ps` shows as the runtime of a foreground container. */
export const FOREGROUND_RUNTIME = "runc";

export interface ForegroundRecord {
  /** The bunker CLI process that runs the container and removes the bundle when it ends. */
  owner: number;
  /** The owner's start time (field 22 of /proc/PID/stat): a recycled pid is not the owner. */
  ownerStart: string;
  /** runc's binary and --root, so anyone can signal or force-delete the container. */
  runc: string;
  runcRoot: string;
}

/** runc's state root for a namespace: the manager's, under this bunker's state dir (runc-root.ts). */
export function foregroundRuncRoot(state: string, namespace: string): string {
  return join(managerRuncRoot(state), namespace);
}

/**
 * Written first, and whole (a rename): a daemon loading its tasks at that moment must see either
 * no file or the whole record, never a torn one that would make the bundle look like a shim's.
 */
export function writeForeground(bundlePath: string, rec: ForegroundRecord): void {
  const tmp = join(bundlePath, `.${FOREGROUND_FILE}`);
  writeFileSync(tmp, JSON.stringify(rec), { mode: 0o600 });
  renameSync(tmp, join(bundlePath, FOREGROUND_FILE));
}

/** The record of a foreground bundle; undefined for a shim's bundle (or an unreadable record). */
export function readForeground(bundlePath: string): ForegroundRecord | undefined {
  let text: string;
  try {
    text = readFileSync(join(bundlePath, FOREGROUND_FILE), "utf8");
  } catch {
    return undefined;
  }
  try {
    const r = JSON.parse(text) as Partial<ForegroundRecord>;
    if (typeof r.owner !== "number" || typeof r.ownerStart !== "string" || typeof r.runc !== "string" || typeof r.runcRoot !== "string") return undefined;
    return { owner: r.owner, ownerStart: r.ownerStart, runc: r.runc, runcRoot: r.runcRoot };
  } catch {
    return undefined;
  }
}

/** Whether the CLI that owns the bundle still runs (same pid and start time). */
export function ownerAlive(rec: ForegroundRecord): boolean {
  return processStartTime(rec.owner) === rec.ownerStart;
}

/** The container's init pid once runc wrote it, else 0. */
export function foregroundPid(bundlePath: string): number {
  try {
    const pid = Number.parseInt(readFileSync(join(bundlePath, FOREGROUND_PID_FILE), "utf8").trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : 0;
  } catch {
    return 0;
  }
}

async function runc(rec: ForegroundRecord, args: string[]): Promise<void> {
  const p = Bun.spawn([rec.runc, "--root", rec.runcRoot, ...args], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
  if (code !== 0) throw new Error(`runc ${args[0]} failed (exit ${code}): ${err.trim().split("\n").pop() ?? ""}`);
}

/** Signals the container through runc (`all`: every process in it, as runc kill --all). */
export function killForeground(rec: ForegroundRecord, id: string, signal: number, all: boolean): Promise<void> {
  return runc(rec, ["kill", ...(all ? ["--all"] : []), id, String(signal)]);
}

/**
 * The task step of a foreground container's teardown: kill what is left of it and remove runc's
 * state. A container runc never made (or already deleted) is not an error; with no state left (runc
 * run removes it when the container ends) nothing is run at all.
 */
export async function releaseForegroundTask(rec: ForegroundRecord, id: string): Promise<void> {
  if (!existsSync(join(rec.runcRoot, id))) return;
  try {
    await runc(rec, ["delete", "--force", id]);
  } catch (err) {
    if (!/does not exist|not exist/.test(String(err))) throw err;
  }
}

/** A foreground container whose owning CLI still runs. */
export interface LiveForeground {
  namespace: string;
  id: string;
  bundlePath: string;
  record: ForegroundRecord;
  /** The container's init pid, 0 while runc has not written it yet. */
  pid: number;
}

/** The live foreground container of a bundle, or undefined (a shim's bundle, or its owner is gone). */
export function liveForeground(state: string, namespace: string, id: string): LiveForeground | undefined {
  const bundlePath = join(state, namespace, id);
  const record = readForeground(bundlePath);
  if (!record || !ownerAlive(record)) return undefined;
  return { namespace, id, bundlePath, record, pid: foregroundPid(bundlePath) };
}

/** The live foreground containers of some namespaces, leaving out ids `skip` says are a shim's. */
export function listLiveForeground(state: string, namespaces: string[], skip: (ns: string, id: string) => boolean): LiveForeground[] {
  return namespaces.flatMap((ns) => listBundleIds(state, ns).flatMap((id) => (skip(ns, id) ? [] : (liveForeground(state, ns, id) ?? []))));
}


/** Why a foreground container cannot take a shim's requests (start, wait, exec). */
export function foregroundRefusal(f: LiveForeground): string {
  return `task ${f.namespace}/${f.id} runs in the foreground of bunker pid ${f.record.owner} (run --rm without a daemon): only ps, kill and rm -f reach it`;
}
