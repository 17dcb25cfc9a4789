// Reading cgroup files, apart from the Metrics they feed: the OOM watcher reads memory.oom_control
// and memory.events in every serve process, and importing these two helpers from stats-v1.ts made
// every shim evaluate the cgroups Metrics descriptors at start (which only the Stats RPC needs).
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** The text of a cgroup file, or undefined when it does not exist (ENOENT; ENODEV for a cgroup being removed). */
export function readCgroupFile(dir: string | undefined, name: string): string | undefined {
  return dir === undefined ? undefined : readOptional(join(dir, name));
}

/** A file's text, or undefined when it does not exist (or this kernel lacks it). */
export function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENODEV" || code === "ENOTSUP" || code === "EOPNOTSUPP") return undefined;
    throw err;
  }
}

/** "key value" lines. Values that are not unsigned integers (v2's "max") are skipped. */
export function parseFlatKeyed(text: string): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const line of text.split("\n")) {
    const [key, value, extra] = line.trim().split(/\s+/);
    if (!key || value === undefined || extra !== undefined || !/^\d+$/.test(value)) continue;
    out.set(key, BigInt(value));
  }
  return out;
}
