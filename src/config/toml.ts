// TOML output in the layout of go-toml v1's Tree.Marshal, which is how containerd hands a runtime's
// `options` table to a non-runc shim (runtimeoptions ConfigBody): plain keys first, then tables,
// each group sorted, sub-tables indented by two spaces. Input is what Bun.TOML.parse returns.
// Known difference: Bun reads `1.0` as the number 1, so an integral float comes back as `1`.
import { InvalidArgumentError } from "../errdefs.ts";

export type TomlValue = string | number | boolean | bigint | TomlTable | TomlValue[] | { toString(): string };
export interface TomlTable {
  [key: string]: TomlValue;
}

export function isTable(v: unknown): v is TomlTable {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

const isTableArray = (v: unknown): v is TomlTable[] => Array.isArray(v) && v.length > 0 && isTable(v[0]);

/** go-toml's encodeTomlString, except that every control character is escaped (TOML requires it). */
function quoteString(s: string): string {
  let out = "";
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === "\b") out += "\\b";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\f") out += "\\f";
    else if (ch === "\r") out += "\\r";
    else if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (c < 0x20 || c === 0x7f) out += `\\u${c.toString(16).toUpperCase().padStart(4, "0")}`;
    else out += ch;
  }
  return `"${out}"`;
}

const quoteKey = (k: string): string => (/^[A-Za-z0-9_-]+$/.test(k) ? k : quoteString(k));

/** A number without exponent, as Go's FormatFloat(v, 'f', -1, bits) prints it. */
function plainDecimal(repr: string): string {
  const m = /^(-?)(\d+)(?:\.(\d+))?e([+-]?\d+)$/i.exec(repr);
  if (m === null) return repr;
  const [, sign = "", whole = "", fraction = "", exp = "0"] = m;
  const digits = whole + fraction;
  const point = whole.length + Number(exp);
  let s: string;
  if (point <= 0) s = `0.${"0".repeat(-point)}${digits}`;
  else if (point >= digits.length) s = digits + "0".repeat(point - digits.length);
  else s = `${digits.slice(0, point)}.${digits.slice(point)}`;
  return sign + s;
}

function formatNumber(v: number): string {
  if (Number.isNaN(v)) return "nan";
  if (!Number.isFinite(v)) return v > 0 ? "+inf" : "-inf";
  if (Number.isSafeInteger(v)) return String(v);
  // Bun refuses integers beyond 2^53, so such a value was written as a float: Go prints `.0`.
  if (Number.isInteger(v)) return `${plainDecimal(String(v))}.0`;
  let repr = String(v);
  // Go prints a float that float32 holds exactly with float32's shortest digits.
  if (Math.fround(v) === v) {
    for (let p = 1; p <= 9; p++) {
      const candidate = v.toPrecision(p);
      if (Math.fround(Number(candidate)) === v) {
        repr = String(Number(candidate));
        break;
      }
    }
  }
  return plainDecimal(repr);
}

function formatValue(v: TomlValue, where: string): string {
  if (typeof v === "string") return quoteString(v);
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "number") return formatNumber(v);
  if (Array.isArray(v)) return `[${v.map((x, i) => formatValue(x, `${where}[${i}]`)).join(", ")}]`;
  if (isTable(v)) {
    const parts = sortedKeys(v).map((k) => `${quoteKey(k)} = ${formatValue(v[k]!, `${where}.${k}`)}`);
    return `{ ${parts.join(", ")} }`;
  }
  if (typeof v === "object" && v !== null && typeof v.toString === "function" && v.toString !== Object.prototype.toString) {
    return v.toString(); // Temporal dates and times print as RFC 3339 / TOML local forms.
  }
  throw new InvalidArgumentError(`cannot write ${where} as TOML: unsupported value ${String(v)}`);
}

function sortedKeys(t: TomlTable): string[] {
  const simple: string[] = [], complex: string[] = [];
  for (const k of Object.keys(t)) (isTable(t[k]) || isTableArray(t[k]) ? complex : simple).push(k);
  const byCodeUnits = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
  return [...simple.sort(byCodeUnits), ...complex.sort(byCodeUnits)];
}

function writeTable(t: TomlTable, indent: string, keyspace: string, out: string[]): void {
  for (const k of sortedKeys(t)) {
    const v = t[k]!;
    const key = keyspace === "" ? quoteKey(k) : `${keyspace}.${quoteKey(k)}`;
    if (isTable(v)) {
      out.push(`\n${indent}[${key}]\n`);
      writeTable(v, indent + "  ", key, out);
    } else if (isTableArray(v)) {
      v.forEach((sub, i) => {
        if (!isTable(sub)) throw new InvalidArgumentError(`cannot write ${key}[${i}] as TOML: array of tables mixes in a ${typeof sub}`);
        out.push(`\n${indent}[[${key}]]\n`);
        writeTable(sub, indent + "  ", key, out);
      });
    } else {
      out.push(`${indent}${quoteKey(k)} = ${formatValue(v, key)}\n`);
    }
  }
}

/** The table as TOML text laid out like go-toml v1's Tree.Marshal. */
export function marshalToml(table: TomlTable): string {
  const out: string[] = [];
  writeTable(table, "", "", out);
  return out.join("");
}
