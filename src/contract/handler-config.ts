// The top-level keys of a CRI runtime handler's `options` table as bunker's shim receives it: CRI
// sends runtimes other than runc a runtimeoptions.v1.Options naming a config file (config_path) or,
// when none is named (containerd 1.7+), carrying the table itself re-encoded as TOML (config_body,
// go-toml's output: `Key = 'value'`, `Flag = true`, `N = 3`). runc.v2 reads the same table into
// containerd.runc.v1.Options by its Go field names (BinaryName, Root, SystemdCgroup, ...), so an
// operator who switches a handler from runc to bunker keeps the same keys; bunker adds `group`.
//
// Only flat keys before the first [table] are read (strings, booleans, integers); anything else is
// skipped rather than refused, because the table may hold keys meant for other tools. A JSON object
// is accepted too, for a config_path file written by hand. This is not the TOML codec in config/:
// `start` and `-info` run once per container and must not load it.
import { InvalidArgumentError } from "../errdefs.ts";

export type HandlerValue = string | number | boolean;

function basicString(body: string, source: string): string {
  return body.replace(/\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)/g, (_, c: string) => {
    if (c === "n") return "\n";
    if (c === "t") return "\t";
    if (c === "r") return "\r";
    if (c === "b") return "\b";
    if (c === "f") return "\f";
    if (c === '"' || c === "\\") return c;
    if (c[0] === "u" || c[0] === "U") return String.fromCodePoint(Number.parseInt(c.slice(1), 16));
    throw new InvalidArgumentError(`${source}: invalid escape \\${c}`);
  });
}

const LINE = /^\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|'[^']*'|true|false|[+-]?\d[\d_]*)\s*(?:#.*)?$/;

function tomlValues(content: string, source: string): Record<string, HandlerValue> {
  const out: Record<string, HandlerValue> = {};
  for (const line of content.split("\n")) {
    if (/^\s*\[/.test(line)) break; // a sub-table: its keys are not the handler's own
    const m = LINE.exec(line);
    if (!m) continue;
    const rawKey = m[1]!;
    const key = rawKey.startsWith('"') ? basicString(rawKey.slice(1, -1), source) : rawKey.startsWith("'") ? rawKey.slice(1, -1) : rawKey;
    const raw = m[2]!;
    if (raw.startsWith('"')) out[key] = basicString(raw.slice(1, -1), source);
    else if (raw.startsWith("'")) out[key] = raw.slice(1, -1);
    else if (raw === "true" || raw === "false") out[key] = raw === "true";
    else out[key] = Number(raw.replaceAll("_", ""));
  }
  return out;
}

/** The flat keys of a handler's config (TOML or a JSON object). */
export function handlerConfigValues(content: string, source = "config"): Record<string, HandlerValue> {
  const trimmed = content.trim();
  if (!trimmed.startsWith("{")) return tomlValues(content, source);
  let parsed: unknown;
  try {
    parsed = JSON.parse(trimmed);
  } catch (err) {
    throw new InvalidArgumentError(`${source}: ${(err as Error).message}`);
  }
  const out: Record<string, HandlerValue> = {};
  for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
    if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") out[k] = v;
  }
  return out;
}
