// OOM notifications for TaskOOM events, without a thread or a timer per container.
//
//   const oom = new OomWatcher();
//   const off = oom.onOom((containerId) => publish("/tasks/oom", { containerId }));
//   oom.add(containerId, cgroup)    after runc create (cgroup: cgroupOfPid(initPid), or a cgroup directory path)
//   oom.remove(containerId)         at Delete (before or after runc delete)
//   oom.close()                     at shutdown
//
// cgroup v1: an eventfd registered in cgroup.event_control against memory.oom_control (as
// containerd's epoller). The eventfd is watched through readiness.ts (one epoll set for the shim,
// not a Bun stream per container); each readable batch is one notification. The kernel notifies
// *before* it kills (and again for a cgroup being removed), so a notification is reported once
// memory.oom_control's oom_kill counter has moved past the last one reported (re-checked for a
// short while), or when the cgroup sits under_oom with the killer disabled; a notification that
// ends in neither (a victim already dying) is not reported twice.
// Kernels without the oom_kill counter (< 4.13) report every notification, as containerd does.
// cgroup v2: inotify (fs.watch) on memory.events; reported when oom_kill grows, as containerd's v2
// watcher does (counting from the value at add(), so a reloaded shim does not replay old kills).
import { closeSync, existsSync, openSync, readSync, watch, writeFileSync, type FSWatcher } from "node:fs";
import { join } from "node:path";
import { InvalidArgumentError, NotFoundError } from "../errdefs.ts";
import { EFD, sys, type Syscalls } from "../sys/index.ts";
import type { Cgroup } from "./cgroup.ts";
import { readinessOf, type Watch } from "../sys/readiness.ts";
import { parseFlatKeyed, readCgroupFile } from "./cgroup-files.ts";

export type OomCallback = (containerId: string) => void;

interface V1Entry {
  version: 1;
  dir: string;
  efd: number;
  watch: Watch;
  lastKills: bigint;
  /** eventfd signals not decided on yet (the removal of the cgroup adds one). */
  signals: bigint;
  checking: boolean;
}

interface V2Entry {
  version: 2;
  dir: string;
  watcher: FSWatcher;
  lastKills: bigint;
}

type Entry = V1Entry | V2Entry;

/** How long a v1 notification waits for oom_kill to move (the kill follows the notification). */
const V1_RECHECK_MS = [0, 5, 20, 50, 100, 200];

export interface OomWatcherOptions {
  sys?: Syscalls;
  /** Called with errors that cannot be thrown to anyone (a cgroup file that became unreadable). */
  onError?: (err: unknown, containerId: string) => void;
  /** Every decision on a notification (for logs): reported or not, and why. */
  onDecision?: (containerId: string, reported: boolean, why: string) => void;
}

export class OomWatcher {
  private readonly entries = new Map<string, Entry>();
  private readonly callbacks = new Set<OomCallback>();
  private closed = false;

  constructor(private readonly opts: OomWatcherOptions = {}) {}

  private get s(): Syscalls {
    return this.opts.sys ?? sys();
  }

  /** Subscribes; returns the unsubscribe function. */
  onOom(cb: OomCallback): () => void {
    this.callbacks.add(cb);
    return () => this.callbacks.delete(cb);
  }

  /** The ids being watched. */
  ids(): string[] {
    return [...this.entries.keys()];
  }

  /**
   * Starts watching a container's memory cgroup: a Cgroup from cgroup.ts, or a directory (a v1
   * memory cgroup, or a v2 cgroup: told apart by memory.oom_control vs memory.events). Adding an
   * id again replaces its watch.
   */
  add(containerId: string, cgroup: Cgroup | string): void {
    if (this.closed) throw new InvalidArgumentError("OOM watcher is closed");
    const { version, dir } = memoryDir(cgroup);
    this.remove(containerId);
    const entry = version === 1 ? this.addV1(containerId, dir) : this.addV2(containerId, dir);
    this.entries.set(containerId, entry);
  }

  /** Stops watching (unknown ids are fine: the watch may have ended with its cgroup). */
  remove(containerId: string): void {
    const e = this.entries.get(containerId);
    if (!e) return;
    this.entries.delete(containerId);
    if (e.version === 2) {
      e.watcher.close();
      return;
    }
    // closing the eventfd also unregisters the event in the kernel (EPOLLHUP on the eventfd)
    e.watch.remove();
    this.s.close(e.efd);
  }

  close(): void {
    for (const id of [...this.entries.keys()]) this.remove(id);
    this.callbacks.clear();
    this.closed = true;
  }

  private emit(containerId: string, why: string): void {
    this.opts.onDecision?.(containerId, true, why);
    for (const cb of this.callbacks) {
      try {
        cb(containerId);
      } catch (err) {
        this.opts.onError?.(err, containerId);
      }
    }
  }

  private addV1(containerId: string, dir: string): V1Entry {
    const s = this.s;
    const efd = s.eventfd(0, EFD.NONBLOCK);
    try {
      const ofd = openSync(join(dir, "memory.oom_control"), "r");
      try {
        writeFileSync(join(dir, "cgroup.event_control"), `${efd} ${ofd}`);
      } finally {
        closeSync(ofd);
      }
    } catch (err) {
      s.close(efd);
      throw err;
    }
    const entry: V1Entry = { version: 1, dir, efd, watch: undefined as unknown as Watch, lastKills: v1Kills(dir) ?? 0n, signals: 0n, checking: false };
    const counter = Buffer.alloc(8);
    entry.watch = readinessOf(s).watch(efd, () => {
      if (this.entries.get(containerId) !== entry) return;
      try {
        while (readSync(efd, counter, 0, 8, null) === 8) entry.signals += counter.readBigUInt64LE(0);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EAGAIN") return; // closed by remove()
      }
      entry.watch.rearm();
      if (entry.signals > 0n && !entry.checking) void this.checkV1(containerId, entry);
    });
    return entry;
  }

  /**
   * Reports an OOM kill the counters already show but no notification has been decided on yet.
   * The exit path calls it before TaskExit: the kill is what ended the process, so its TaskOOM
   * must come first, however late the eventfd's wake-up reaches us.
   */
  flush(containerId: string): void {
    const e = this.entries.get(containerId);
    if (!e) return;
    if (e.version === 2) {
      this.checkV2(containerId, e);
      return;
    }
    try {
      const kills = v1Kills(e.dir);
      if (kills === undefined || kills <= e.lastKills) return;
      e.lastKills = kills;
      e.signals = 0n;
      this.emit(containerId, `oom_kill ${kills} (at exit)`);
    } catch (err) {
      this.opts.onError?.(err, containerId);
    }
  }

  private async checkV1(containerId: string, e: V1Entry): Promise<void> {
    e.checking = true;
    try {
      for (let attempt = 0; attempt < V1_RECHECK_MS.length; attempt++) {
        if (V1_RECHECK_MS[attempt]) await Bun.sleep(V1_RECHECK_MS[attempt]!);
        if (this.entries.get(containerId) !== e) return;
        const text = readCgroupFile(e.dir, "memory.oom_control");
        if (text === undefined) {
          // the cgroup went away (its removal signals once): anything beyond that was an OOM
          if (e.signals >= 2n) this.emit(containerId, "signalled before its cgroup was removed");
          else this.opts.onDecision?.(containerId, false, "cgroup removed");
          this.remove(containerId);
          return;
        }
        const kv = parseFlatKeyed(text);
        const kills = kv.get("oom_kill");
        if (kills === undefined || kills > e.lastKills || (kv.get("under_oom") === 1n && kv.get("oom_kill_disable") === 1n)) {
          const why = kills === undefined ? "notified (no oom_kill counter)" : kills > e.lastKills ? `oom_kill ${kills}` : "under OOM, killer disabled";
          if (kills !== undefined) e.lastKills = kills;
          e.signals = 0n;
          this.emit(containerId, why);
          return;
        }
      }
      e.signals = 0n; // no kill followed: a victim was already on its way out
      this.opts.onDecision?.(containerId, false, "no kill followed the notification");
    } catch (err) {
      this.opts.onError?.(err, containerId);
    } finally {
      e.checking = false;
      if (e.signals > 0n && this.entries.get(containerId) === e) void this.checkV1(containerId, e);
    }
  }

  private addV2(containerId: string, dir: string): V2Entry {
    const file = join(dir, "memory.events");
    const entry: V2Entry = { version: 2, dir, lastKills: v2Kills(dir) ?? 0n, watcher: undefined as unknown as FSWatcher };
    entry.watcher = watch(file, () => this.checkV2(containerId, entry));
    entry.watcher.on("error", () => this.remove(containerId));
    return entry;
  }

  private checkV2(containerId: string, e: V2Entry): void {
    if (this.entries.get(containerId) !== e) return;
    try {
      const kills = v2Kills(e.dir);
      if (kills === undefined) {
        this.remove(containerId); // the cgroup was removed
        return;
      }
      if (kills > e.lastKills) {
        e.lastKills = kills;
        this.emit(containerId, `oom_kill ${kills}`);
      }
    } catch (err) {
      this.opts.onError?.(err, containerId);
    }
  }
}

function memoryDir(cgroup: Cgroup | string): { version: 1 | 2; dir: string } {
  if (typeof cgroup !== "string") {
    if (cgroup.version === 2) return { version: 2, dir: cgroup.dir };
    const dir = cgroup.controllers.memory;
    if (!dir) throw new NotFoundError("the container has no memory cgroup (memory controller not mounted)");
    return { version: 1, dir };
  }
  if (existsSync(join(cgroup, "memory.oom_control"))) return { version: 1, dir: cgroup };
  if (existsSync(join(cgroup, "memory.events"))) return { version: 2, dir: cgroup };
  throw new NotFoundError(`${cgroup} is not a memory cgroup (no memory.oom_control or memory.events)`);
}

function v1Kills(dir: string): bigint | undefined {
  const text = readCgroupFile(dir, "memory.oom_control");
  return text === undefined ? undefined : parseFlatKeyed(text).get("oom_kill");
}

function v2Kills(dir: string): bigint | undefined {
  const text = readCgroupFile(dir, "memory.events");
  return text === undefined ? undefined : (parseFlatKeyed(text).get("oom_kill") ?? 0n);
}
