// The files of a runtime v2 bundle that both sides know by name (containerd runtime/v2: the bundle
// dir is the shim's cwd; pkg/process and the runc shim name the pid file and runc's log).
import { readFileSync } from "node:fs";
import { InvalidArgumentError, NotFoundError } from "../errdefs.ts";
import { goJoin } from "../gopath.ts";
/** The OCI runtime spec. */
export const CONFIG_FILE = "config.json";
/** The shim's socket address, written by `start` (containerd's shim.WriteAddress). */
export const ADDRESS_FILE = "address";
/** The init process's pid, written by `runc create|run --pid-file` (containerd's InitPidFile). */
export const INIT_PID_FILE = "init.pid";
/** runc's JSON log (`--log ... --log-format json`), read for the reason of a failure. */
export const RUNC_LOG_FILE = "log.json";

/**
 * The bundle's OCI spec, parsed (the Go manager's readSpec): NotFound without a config.json,
 * InvalidArgument when it is not a JSON object. The one reader: grouping, the shim's PID-namespace
 * check and exec's process defaults all take the spec from here.
 */
export function readBundleSpec(bundle: string): Record<string, unknown> {
  const path = goJoin(bundle, CONFIG_FILE);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new NotFoundError(`${path} does not exist`);
    throw err;
  }
  let spec: unknown;
  try {
    spec = JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof spec !== "object" || spec === null || Array.isArray(spec)) throw new InvalidArgumentError(`${path} is not a JSON object`);
  return spec as Record<string, unknown>;
}
