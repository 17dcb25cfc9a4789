// Child processes in a subreaper (the shim). As subreaper we must reap orphans ourselves, but
// Bun reaps its own Bun.spawn children and a stolen status leaves Bun with ECHILD and a wrong
// exit code. So EVERY Bun.spawn in a subreaper process goes through spawnTracked, which records
// the pid until Bun has reaped it, and orphans are reaped only by sweepOrphans, which skips those
// pids. JavaScript runs on one thread: the pid is in the set before any sweep can run.
import type { Subprocess } from "bun";
import { sys } from "./index.ts";
import type { ReapedChild } from "./types.ts";

const bunOwned = new Set<number>();

/** Bun.spawn, with the child's pid kept out of sweepOrphans until its `exited` resolves. */
export function spawnTracked<const In extends Bun.SpawnOptions.Writable = "ignore", const Out extends Bun.SpawnOptions.Readable = "pipe", const Err extends Bun.SpawnOptions.Readable = "inherit">(
  cmd: string[],
  opts?: Bun.SpawnOptions.SpawnOptions<In, Out, Err>,
): Subprocess<In, Out, Err> {
  const proc = Bun.spawn(cmd, opts);
  const pid = proc.pid;
  bunOwned.add(pid);
  // Bun resolves `exited` only after its own waitpid, so the pid is ours to forget from then on.
  void proc.exited.finally(() => bunOwned.delete(pid)).catch(() => undefined);
  return proc;
}

/** The pids Bun currently owns (a snapshot, for diagnostics and tests). */
export function bunOwnedPids(): ReadonlySet<number> {
  return new Set(bunOwned);
}

/** Reaps every exited orphan (any child that is not a live Bun.spawn child) with its status. */
export function sweepOrphans(): ReapedChild[] {
  return sys().reapSweep(bunOwned);
}
