// Container log drivers and the stdio URI that asks bunker's shim for docker's json-file log.
// The manager side builds the URI (runtime/container-log.ts), the shim side parses it
// (stdio/stdio-uri.ts): the two may not import each other, so the wire form is fixed here and a
// unit test checks both ends agree.
//
// Drivers, with docker's names: "json-file" (docker's default: one JSON object per line with the
// stream and an RFC3339Nano time, rotated by size), "file" (the raw bytes of both streams in one
// file: containerd's file:// stdio, which every runtime v2 shim understands), "none".
//
// The URI is a scheme of our own, `json-file:///abs/path?max-size=BYTES&max-file=N`, not file://
// with a query: containerd's runc shim takes the path of a file:// URI and ignores its query, so a
// misrouted request would silently write raw bytes that `logs` then misreads as JSON; with a scheme
// of its own any other shim refuses it ("unknown STDIO scheme"). Sizes travel in bytes, already
// validated, so the shim parses only integers.
//
// Options are docker's --log-opt max-size (binary units as docker's RAMInBytes: 10k, 10m, 1g, -1 =
// unbounded) and max-file (>= 1). Defaults differ from docker's unbounded json-file on purpose:
// bunker targets unattended hosts, where a chatty container must not fill the disk, so 10m x 3
// (docker's own recommendation for production) applies unless max-size=-1.
import { InvalidArgumentError } from "../errdefs.ts";

export type LogDriver = "json-file" | "file" | "none";
export const LOG_DRIVERS: readonly LogDriver[] = ["json-file", "file", "none"];

export const JSON_FILE_SCHEME = "json-file";
export const DEFAULT_MAX_SIZE = 10 * 1024 * 1024;
export const DEFAULT_MAX_FILE = 3;

export interface JsonFileOptions {
  /** Rotate once the file reached this many bytes; 0: never. */
  maxSize: number;
  /** How many files are kept, the current one included (>= 1). */
  maxFile: number;
}

/** `--log-driver`: one of docker's names that bunker keeps; "" is left to the caller's default. */
export function parseLogDriver(value: string): LogDriver | "" {
  if (value === "") return "";
  if ((LOG_DRIVERS as readonly string[]).includes(value)) return value as LogDriver;
  throw new InvalidArgumentError(`log driver ${JSON.stringify(value)} is not supported (json-file, file or none)`);
}

const UNITS: Record<string, number> = { "": 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** docker's RAMInBytes: "10m", "10MB", "10MiB", "512k", "1.5g", "100" (bytes); "-1" is unbounded (0). */
export function parseByteSize(value: string): number {
  if (value.trim() === "-1") return 0;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtb]?)(?:i?b)?\s*$/i.exec(value);
  const n = m ? Math.floor(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!) : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError(`log-opt max-size ${JSON.stringify(value)} is not a size (10k, 10m, 1g, or -1)`);
  return n;
}

/** Validates a driver's --log-opt set as docker does (unknown keys refused); json-file gets its sizes. */
export function parseLogOptions(driver: LogDriver, options: Record<string, string>): JsonFileOptions | undefined {
  const keys = Object.keys(options);
  if (driver !== "json-file") {
    if (keys.length > 0) throw new InvalidArgumentError(`log-opt ${keys[0]} is not valid for the ${driver} log driver`);
    return undefined;
  }
  const out: JsonFileOptions = { maxSize: DEFAULT_MAX_SIZE, maxFile: DEFAULT_MAX_FILE };
  for (const [k, v] of Object.entries(options)) {
    if (k === "max-size") out.maxSize = parseByteSize(v);
    else if (k === "max-file") {
      if (!/^\d{1,4}$/.test(v) || Number(v) < 1) throw new InvalidArgumentError(`log-opt max-file ${JSON.stringify(v)} must be a whole number of at least 1`);
      out.maxFile = Number(v);
    } else throw new InvalidArgumentError(`unknown log-opt ${JSON.stringify(k)} for the json-file log driver (max-size, max-file)`);
  }
  return out;
}

/** `--log-opt k=v` list -> map (docker: the last value of a key wins). */
export function logOptionsFromList(values: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf("=");
    if (eq <= 0) throw new InvalidArgumentError(`--log-opt ${JSON.stringify(v)} must be KEY=VALUE`);
    out[v.slice(0, eq)] = v.slice(eq + 1);
  }
  return out;
}

/** The stdout (and stderr) URI that asks bunker's shim to write docker's json-file log at `path`. */
export function jsonFileUri(path: string, o: JsonFileOptions): string {
  const encoded = path.split("/").map(encodeURIComponent).join("/");
  return `${JSON_FILE_SCHEME}://${encoded}?max-size=${o.maxSize}&max-file=${o.maxFile}`;
}
