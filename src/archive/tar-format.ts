// The tar header block as the reader and the writer both see it: field offsets of the ustar, GNU
// and V7 layouts, the two checksum sums, numeric fields (octal and GNU base-256) and the type
// flags. It follows Go's archive/tar (`format.go`, `strconv.go`): the checksum is accepted as the
// unsigned or the signed byte sum (old Sun tars signed their bytes), octal fields are trimmed of
// spaces and NULs on both sides, and base-256 fields carry a sign bit. Numbers are bigints here so
// that a hostile 12-byte field can be checked against JavaScript's safe integer range before
// anything uses it as a number.
import { InvalidArgumentError } from "../errdefs.ts";

export const BLOCK_SIZE = 512;

/** A PAX header or GNU long name larger than this is refused: no sane layer needs more. */
export const MAX_METADATA_BYTES = 1 << 20;

/** Byte ranges [start, end) of the header fields. */
export const FIELD = {
  name: [0, 100],
  mode: [100, 108],
  uid: [108, 116],
  gid: [116, 124],
  size: [124, 136],
  mtime: [136, 148],
  checksum: [148, 156],
  typeflag: [156, 157],
  linkname: [157, 257],
  magic: [257, 263],
  version: [263, 265],
  uname: [265, 297],
  gname: [297, 329],
  devmajor: [329, 337],
  devminor: [337, 345],
  prefix: [345, 500], // ustar (POSIX); star uses only [345, 476)
  starPrefix: [345, 476],
  starTrailer: [508, 512],
  gnuAtime: [345, 357],
} as const;
export type FieldName = keyof typeof FIELD;

export const USTAR_MAGIC = "ustar\0";
export const USTAR_VERSION = "00";
export const GNU_MAGIC = "ustar ";
export const GNU_VERSION = " \0";

export type TarEntryType = "file" | "dir" | "symlink" | "hardlink" | "char" | "block" | "fifo";

/** Type flag bytes of the entries a layer holds; '7' (contiguous) and NUL read as regular files. */
export const TYPEFLAG: Record<TarEntryType, string> = {
  file: "0",
  hardlink: "1",
  symlink: "2",
  char: "3",
  block: "4",
  dir: "5",
  fifo: "6",
};

export const ZERO_BLOCK = new Uint8Array(BLOCK_SIZE);

const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder("utf-8", { fatal: true });
export const utf8Encoder = new TextEncoder();

export function field(block: Uint8Array, name: FieldName): Uint8Array {
  const [start, end] = FIELD[name];
  return block.subarray(start, end);
}

/** The bytes before the first NUL (the whole field when it has none), as ASCII (magic, type flags). */
export function asciiField(bytes: Uint8Array): string {
  const nul = bytes.indexOf(0);
  return latin1.decode(nul < 0 ? bytes : bytes.subarray(0, nul));
}

/**
 * Names are bytes on Linux, but JavaScript paths are strings: a name that is not UTF-8 cannot be
 * written back faithfully, so it is refused rather than silently mangled with U+FFFD.
 */
export function decodeName(bytes: Uint8Array, what: string): string {
  const nul = bytes.indexOf(0);
  try {
    return utf8.decode(nul < 0 ? bytes : bytes.subarray(0, nul));
  } catch {
    throw new InvalidArgumentError(`invalid tar header: ${what} is not valid UTF-8`);
  }
}

export function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < BLOCK_SIZE; i++) if (block[i] !== 0) return false;
  return true;
}

/** The unsigned and the signed byte sums of a header, its checksum field counted as spaces. */
export function checksums(block: Uint8Array): { unsigned: number; signed: number } {
  let unsigned = 0;
  let signed = 0;
  const [start, end] = FIELD.checksum;
  for (let i = 0; i < BLOCK_SIZE; i++) {
    const byte = i >= start && i < end ? 0x20 : block[i]!;
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return { unsigned, signed };
}

/** Writes the checksum field of a header whose other fields are final (six octal digits, NUL, space). */
export function sealChecksum(block: Uint8Array): void {
  const { unsigned } = checksums(block);
  const text = unsigned.toString(8).padStart(6, "0");
  block.set(utf8Encoder.encode(`${text}\0 `), FIELD.checksum[0]);
}

/** A numeric field: GNU base-256 when the high bit of its first byte is set, else octal text. */
export function parseNumeric(bytes: Uint8Array, what: string): bigint {
  if (bytes.length > 0 && (bytes[0]! & 0x80) !== 0) return parseBase256(bytes, what);
  let start = 0;
  let end = bytes.length;
  while (start < end && (bytes[start] === 0x20 || bytes[start] === 0)) start++;
  while (end > start && (bytes[end - 1] === 0x20 || bytes[end - 1] === 0)) end--;
  if (start === end) return 0n;
  let value = 0n;
  for (let i = start; i < end; i++) {
    const digit = bytes[i]! - 0x30;
    if (digit < 0 || digit > 7) {
      throw new InvalidArgumentError(`invalid tar header: ${what} field ${JSON.stringify(asciiField(bytes.subarray(start, end)))} is not an octal number`);
    }
    value = value * 8n + BigInt(digit);
  }
  return value;
}

function parseBase256(bytes: Uint8Array, what: string): bigint {
  const negative = (bytes[0]! & 0x40) !== 0;
  const invert = negative ? 0xff : 0;
  let value = 0n;
  for (let i = 0; i < bytes.length; i++) {
    let byte = bytes[i]! ^ invert;
    if (i === 0) byte &= 0x7f;
    value = (value << 8n) | BigInt(byte);
  }
  // Go refuses anything outside int64; so do we, before the caller's tighter range checks.
  if (value >= 1n << 63n) throw new InvalidArgumentError(`invalid tar header: ${what} field overflows 64 bits`);
  return negative ? -value - 1n : value;
}

/** A numeric header value as a JavaScript number, refused when negative or beyond `max`. */
export function toBoundedNumber(value: bigint, what: string, max = Number.MAX_SAFE_INTEGER): number {
  if (value < 0n || value > BigInt(max)) throw new InvalidArgumentError(`invalid tar header: ${what} ${value} is out of range`);
  return Number(value);
}

/** Octal text that fills `width - 1` digits and a NUL, or null when `value` does not fit. */
export function formatOctal(value: bigint | number, width: number): Uint8Array | null {
  const big = BigInt(value);
  if (big < 0n) return null;
  const text = big.toString(8);
  if (text.length > width - 1) return null;
  return utf8Encoder.encode(`${text.padStart(width - 1, "0")}\0`);
}

/** GNU base-256 for a value octal cannot hold (what GNU tar writes for sizes of 8 GiB and more). */
export function formatBase256(value: bigint, width: number): Uint8Array {
  const out = new Uint8Array(width);
  let rest = value < 0n ? -value - 1n : value;
  for (let i = width - 1; i >= 0; i--) {
    const byte = Number(rest & 0xffn);
    out[i] = value < 0n ? byte ^ 0xff : byte;
    rest >>= 8n;
  }
  out[0] = (out[0]! & 0x7f) | 0x80 | (value < 0n ? 0x40 : 0);
  return out;
}
