// The runtime options containerd writes to the `start` action's stdin (a protobuf Any), read for
// the one thing `start` needs: the group. CRI passes runtimeoptions.v1.Options{type_url=1,
// config_path=2} to runtimes other than runc; bunker reads `group` from that config file (TOML
// `group = "..."` or JSON {"group": "..."}). Decoded with ttrpc's field reader: `start` must not load descriptors.
import { readFileSync } from "node:fs";
import { InvalidArgumentError } from "../errdefs.ts";
import { delimitedFields, WireError } from "../ttrpc/wire-decode.ts";

const RUNTIME_OPTIONS = "runtimeoptions.v1.Options";

/** Length-delimited (wire type 2) fields of a message, by number; broken input is InvalidArgument. */
export function bytesFields(buf: Uint8Array): Map<number, Uint8Array> {
  try {
    return delimitedFields(buf);
  } catch (err) {
    if (err instanceof WireError) throw new InvalidArgumentError(`runtime options: ${err.message}`);
    throw err;
  }
}

const text = (b: Uint8Array | undefined): string => (b ? new TextDecoder().decode(b) : "");

/** `group` from a config file: JSON {"group": ...} or a TOML line `group = "..."`. */
export function groupFromConfig(content: string, path = "config"): string | undefined {
  const trimmed = content.trim();
  if (trimmed.startsWith("{")) {
    let v: unknown;
    try {
      v = (JSON.parse(trimmed) as { group?: unknown }).group;
    } catch (err) {
      throw new InvalidArgumentError(`${path}: ${(err as Error).message}`);
    }
    if (v !== undefined && typeof v !== "string") throw new InvalidArgumentError(`${path}: group must be a string`);
    return v;
  }
  const m = /^\s*group\s*=\s*(?:"([^"]*)"|'([^']*)')\s*(?:#.*)?$/m.exec(content);
  return m ? (m[1] ?? m[2]) : undefined;
}

/** The group the runtime options ask for, if any. */
export function groupFromOptions(options: Uint8Array): string | undefined {
  if (options.length === 0) return undefined;
  const any = bytesFields(options);
  const typeUrl = text(any.get(1));
  const name = typeUrl.slice(typeUrl.lastIndexOf("/") + 1);
  if (name !== RUNTIME_OPTIONS) return undefined;
  const configPath = text(bytesFields(any.get(2) ?? new Uint8Array()).get(2));
  if (!configPath) return undefined;
  return groupFromConfig(readFileSync(configPath, "utf8"), configPath);
}
