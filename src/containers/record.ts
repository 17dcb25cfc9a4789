// The container record: one per container, under <root>/containers/<ns>/<id>/record.json (persistent:
// it survives a reboot, while the bundle under --state does not). It owns the container's teardown:
// an ordered list of release steps, each idempotent, each recorded once done. A teardown marks the
// record `removing` before releasing anything, so one cut short (a SIGKILL, a crash, a reboot) is
// found and finished by the next rm, ps or daemon start, and nothing of the container is left behind.
// Today's steps are the task and the bundle; the network, the rootfs snapshot and the logs join the
// list as their subsystems arrive. Light on purpose (node:fs only): the CLI's foreground path uses it.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RESERVED_NAMESPACES } from "../identifiers.ts";

export const CONTAINERS_DIR = "containers";
export const RECORD_FILE = "record.json";

/** What a container holds, in the order it is released. */
export type Step = "task" | "bundle";
export const DEFAULT_STEPS: readonly Step[] = ["task", "bundle"];

export interface ContainerRecord {
  namespace: string;
  id: string;
  created: string;
  steps: Step[];
  /** Set before the first release: from then on the teardown must be finished. */
  removing: boolean;
  released: Step[];
}

/** Releases one step; must be idempotent (it may run again after a crash right after it). */
export type Release = (step: Step) => Promise<void>;

/** Test failpoint: BUNKER_TEST_KILL_AT=teardown:<step> (or teardown:record) SIGKILLs this process there. */
function failpoint(at: string): void {
  if (process.env.BUNKER_TEST_KILL_AT === `teardown:${at}`) process.kill(process.pid, "SIGKILL");
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
  create(namespace: string, id: string, steps: readonly Step[] = DEFAULT_STEPS): ContainerRecord {
    const rec: ContainerRecord = { namespace, id, created: new Date().toISOString(), steps: [...steps], removing: false, released: [] };
    const dir = this.dir(namespace, id);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(join(dir, RECORD_FILE), JSON.stringify(rec), { mode: 0o600 });
    return rec;
  }

  read(namespace: string, id: string): ContainerRecord | undefined {
    try {
      const r = JSON.parse(readFileSync(join(this.dir(namespace, id), RECORD_FILE), "utf8")) as Partial<ContainerRecord>;
      if (r.namespace !== namespace || r.id !== id || !Array.isArray(r.steps)) return undefined;
      const steps = r.steps.filter((s): s is Step => s === "task" || s === "bundle");
      const released = (r.released ?? []).filter((s): s is Step => steps.includes(s as Step));
      return { namespace, id, created: r.created ?? "", steps, removing: r.removing === true, released };
    } catch {
      return undefined;
    }
  }

  /** Records in a namespace (or all), read from disk. */
  list(namespace?: string): ContainerRecord[] {
    const base = join(this.root, CONTAINERS_DIR);
    const namespaces = namespace ? [namespace] : dirs(base).filter((d) => !RESERVED_NAMESPACES.includes(d));
    return namespaces.flatMap((ns) => dirs(join(base, ns)).flatMap((id) => this.read(ns, id) ?? []));
  }

  /**
   * Runs the teardown: marks the record removing, releases each step not yet released (in order,
   * recording each), then removes the record. With no record (a container made before records, or
   * one whose record is lost) the steps still run, unrecorded. A step that fails before anything was
   * released clears the mark again (nothing was torn down: the caller's error stands); one that fails
   * later leaves it, for the next rm, ps or daemon start. One teardown per container at a time.
   */
  teardown(namespace: string, id: string, release: Release, { persist = true }: { persist?: boolean } = {}): Promise<void> {
    const key = `${namespace}/${id}`;
    const inFlight = this.running.get(key);
    if (inFlight) return inFlight;
    const p = (persist ? this.run(namespace, id, release) : this.runUnrecorded(namespace, id, release)).finally(() => this.running.delete(key));
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
  private async runUnrecorded(namespace: string, id: string, release: Release): Promise<void> {
    // the owner wrote the record with the default steps: no need to read it back
    for (const step of DEFAULT_STEPS) {
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
    const tmp = join(dir, `.${RECORD_FILE}`);
    writeFileSync(tmp, JSON.stringify(rec), { mode: 0o600 });
    renameSync(tmp, join(dir, RECORD_FILE));
  }
}

function dirs(path: string): string[] {
  try {
    return readdirSync(path, { withFileTypes: true })
      .filter((d) => d.isDirectory() && !d.name.startsWith("."))
      .map((d) => d.name);
  } catch {
    return [];
  }
}
