// A tar writer: ustar headers, with a PAX 'x' header in front whenever ustar cannot say it (names or
// link names too long for name+prefix, non-ASCII user names, numbers beyond the octal fields,
// sub-second or negative times, xattrs, which go out as binary SCHILY.xattr records). That is what
// Go's archive/tar Writer picks for FormatPAX, which containerd's diff writer uses, so the layers
// `bunker save` writes read back the same in Go, GNU tar and our reader. Directories get a trailing
// "/" as GNU tar and containerd write them. The end is two zero blocks, without GNU tar's padding to
// a 10 KiB record (OCI layers do not need it, and it would only change the digest).
import { InvalidArgumentError } from "../errdefs.ts";
import { formatPaxRecord, formatPaxTime, PAX_XATTR_PREFIX } from "./pax.ts";
import { BLOCK_SIZE, FIELD, type FieldName, formatOctal, sealChecksum, type TarEntryType, TYPEFLAG, USTAR_MAGIC, USTAR_VERSION, utf8Encoder } from "./tar-format.ts";
import type { TarHeader } from "./tar.ts";

/** What the writer needs; everything but name and type has a default (0, "", empty). */
export type TarWriteHeader = Partial<TarHeader> & { name: string; type: TarEntryType };

export interface TarWriteEntry {
  header: TarWriteHeader;
  /** A file's content; `header.size` defaults to its length for a Uint8Array and must be given otherwise. */
  body?: Uint8Array | AsyncIterable<Uint8Array>;
}

const END_OF_ARCHIVE = new Uint8Array(BLOCK_SIZE * 2);

/** The header blocks of one entry: a PAX header when needed, then the ustar header. */
export function encodeHeader(input: TarWriteHeader): Uint8Array {
  const size = input.type === "file" ? (input.size ?? 0) : 0;
  const mtimeNs = input.mtimeNs ?? 0n;
  const pax: Uint8Array[] = [];
  const block = new Uint8Array(BLOCK_SIZE);
  const put = (name: FieldName, bytes: Uint8Array) => block.set(bytes.subarray(0, FIELD[name][1] - FIELD[name][0]), FIELD[name][0]);
  const putNumber = (name: FieldName, value: bigint | number, paxKey: string) => {
    const octal = formatOctal(value, FIELD[name][1] - FIELD[name][0]);
    if (octal) put(name, octal);
    else {
      put(name, formatOctal(0, FIELD[name][1] - FIELD[name][0])!);
      pax.push(formatPaxRecord(paxKey, String(value)));
    }
  };

  let name = input.name;
  if (input.type === "dir" && !name.endsWith("/")) name += "/";
  const nameBytes = utf8Encoder.encode(name);
  const split = splitUstarName(nameBytes);
  if (split) {
    put("name", split.name);
    put("prefix", split.prefix);
  } else {
    put("name", nameBytes.subarray(0, 100));
    pax.push(formatPaxRecord("path", name));
  }
  const linkname = input.linkname ?? "";
  const linkBytes = utf8Encoder.encode(linkname);
  put("linkname", linkBytes);
  if (linkBytes.length > 100) pax.push(formatPaxRecord("linkpath", linkname));

  if (!Number.isInteger(size) || size < 0) throw new InvalidArgumentError(`tar entry ${JSON.stringify(input.name)}: invalid size ${size}`);
  put("mode", formatOctal((input.mode ?? (input.type === "dir" ? 0o755 : 0o644)) & 0o7777, 8)!);
  putNumber("uid", input.uid ?? 0, "uid");
  putNumber("gid", input.gid ?? 0, "gid");
  putNumber("size", size, "size");
  const seconds = mtimeNs >= 0n ? mtimeNs / 1_000_000_000n : -((-mtimeNs + 999_999_999n) / 1_000_000_000n);
  const wholeSeconds = seconds * 1_000_000_000n === mtimeNs;
  if (wholeSeconds && formatOctal(seconds, 12)) put("mtime", formatOctal(seconds, 12)!);
  else {
    put("mtime", formatOctal(seconds >= 0n ? seconds : 0n, 12) ?? formatOctal(0, 12)!);
    pax.push(formatPaxRecord("mtime", formatPaxTime(mtimeNs)));
  }
  if (input.atimeNs !== undefined) pax.push(formatPaxRecord("atime", formatPaxTime(input.atimeNs)));
  block[FIELD.typeflag[0]] = TYPEFLAG[input.type].charCodeAt(0);
  put("magic", utf8Encoder.encode(USTAR_MAGIC));
  put("version", utf8Encoder.encode(USTAR_VERSION));
  for (const [field, paxKey] of [["uname", "uname"], ["gname", "gname"]] as const) {
    const text = input[field] ?? "";
    const bytes = utf8Encoder.encode(text);
    if (bytes.length < 32 && /^[\x00-\x7f]*$/.test(text)) put(field, bytes);
    else pax.push(formatPaxRecord(paxKey, text));
  }
  putNumber("devmajor", input.devmajor ?? 0, "SCHILY.devmajor");
  putNumber("devminor", input.devminor ?? 0, "SCHILY.devminor");
  for (const [key, value] of input.xattrs ?? []) pax.push(formatPaxRecord(PAX_XATTR_PREFIX + key, value));
  sealChecksum(block);
  if (pax.length === 0) return block;
  return concat([paxHeader(name, pax), block]);
}

/** ustar's split of a long name at a "/" into prefix (≤155 bytes) and name (≤100), or null. */
function splitUstarName(bytes: Uint8Array): { prefix: Uint8Array; name: Uint8Array } | null {
  if (bytes.length <= 100) return { prefix: new Uint8Array(0), name: bytes };
  if (bytes.length > 256) return null;
  for (let i = Math.min(155, bytes.length - 2); i >= 1; i--) {
    if (bytes[i] === 0x2f && bytes.length - i - 1 <= 100 && bytes.length - i - 1 > 0) {
      return { prefix: bytes.subarray(0, i), name: bytes.subarray(i + 1) };
    }
  }
  return null;
}

function paxHeader(name: string, records: Uint8Array[]): Uint8Array {
  const data = concat(records);
  // Go names the PAX header "<dir>/PaxHeaders.0/<base>"; any ustar-safe name works, readers ignore it.
  const base = name.replace(/\/$/, "").split("/").pop() ?? "";
  const block = new Uint8Array(BLOCK_SIZE);
  block.set(utf8Encoder.encode(`PaxHeaders.0/${base}`).subarray(0, 99), 0);
  block.set(formatOctal(0o644, 8)!, FIELD.mode[0]);
  block.set(formatOctal(0, 8)!, FIELD.uid[0]);
  block.set(formatOctal(0, 8)!, FIELD.gid[0]);
  block.set(formatOctal(data.length, 12)!, FIELD.size[0]);
  block.set(formatOctal(0, 12)!, FIELD.mtime[0]);
  block[FIELD.typeflag[0]] = 0x78; // 'x'
  block.set(utf8Encoder.encode(USTAR_MAGIC), FIELD.magic[0]);
  block.set(utf8Encoder.encode(USTAR_VERSION), FIELD.version[0]);
  sealChecksum(block);
  return concat([block, data, new Uint8Array(padding(data.length))]);
}

function padding(size: number): number {
  return (BLOCK_SIZE - (size % BLOCK_SIZE)) % BLOCK_SIZE;
}

function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function withSize(entry: TarWriteEntry): TarWriteHeader {
  if (entry.header.type !== "file") return entry.header;
  if (entry.body instanceof Uint8Array) {
    if (entry.header.size !== undefined && entry.header.size !== entry.body.length) {
      throw new InvalidArgumentError(`tar entry ${JSON.stringify(entry.header.name)}: size ${entry.header.size} but a body of ${entry.body.length} bytes`);
    }
    return { ...entry.header, size: entry.body.length };
  }
  if (entry.body && entry.header.size === undefined) throw new InvalidArgumentError(`tar entry ${JSON.stringify(entry.header.name)}: a streamed body needs header.size`);
  return entry.header;
}

/** A whole archive in memory (tests, small layers). */
export function tarBytes(entries: Iterable<{ header: TarWriteHeader; body?: Uint8Array }>): Uint8Array<ArrayBuffer> {
  const parts: Uint8Array[] = [];
  for (const entry of entries) {
    const header = withSize(entry);
    parts.push(encodeHeader(header));
    if (entry.body && header.type === "file") parts.push(entry.body, new Uint8Array(padding(entry.body.length)));
  }
  parts.push(END_OF_ARCHIVE);
  return concat(parts);
}

/**
 * A streamed archive: pulled by the consumer, so a slow sink holds back the source (bodies are read
 * only as fast as the archive is). A body shorter or longer than its header.size is an error, since
 * every later header would land at the wrong offset.
 */
export function tarStream(entries: Iterable<TarWriteEntry> | AsyncIterable<TarWriteEntry>): ReadableStream<Uint8Array> {
  async function* generate(): AsyncGenerator<Uint8Array> {
    for await (const entry of entries) {
      const header = withSize(entry);
      yield encodeHeader(header);
      if (header.type !== "file" || !entry.body) {
        if ((header.size ?? 0) > 0 && header.type === "file") throw new InvalidArgumentError(`tar entry ${JSON.stringify(header.name)}: size ${header.size} but no body`);
        continue;
      }
      let written = 0;
      const size = header.size ?? 0;
      const chunks = entry.body instanceof Uint8Array ? [entry.body] : entry.body;
      for await (const chunk of chunks) {
        written += chunk.length;
        if (written > size) throw new InvalidArgumentError(`tar entry ${JSON.stringify(header.name)}: body longer than its size ${size}`);
        if (chunk.length > 0) yield chunk;
      }
      if (written !== size) throw new InvalidArgumentError(`tar entry ${JSON.stringify(header.name)}: body of ${written} bytes, size says ${size}`);
      const pad = padding(size);
      if (pad) yield new Uint8Array(pad);
    }
    yield END_OF_ARCHIVE;
  }
  const iterator = generate();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await iterator.next();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    async cancel(reason) {
      await iterator.return?.(reason);
    },
  });
}
