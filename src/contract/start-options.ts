// The runtime options containerd writes to the `start` action's stdin (a protobuf Any; bootstrap.ts
// takes it out of containerd 2.3+'s BootstrapParams), read for the one thing `start` needs: the
// group. CRI passes runtimeoptions.v1.Options{type_url=1, config_path=2, config_body=3} to runtimes
// other than runc: the handler's `options` table is either in the file config_path names or, when
// that is empty (containerd 1.7+), the whole table re-encoded as TOML in config_body. bunker reads
// `group` from either (TOML `group = "..."` or JSON {"group": "..."}). Decoded with ttrpc's field
// reader: `start` must not load descriptors.
import { readFileSync } from "node:fs";
import { InvalidArgumentError } from "../errdefs.ts";
import { delimitedFields, WireError } from "../ttrpc/wire-decode.ts";
import { handlerConfigValues } from "./handler-config.ts";

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

/** The message type an Any's fields name (its type_url without the "host/" prefix). */
export function anyTypeName(any: Map<number, Uint8Array>): string {
  const typeUrl = text(any.get(1));
  return typeUrl.slice(typeUrl.lastIndexOf("/") + 1);
}

/** `group` from a handler's config: JSON {"group": ...} or a TOML line `group = "..."`. */
export function groupFromConfig(content: string, path = "config"): string | undefined {
  const v = handlerConfigValues(content, path).group;
  if (v !== undefined && typeof v !== "string") throw new InvalidArgumentError(`${path}: group must be a string`);
  return v;
}

/** The runtime handler's config in CRI's runtimeoptions.v1.Options: the file's content, or the inline body. */
export interface RuntimeConfigText {
  content: string;
  /** The file it came from, or "config_body" (for messages). */
  source: string;
}

/** The config text of CRI's generic runtime options, if the Any holds them and names one. */
export function runtimeConfigText(options: Uint8Array): RuntimeConfigText | undefined {
  if (options.length === 0) return undefined;
  const any = bytesFields(options);
  if (anyTypeName(any) !== RUNTIME_OPTIONS) return undefined;
  const fields = bytesFields(any.get(2) ?? new Uint8Array());
  const configPath = text(fields.get(2));
  if (configPath) return { content: readFileSync(configPath, "utf8"), source: configPath };
  const body = fields.get(3);
  if (body && body.length > 0) return { content: text(body), source: "config_body" };
  return undefined;
}

/** The group the runtime options ask for, if any. */
export function groupFromOptions(options: Uint8Array): string | undefined {
  const config = runtimeConfigText(options);
  return config ? groupFromConfig(config.content, config.source) : undefined;
}
