// Runtime name -> shim binary (containerd runtime/v2/shim/util.go BinaryName, and the 1.6 rule
// that an absolute runtime is the binary itself). Bunker also looks next to its own executable,
// so a host that has only the bunker binary (and its containerd-shim-bunker-v1 link) works, and
// last in its own package's bin/: bunker as a library under `bun test` runs as `bun`, whose
// directory has no shim, and bin/containerd-shim-bunker-v1 there is the launcher that runs the
// shim from the package's sources.
import { accessSync, constants, statSync } from "node:fs";
import { dirname, isAbsolute, join } from "node:path";
import { binaryName } from "../contract/runtime.ts";
import { DEFAULT_SEARCH_PATH } from "./paths.ts";
import { NotFoundError } from "../errdefs.ts";
import { packageBin } from "../native.ts";

export interface ResolveOptions {
  /** Search path; defaults to $PATH. */
  path?: string;
  /** Directory of the bunker executable; defaults to dirname(process.execPath). */
  selfDir?: string;
  /** The package's launcher for a shim name; defaults to bin/<name> of this package (none when compiled). */
  packageBin?: (name: string) => string | undefined;
}

function isExecutableFile(p: string): boolean {
  try {
    if (!statSync(p).isFile()) return false;
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The absolute path of the shim binary for a runtime name, or NotFound / InvalidArgument. */
export function resolveShimBinary(runtime: string, opts: ResolveOptions = {}): string {
  if (isAbsolute(runtime)) {
    if (!isExecutableFile(runtime)) throw new NotFoundError(`runtime binary ${runtime} does not exist or is not executable`);
    return runtime;
  }
  const name = binaryName(runtime);
  const searchPath = opts.path ?? process.env.PATH ?? DEFAULT_SEARCH_PATH;
  for (const dir of searchPath.split(":")) {
    if (dir === "" || !isAbsolute(dir)) continue;
    const candidate = join(dir, name);
    if (isExecutableFile(candidate)) return candidate;
  }
  const selfDir = opts.selfDir ?? dirname(process.execPath);
  const beside = join(selfDir, name);
  if (isExecutableFile(beside)) return beside;
  const launcher = (opts.packageBin ?? packageBin)(name);
  if (launcher !== undefined && isExecutableFile(launcher)) return launcher;
  const where = launcher === undefined ? selfDir : `${selfDir} or ${dirname(launcher)}`;
  throw new NotFoundError(`runtime ${JSON.stringify(runtime)}: binary ${name} not found in PATH or ${where}`);
}
