// The container record: one per container, under <root>/containers/<ns>/<id>/record.json (persistent:
// it survives a reboot, while the bundle under --state does not). It owns the container's teardown:
// an ordered list of release steps, each idempotent, each recorded once done. A teardown marks the
// record `removing` before releasing anything, so one cut short (a SIGKILL, a crash, a reboot) is
// found and finished by the next rm, ps or daemon start, and nothing of the container is left behind.
// The steps are the task, the bundle and, for a container made from an image, its writable layer
// (the snapshot), and the network when it has one. A detached container's log needs no step: it is
// written in this record's directory (runtime/container-log.ts), which goes last, with the record,
// once the task (and so the shim's writer) is gone. Light on purpose (node:fs only): the CLI's
// foreground path uses it.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RESERVED_NAMESPACES } from "../identifiers.ts";

export const CONTAINERS_DIR = "containers";
export const RECORD_FILE = "record.json";

/**
 * What a container holds, in the order it is released. The snapshot goes after the bundle: the
 * bundle's rootfs is where the snapshot is mounted, and the bundle step unmounts it.
 */
export type Step = "task" | "network" | "bundle" | "snapshot";
const STEPS: readonly Step[] = ["task", "network", "bundle", "snapshot"];
export const DEFAULT_STEPS: readonly Step[] = ["task", "bundle"];
export const IMAGE_STEPS: readonly Step[] = ["task", "bundle", "snapshot"];

/** The steps of a container: the task and the bundle always, its network and image layer when it has them. */
export function stepsFor(o: { network?: boolean; image?: boolean }): Step[] {
  return STEPS.filter((s) => (s === "network" ? o.network === true : s === "snapshot" ? o.image === true : true));
}

/** What a container was made from, when it was an image: for ps/inspect, and `rmi` refuses while one uses it. */
export interface ImageSource {
  /** The image's name as stored (docker.io/library/busybox:latest), or its digest. */
  image: string;
  /** The committed snapshot (chain ID) the container's writable layer sits on. */
  parent: string;
}

/**
 * A container's writable layer, provided by the image subsystem and held through the record: the
 * manager (which may not import it) prepares one at create and releases it in the snapshot step,
 * also after a crash (the key is the container's namespace and id).
 */
export interface ContainerLayers {
  /** Makes the layer over `parent`; returns the rootfs mounts (containerd's mount list) for the shim. */
  prepare(namespace: string, id: string, parent: string): Promise<{ type: string; source: string; options: string[] }[]>;
  /**
   * Makes the layer over `parent` and mounts it at target itself, in one pass (a caller with no shim
   * to mount the list: the foreground run; the mount list prepare() returns would go unused).
   */
  prepareMounted(namespace: string, id: string, parent: string, target: string, opts?: { volatile?: boolean }): Promise<void>;
  /**
   * Unmounts and removes it; idempotent (a missing layer is fine). `deferDelete`: out of sight at
   * return, its files deleted later by sweep() (a `run --rm` must not wait for a dozen deletes).
   */
  release(namespace: string, id: string, opts?: { deferDelete?: boolean }): Promise<void>;
  /** Deletes what deferred releases left, by any process; never throws (what stays is swept next time). */
  sweep?(): Promise<void>;
}

/** `--net` and its companions, as the CLI, the API and the executor pass them. */
export interface NetworkRequest {
  /** "bridge" (the default network), "none", "host", "container:<id>", or a network's name. */
  mode: string;
  /** `-p [IP:]HOST:CONTAINER[/proto]`. */
  publish?: string[];
  dns?: string[];
  dnsSearch?: string[];
  addHosts?: string[];
  hostname?: string;
}

/** How a container's spec takes its network (oci/spec.ts withNetwork applies it). */
export interface NetworkSetup {
  /** Join this network namespace (a pinned one, or another container's /proc/PID/ns/net). */
  netnsPath?: string;
  /** Use the host's network namespace (no network namespace of its own). */
  hostNetwork?: boolean;
  hostname?: string;
  /** Files bind-mounted over the container's: /etc/hosts, /etc/hostname, /etc/resolv.conf. */
  files?: { destination: string; source: string }[];
  /** What ps and inspect show. */
  summary?: { network: string; ips: string[]; ports: string[] };
}

/**
 * A container's network, provided by the network subsystem and held through the record like its
 * image layer: set up after the id is reserved and before the task exists, released in the network
 * step (after the task, so nothing runs in it), also after a crash or a reboot.
 */
export interface ContainerNetworks {
  /** `join`: for container:<id>, the other container's init pid (the manager looks it up). */
  setup(namespace: string, id: string, req: NetworkRequest, join?: { pid: number; namespace: string; id: string }): Promise<NetworkSetup>;
  /** Idempotent: a container with nothing attached is fine. */
  release(namespace: string, id: string): Promise<void>;
}

export interface ContainerRecord {
  namespace: string;
  id: string;
  created: string;
  steps: Step[];
  source?: ImageSource;
  /** Set before the first release: from then on the teardown must be finished. */
  removing: boolean;
  released: Step[];
}

/** Releases one step; must be idempotent (it may run again after a crash right after it). */
export type Release = (step: Step) => Promise<void>;

/** Test failpoint: BUNKER_TEST_KILL_AT=teardown:<step> (or teardown:record) SIGKILLs this process there. */
function failpoint(at: string): void {
  killAt(`teardown:${at}`);
}

/**
 * Test failpoints: BUNKER_TEST_KILL_AT=<where> SIGKILLs this process there (teardown:<step>, and
 * create:network, right after a create set up the container's network and before its task exists).
 */
export function killAt(where: string): void {
  if (process.env.BUNKER_TEST_KILL_AT === where) process.kill(process.pid, "SIGKILL");
}

export class ContainerStore {
  private readonly running = new Map<string, Promise<void>>();

  /** root: bunker's --root; records live in <root>/containers. */
  constructor(private readonly root: string) {}

  dir(namespace: string, id: string): string {
    return join(this.root, CONTAINERS_DIR, namespace, id);
  }

  /**
   * Writes a new record (replacing a stale one that never got a bundle). Written in place, not
   * through a rename: a torn new record reads as none, and a container with no record is still torn
   * down by the default steps (measured: the rename cost the foreground run ~0.3 ms).
   */
  create(namespace: string, id: string, source?: ImageSource, o: { network?: boolean } = {}): ContainerRecord {
    const steps = stepsFor({ image: source !== undefined, network: o.network === true });
    const rec: ContainerRecord = { namespace, id, created: new Date().toISOString(), steps: [...steps], removing: false, released: [] };
    if (source) rec.source = { image: source.image, parent: source.parent };
    const dir = this.dir(namespace, id);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(join(dir, RECORD_FILE), JSON.stringify(rec), { mode: 0o600 });
    return rec;
  }

  read(namespace: string, id: string): ContainerRecord | undefined {
    try {
      const r = JSON.parse(readFileSync(join(this.dir(namespace, id), RECORD_FILE), "utf8")) as Partial<ContainerRecord>;
      if (r.namespace !== namespace || r.id !== id || !Array.isArray(r.steps)) return undefined;
      const steps = r.steps.filter((s): s is Step => STEPS.includes(s));
      const released = (r.released ?? []).filter((s): s is Step => steps.includes(s as Step));
      const rec: ContainerRecord = { namespace, id, created: r.created ?? "", steps, removing: r.removing === true, released };
      if (typeof r.source?.image === "string" && typeof r.source.parent === "string") rec.source = { image: r.source.image, parent: r.source.parent };
      return rec;
    } catch {
      return undefined;
    }
  }

  /** Records in a namespace (or all), read from disk. */
  list(namespace?: string): ContainerRecord[] {
    const base = join(this.root, CONTAINERS_DIR);
    const namespaces = namespace ? [namespace] : visibleDirs(base).filter((d) => !RESERVED_NAMESPACES.includes(d));
    return namespaces.flatMap((ns) => visibleDirs(join(base, ns)).flatMap((id) => this.read(ns, id) ?? []));
  }

  /**
   * Runs the teardown: marks the record removing, releases each step not yet released (in order,
   * recording each), then removes the record. With no record (a container made before records, or
   * one whose record is lost) the steps still run, unrecorded. A step that fails before anything was
   * released clears the mark again (nothing was torn down: the caller's error stands); one that fails
   * later leaves it, for the next rm, ps or daemon start. One teardown per container at a time.
   */
  teardown(namespace: string, id: string, release: Release, { persist = true, steps = DEFAULT_STEPS }: { persist?: boolean; steps?: readonly Step[] } = {}): Promise<void> {
    const key = `${namespace}/${id}`;
    const inFlight = this.running.get(key);
    if (inFlight) return inFlight;
    const p = (persist ? this.run(namespace, id, release) : this.runUnrecorded(namespace, id, release, steps)).finally(() => this.running.delete(key));
    this.running.set(key, p);
    return p;
  }

  private async run(namespace: string, id: string, release: Release): Promise<void> {
    const rec = this.read(namespace, id);
    if (!rec) {
      for (const step of DEFAULT_STEPS) await release(step);
      return;
    }
    if (!rec.removing) {
      rec.removing = true;
      this.save(rec);
    }
    for (const step of rec.steps) {
      if (rec.released.includes(step)) continue;
      failpoint(step);
      try {
        await release(step);
      } catch (err) {
        if (rec.released.length === 0) {
          rec.removing = false;
          this.save(rec);
        }
        throw err;
      }
      rec.released.push(step);
      this.save(rec);
    }
    failpoint("record");
    this.remove(namespace, id);
  }

  /**
   * Without persisting progress (`persist: false`): for an owner whose container is known to hold
   * nothing a crash could strand, where what is on disk already says how to finish: the foreground
   * run's own end (runc run removed its state; a bundle left by a crash here is a dead CLI's, which
   * the orphan clean-up removes through the full teardown). Saves the four record writes, ~1.5 ms.
   */
  private async runUnrecorded(namespace: string, id: string, release: Release, steps: readonly Step[]): Promise<void> {
    // the owner wrote the record with these steps: no need to read it back
    for (const step of steps) {
      failpoint(step);
      await release(step);
    }
    failpoint("record");
    this.remove(namespace, id);
  }

  /** Removes the record (and its namespace dir once empty). */
  remove(namespace: string, id: string): void {
    rmSync(this.dir(namespace, id), { recursive: true, force: true });
    try {
      rmdirSync(join(this.root, CONTAINERS_DIR, namespace));
    } catch {
      // not empty, or gone
    }
  }

  private save(rec: ContainerRecord): void {
    const dir = this.dir(rec.namespace, rec.id);
    // a temp of this process's own: two processes finishing one teardown (a test's manager and the
    // library's reaper) must not rename each other's temp away
    const tmp = join(dir, `.${RECORD_FILE}.${process.pid}`);
    writeFileSync(tmp, JSON.stringify(rec), { mode: 0o600 });
    renameSync(tmp, join(dir, RECORD_FILE));
  }
}

/** The dirs in `path`, without the dot-named temps of a write in progress; none when it is missing. */
export function visibleDirs(path: string): string[] {
  try {
    return readdirSync(path, { withFileTypes: true })
      .filter((d) => d.isDirectory() && !d.name.startsWith("."))
      .map((d) => d.name);
  } catch {
    return [];
  }
}
