// Where a serve process's memory goes, on request: with BUNKER_SHIM_MEMSTATS=<dir> the serve
// process writes <dir>/<pid>.json once it serves (after a full GC), with JSC's heap statistics and
// the modules it evaluated. Issue #19's per-pod shim has to get as small as Go's, and smaps alone
// says only "anonymous": this says which objects and which of our modules are behind it.
// Loaded only when the variable is set (bun:jsc is not free to load).
import { writeFileSync } from "node:fs";
import { join } from "node:path";

export const MEMSTATS_ENV = "BUNKER_SHIM_MEMSTATS";

export async function writeMemStats(dir: string, stage: string): Promise<void> {
  const { heapStats } = await import("bun:jsc");
  Bun.gc(true);
  const h = heapStats();
  const top = Object.entries(h.objectTypeCounts)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 25);
  // the module registry of a compiled binary names every module that was evaluated
  const loader = (globalThis as { Loader?: { registry?: Map<string, unknown> } }).Loader;
  const modules = loader?.registry ? [...loader.registry.keys()] : [];
  const out = {
    stage,
    pid: process.pid,
    heapSize: h.heapSize,
    heapCapacity: h.heapCapacity,
    extraMemorySize: h.extraMemorySize,
    objectCount: h.objectCount,
    protectedObjectCount: h.protectedObjectCount,
    memoryUsage: process.memoryUsage(),
    topTypes: Object.fromEntries(top),
    modules,
  };
  writeFileSync(join(dir, `${process.pid}-${stage}.json`), `${JSON.stringify(out, null, 1)}\n`);
}
