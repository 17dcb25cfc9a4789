// A container's network namespace, made before the container starts and pinned by a bind mount of
// its nsfs file, as `ip netns add` does (iproute2 ip/ipnetns.c): the pin dir is made a shared mount
// (bound onto itself first if it is no mount point) so that an unmount here also leaves mount
// namespaces cloned meanwhile, and the namespace dies when its last pin and process are gone.
// The namespace is made by util-linux's `unshare --net=PIN ip link set lo up`: unshare binds the
// nsfs file onto PIN before it execs its command, so `ip` runs inside the new namespace and brings
// `lo` up there — what a runtime must do for a netns it did not let runc make. bunker's own process
// never changes namespace (Bun has no setns and sys/ offers none). The standard `loopback` CNI
// plugin did the same job as a second exec after `unshare --net=PIN true`; that pair took ~17 ms,
// the one exec ~6 ms (bench/network.ts). Without iproute2's `ip` the plugin is still used.
import * as fs from "node:fs";
import { basename, dirname, join } from "node:path";
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, errorMessage } from "../errdefs.ts";
import { spawnTracked } from "../sys/children.ts";
import { isErrno } from "../sys/errors.ts";
import { MS, sys } from "../sys/index.ts";
import { execPlugin, type CniOptions } from "./cni.ts";

/** `<state>/networks/netns`: volatile, like the bundles (a reboot takes the namespaces with it). */
export function netnsDir(stateDir: string): string {
  return join(stateDir, "networks", "netns");
}

export function netnsPathFor(stateDir: string, cniContainerId: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(cniContainerId)) throw new InvalidArgumentError(`container id ${JSON.stringify(cniContainerId)} cannot name a netns pin`);
  return join(netnsDir(stateDir), cniContainerId);
}

/** True when `path` is a live namespace file (nsfs), not the empty file a stale pin leaves. */
export function isNetnsPin(path: string): boolean {
  try {
    return fs.statSync(path).dev === fs.statSync("/proc/self/ns/net").dev;
  } catch {
    return false;
  }
}

/** The optional "shared:N" field of the mountinfo line mounted exactly at `dir`, or null when none is. */
function mountPropagation(dir: string): "shared" | "other" | null {
  const escaped = dir.replace(/[\\ \t\n]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`);
  let found: "shared" | "other" | null = null;
  for (const line of fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const f = line.split(" ");
    if (f[4] !== escaped) continue;
    const optional = f.slice(6, f.indexOf("-"));
    found = optional.some((o) => o.startsWith("shared:")) ? "shared" : "other"; // the last one is on top
  }
  return found;
}

/** ip netns's `netns_add` preamble: the pin dir becomes a shared mount point of its own. */
function ensureSharedPinDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const state = mountPropagation(dir);
  if (state === "shared") return;
  if (state === null) sys().mount(dir, dir, "none", MS.BIND | MS.REC);
  sys().mount("none", dir, "", MS.SHARED | MS.REC);
}

export interface CreateNetnsOptions extends CniOptions {
  /** Bring `lo` up (default true), as every container expects. */
  loopback?: boolean;
  /** iproute2's `ip` (default: found in PATH and the sbin dirs); null forces the `loopback` plugin. */
  ip?: string | null;
}

/** Where util-linux's and iproute2's tools are, whatever PATH bunker was started with. */
const SBIN_PATH = `${process.env.PATH ?? ""}:/usr/sbin:/usr/bin:/sbin:/bin`;
let foundIp: string | null | undefined;
let foundUnshare: string | null | undefined;

/** Makes and pins a new network namespace at `pin`; on any failure nothing is left there. */
export async function createNetns(pin: string, opts: CreateNetnsOptions = {}): Promise<void> {
  ensureSharedPinDir(dirname(pin));
  if (isNetnsPin(pin)) throw new AlreadyExistsError(`network namespace ${pin} already exists`);
  removeNetns(pin); // a stale pin file (its mount gone) is taken over
  fs.writeFileSync(pin, "", { flag: "wx", mode: 0o444 });
  try {
    const loopback = opts.loopback !== false;
    const ip = opts.ip !== undefined ? opts.ip : (foundIp ??= Bun.which("ip", { PATH: SBIN_PATH }));
    const inside = loopback && ip ? [ip, "link", "set", "lo", "up"] : ["true"];
    const unshare = (foundUnshare ??= Bun.which("unshare", { PATH: SBIN_PATH }));
    if (!unshare) throw new FailedPreconditionError("a network namespace needs util-linux's unshare, which is not installed (or run with --net none)");
    const proc = spawnTracked([unshare, `--net=${pin}`, ...inside], { stdout: "ignore", stderr: "pipe", env: { ...process.env, PATH: SBIN_PATH } });
    const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    if (code !== 0 || !isNetnsPin(pin)) throw new FailedPreconditionError(`creating network namespace ${pin}: unshare: ${oneLine(stderr) || `exit status ${code}`}`);
    if (loopback && !ip) {
      await execPlugin("ADD", { cniVersion: "1.0.0", name: "bunker-loopback", type: "loopback" }, { containerId: basename(pin), netns: pin, ifName: "lo" }, opts);
    }
  } catch (err) {
    try {
      removeNetns(pin);
    } catch (cleanup) {
      throw new FailedPreconditionError(`${errorMessage(err)} (and removing ${pin} failed: ${errorMessage(cleanup)})`);
    }
    throw err;
  }
}

const oneLine = (s: string): string => s.replace(/\s*\n\s*/g, "; ").trim();

/** Unmounts and unlinks a pin; a pin that is gone, or was never mounted, is fine. */
export function removeNetns(pin: string): void {
  try {
    sys().unmountAll(pin);
  } catch (err) {
    if (!isErrno(err, "ENOENT", "EINVAL")) throw err;
  }
  try {
    fs.unlinkSync(pin);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}

/** Pins left in `dir` (for a daemon start's sweep and for tests): live ones and stale files alike. */
export function listNetnsPins(dir: string): string[] {
  try {
    return fs.readdirSync(dir).map((n) => join(dir, n));
  } catch {
    return [];
  }
}
