// PAX extended header records ("%d %s=%s\n", POSIX.1-2001 pax format), parsed and written AS BYTES.
// Keys are UTF-8 text, values stay raw Uint8Array: SCHILY.xattr.security.capability is binary
// (NULs, 0xff), and tar-stream's UTF-8 decoding of values is exactly what corrupts it. Matches Go's
// archive/tar `parsePAXRecord`/`formatPAXRecord` (the length counts its own digits) and its time
// format (`parsePAXTime`: seconds with an optional fraction, truncated to nanoseconds).
import { InvalidArgumentError } from "../errdefs.ts";
import { utf8Encoder } from "./tar-format.ts";

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Keys and raw values in archive order; a later record of the same key wins. */
export type PaxRecords = Map<string, Uint8Array>;

export const PAX_XATTR_PREFIX = "SCHILY.xattr.";
export const LIBARCHIVE_XATTR_PREFIX = "LIBARCHIVE.xattr.";

export function parsePaxRecords(data: Uint8Array): PaxRecords {
  const records: PaxRecords = new Map();
  let pos = 0;
  while (pos < data.length) {
    // Some writers pad the header's data with NULs after the last record.
    if (data[pos] === 0) break;
    const space = data.indexOf(0x20, pos);
    if (space < 0 || space - pos > 20) throw invalid("a record has no length");
    const lengthText = String.fromCharCode(...data.subarray(pos, space));
    if (!/^[1-9][0-9]*$/.test(lengthText)) throw invalid(`record length ${JSON.stringify(lengthText)} is not a number`);
    const length = Number(lengthText);
    const end = pos + length;
    if (end > data.length || length <= space - pos + 1) throw invalid("a record runs past the header");
    if (data[end - 1] !== 0x0a) throw invalid("a record does not end in a newline");
    const equals = data.indexOf(0x3d, space + 1);
    if (equals < 0 || equals >= end - 1) throw invalid("a record has no '='");
    let key: string;
    try {
      key = utf8.decode(data.subarray(space + 1, equals));
    } catch {
      throw invalid("a record key is not UTF-8");
    }
    if (key === "") throw invalid("a record has an empty key");
    records.set(key, data.slice(equals + 1, end - 1));
    pos = end;
  }
  return records;
}

function invalid(reason: string): InvalidArgumentError {
  return new InvalidArgumentError(`invalid tar PAX header: ${reason}`);
}

/** One record, its length prefix counting its own digits. */
export function formatPaxRecord(key: string, value: Uint8Array | string): Uint8Array {
  const keyBytes = utf8Encoder.encode(key);
  const valueBytes = typeof value === "string" ? utf8Encoder.encode(value) : value;
  const body = keyBytes.length + valueBytes.length + 3; // space, '=', newline
  let length = body + String(body).length;
  if (String(length).length !== String(body).length) length++;
  const out = new Uint8Array(length);
  const prefix = utf8Encoder.encode(`${length} `);
  out.set(prefix, 0);
  out.set(keyBytes, prefix.length);
  out[prefix.length + keyBytes.length] = 0x3d;
  out.set(valueBytes, prefix.length + keyBytes.length + 1);
  out[length - 1] = 0x0a;
  return out;
}

export function paxText(value: Uint8Array, key: string): string {
  try {
    return utf8.decode(value);
  } catch {
    throw invalid(`${key} is not UTF-8`);
  }
}

/** A non-negative decimal integer record (size, uid, gid, devmajor, ...). */
export function paxInteger(value: Uint8Array, key: string): number {
  const text = paxText(value, key);
  if (!/^[0-9]{1,16}$/.test(text) || Number(text) > Number.MAX_SAFE_INTEGER) throw invalid(`${key} ${JSON.stringify(text)} is not a valid number`);
  return Number(text);
}

/** A PAX time ("1700000000.123456789", "-1.5") as nanoseconds since the epoch. */
export function paxTimeNs(value: Uint8Array, key: string): bigint {
  const text = paxText(value, key);
  const match = /^(-?)([0-9]{1,19})(?:\.([0-9]+))?$/.exec(text);
  if (!match) throw invalid(`${key} ${JSON.stringify(text)} is not a valid time`);
  const fraction = (match[3] ?? "").slice(0, 9).padEnd(9, "0");
  const ns = BigInt(match[2]!) * 1_000_000_000n + BigInt(fraction);
  return match[1] === "-" ? -ns : ns;
}

/** The PAX text of a time, with the fraction only when there is one (Go's formatPAXTime). */
export function formatPaxTime(ns: bigint): string {
  const negative = ns < 0n;
  const abs = negative ? -ns : ns;
  const seconds = abs / 1_000_000_000n;
  const fraction = (abs % 1_000_000_000n).toString().padStart(9, "0").replace(/0+$/, "");
  return `${negative ? "-" : ""}${seconds}${fraction ? `.${fraction}` : ""}`;
}

/** libarchive writes xattr names URL-encoded and values base64-encoded. */
export function decodeLibarchiveXattr(encodedName: string, value: Uint8Array): { name: string; value: Uint8Array } {
  let name: string;
  try {
    name = decodeURIComponent(encodedName);
  } catch {
    throw invalid(`xattr name ${JSON.stringify(encodedName)} is not URL-encoded`);
  }
  const text = paxText(value, LIBARCHIVE_XATTR_PREFIX + encodedName).replace(/=+$/, "");
  if (!/^[A-Za-z0-9+/]*$/.test(text)) throw invalid(`xattr ${name} is not base64`);
  return { name, value: new Uint8Array(Buffer.from(text, "base64")) };
}
