// Where a detached container's output is kept, decided once at create: the stdio URIs the shim gets
// and the driver and path recorded in the task's meta (for `bunker logs` and inspect's LogPath).
//
// As docker, a container's log lives with the container: in its record's directory
// (<root>/containers/<ns>/<id>/, containers/record.ts), named as docker names it (<id>-json.log),
// so the record's one teardown removes it last, with the record, and `rm` leaves nothing behind. An
// explicit `--log PATH` is the user's file: written raw (containerd's file://) and never removed.
//
// json-file is written by bunker's shim (its json-file:// stdio, contract/log-uri.ts). Any other
// runtime (Debian's containerd-shim-runc-v2 knows only FIFOs, file:// and binary://) gets the raw
// file instead, recorded as driver "file", so `logs` reads it as what it is.
import { basename, join } from "node:path";
import { InvalidArgumentError } from "../errdefs.ts";
import { BUNKER_RUNTIME, binaryName } from "../contract/runtime.ts";
import { jsonFileUri, type LogDriver, parseLogDriver, parseLogOptions } from "../contract/log-uri.ts";

export interface LogRequest {
  /** docker's --log-driver ("" : json-file, or file for an explicit path). */
  driver: string;
  options: Record<string, string>;
  /** `--log PATH`: an absolute path of the user's, written raw. */
  path?: string;
}

export interface LogPlan {
  /** The stdout and stderr URIs of the shim's Create. */
  stdio: string;
  driver: Exclude<LogDriver, "none">;
  path: string;
}

/** Whether the shim binary is bunker's own (the one that writes json-file). */
export function isBunkerShim(binary: string): boolean {
  return basename(binary) === binaryName(BUNKER_RUNTIME);
}

/** Validates and plans; undefined for driver none (the process's output goes nowhere). */
export function planContainerLog(req: LogRequest, c: { recordDir: string; id: string; shimBinary: string }): LogPlan | undefined {
  let driver = parseLogDriver(req.driver) || (req.path !== undefined ? "file" : "json-file");
  const json = parseLogOptions(driver, req.options);
  if (driver === "none") {
    if (req.path !== undefined) throw new InvalidArgumentError("--log FILE needs the file or json-file log driver, not none");
    return undefined;
  }
  if (driver === "json-file" && !isBunkerShim(c.shimBinary)) driver = "file";
  if (driver === "json-file") {
    const path = req.path ?? join(c.recordDir, `${c.id}-json.log`);
    return { stdio: jsonFileUri(path, json!), driver, path };
  }
  const path = req.path ?? join(c.recordDir, `${c.id}.log`);
  // as today's --log: the shim appends both streams to the file, byte for byte
  return { stdio: `file://${path}`, driver, path };
}
