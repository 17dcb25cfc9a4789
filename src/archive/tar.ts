// A streaming tar reader over a ReadableStream<Uint8Array>, written by hand because no npm library
// reads OCI layers correctly (`tar` drops xattrs and refuses devices, tar-stream decodes PAX values as
// UTF-8, Bun.Archive loses hardlinks, devices and xattrs). It follows Go's archive/tar `reader.go`,
// which containerd applies layers with: ustar (prefix + name), GNU and old-GNU/V7 headers, GNU long
// names and links ('L'/'K'), PAX per-entry ('x') and global ('g') records kept as bytes, base-256
// numbers, the signed or unsigned checksum, and the end: two zero blocks, or EOF exactly at a header
// boundary; EOF anywhere else is "truncated tar archive".
//
// Nothing is buffered beyond the stream's own chunks: an entry's body is handed out as views of them,
// so a 100 MB layer streams in constant memory. Where Go differs from POSIX we say so: global
// records apply to every following entry (Go hands them to the caller instead), except path,
// linkpath and size, which only make sense per entry. Sparse files ('S', GNU.sparse.*) are refused
// with a clear error; image builders do not write them.
import { InvalidArgumentError } from "../errdefs.ts";
import {
  asciiField,
  BLOCK_SIZE,
  checksums,
  decodeName,
  field,
  FIELD,
  GNU_MAGIC,
  isZeroBlock,
  MAX_METADATA_BYTES,
  parseNumeric,
  type TarEntryType,
  toBoundedNumber,
  USTAR_MAGIC,
  USTAR_VERSION,
} from "./tar-format.ts";
import { decodeLibarchiveXattr, LIBARCHIVE_XATTR_PREFIX, PAX_XATTR_PREFIX, parsePaxRecords, paxInteger, paxText, paxTimeNs, type PaxRecords } from "./pax.ts";

export type { TarEntryType } from "./tar-format.ts";

export interface TarHeader {
  /** The name as the archive spells it (a directory may end in "/"); the applier cleans it. */
  name: string;
  type: TarEntryType;
  /** Permission bits with setuid, setgid and sticky (0o7777). */
  mode: number;
  uid: number;
  gid: number;
  uname?: string;
  gname?: string;
  /** Body length; always 0 for types that carry no data (as Go's reader does). */
  size: number;
  mtimeNs: bigint;
  atimeNs?: bigint;
  /** Symlink target, or the archive path a hardlink points to; "" otherwise. */
  linkname: string;
  devmajor: number;
  devminor: number;
  /** SCHILY.xattr.* and LIBARCHIVE.xattr.* records, values raw. */
  xattrs: Map<string, Uint8Array>;
}

export interface TarEntry {
  header: TarHeader;
  /** The body as views of the stream's chunks; what is left unread is skipped by the next next(). */
  body: AsyncIterable<Uint8Array>;
}

export interface TarReaderOptions {
  /** Sees every chunk pulled from the stream, in order (the applier hashes the diff ID here). */
  onChunk?: (chunk: Uint8Array) => void;
}

const HEADER_ONLY: ReadonlySet<TarEntryType> = new Set(["dir", "symlink", "hardlink", "char", "block", "fifo"]);

const ENTRY_TYPES: Record<string, TarEntryType> = {
  "0": "file", "\0": "file", "7": "file", "": "file",
  "1": "hardlink", "2": "symlink", "3": "char", "4": "block", "5": "dir", "6": "fifo",
};

function truncated(): InvalidArgumentError {
  return new InvalidArgumentError("truncated tar archive");
}

/** Pulls the stream chunk by chunk and hands out exact byte counts without copying where it can. */
class ChunkSource {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private chunk: Uint8Array = new Uint8Array(0);
  private offset = 0;
  private ended = false;
  /** Every byte pulled from the stream, consumed or not. */
  pulled = 0;

  constructor(stream: ReadableStream<Uint8Array>, private readonly onChunk?: (chunk: Uint8Array) => void) {
    // Bun's lib types mix node:stream/web's reader into the global one; the object is the same.
    this.reader = stream.getReader() as unknown as ReadableStreamDefaultReader<Uint8Array>;
  }

  private async fill(): Promise<boolean> {
    while (this.offset >= this.chunk.length) {
      if (this.ended) return false;
      const { done, value } = await this.reader.read();
      if (done) {
        this.ended = true;
        return false;
      }
      if (value.length === 0) continue;
      this.onChunk?.(value);
      this.pulled += value.length;
      this.chunk = value;
      this.offset = 0;
    }
    return true;
  }

  /** Between 1 and `max` bytes, or null at the end of the stream. */
  async readSome(max: number): Promise<Uint8Array | null> {
    if (!(await this.fill())) return null;
    const take = Math.min(max, this.chunk.length - this.offset);
    const out = this.chunk.subarray(this.offset, this.offset + take);
    this.offset += take;
    return out;
  }

  /** Exactly `length` bytes; null when the stream ends before the first one, an error mid-way. */
  async readExact(length: number): Promise<Uint8Array | null> {
    if (!(await this.fill())) return null;
    if (this.chunk.length - this.offset >= length) {
      const out = this.chunk.subarray(this.offset, this.offset + length);
      this.offset += length;
      return out;
    }
    const out = new Uint8Array(length);
    let filled = 0;
    while (filled < length) {
      const part = await this.readSome(length - filled);
      if (!part) throw truncated();
      out.set(part, filled);
      filled += part.length;
    }
    return out;
  }

  async skip(length: number): Promise<void> {
    let left = length;
    while (left > 0) {
      const part = await this.readSome(left);
      if (!part) throw truncated();
      left -= part.length;
    }
  }

  /** Reads the stream to its end (trailing padding after the end marker belongs to the diff ID). */
  async drain(): Promise<void> {
    this.offset = this.chunk.length;
    while (await this.fill()) this.offset = this.chunk.length;
  }

  async cancel(reason?: unknown): Promise<void> {
    this.ended = true;
    await this.reader.cancel(reason).catch(() => {});
  }
}

/** Per-entry state the metadata headers ('x', 'L', 'K') build up before the real header arrives. */
interface Pending {
  pax?: PaxRecords;
  longName?: string;
  longLink?: string;
}

export class TarReader {
  private readonly source: ChunkSource;
  private readonly globals: PaxRecords = new Map();
  private bodyLeft = 0;
  private paddingLeft = 0;
  private entrySeq = 0;
  private finished = false;

  constructor(stream: ReadableStream<Uint8Array>, options: TarReaderOptions = {}) {
    this.source = new ChunkSource(stream, options.onChunk);
  }

  /** Bytes pulled from the stream so far (after drain(): the whole uncompressed stream). */
  get bytesRead(): number {
    return this.source.pulled;
  }

  /** The next entry, or null at the end of the archive. */
  async next(): Promise<TarEntry | null> {
    if (this.finished) return null;
    this.entrySeq++;
    await this.source.skip(this.bodyLeft + this.paddingLeft);
    this.bodyLeft = this.paddingLeft = 0;
    const pending: Pending = {};
    for (;;) {
      const block = await this.readHeaderBlock(pending);
      if (!block) return null;
      const typeflag = String.fromCharCode(block[FIELD.typeflag[0]]!);
      const size = toBoundedNumber(parseNumeric(field(block, "size"), "size"), "size");
      switch (typeflag) {
        case "x":
          pending.pax = new Map([...(pending.pax ?? []), ...parsePaxRecords(await this.readMetadata(size, "PAX header"))]);
          continue;
        case "g":
          for (const [key, value] of parsePaxRecords(await this.readMetadata(size, "PAX global header"))) {
            if (key === "path" || key === "linkpath" || key === "size") continue;
            this.globals.set(key, value);
          }
          continue;
        case "L":
          pending.longName = decodeName(await this.readMetadata(size, "GNU long name"), "GNU long name");
          continue;
        case "K":
          pending.longLink = decodeName(await this.readMetadata(size, "GNU long link name"), "GNU long link name");
          continue;
        case "V": // a GNU volume label names the archive, not a file
          await this.source.skip(padded(size));
          continue;
      }
      const header = this.buildHeader(block, typeflag, size, pending);
      this.bodyLeft = header.size;
      this.paddingLeft = padded(header.size) - header.size;
      return { header, body: this.body(this.entrySeq) };
    }
  }

  /** Reads the rest of the stream after the end marker; returns the total bytes read. */
  async drain(): Promise<number> {
    this.finished = true;
    await this.source.drain();
    return this.source.pulled;
  }

  /** Stops reading and releases the stream (after an error, or when the caller gives up). */
  async cancel(reason?: unknown): Promise<void> {
    this.finished = true;
    await this.source.cancel(reason);
  }

  private async *body(seq: number): AsyncGenerator<Uint8Array> {
    while (this.bodyLeft > 0) {
      if (seq !== this.entrySeq) throw new InvalidArgumentError("tar entry body read after the next entry was requested");
      const chunk = await this.source.readSome(this.bodyLeft);
      if (!chunk) throw truncated();
      this.bodyLeft -= chunk.length;
      yield chunk;
    }
  }

  /** A validated header block, or null at the end of the archive. */
  private async readHeaderBlock(pending: Pending): Promise<Uint8Array | null> {
    const block = await this.source.readExact(BLOCK_SIZE);
    const midEntry = pending.pax !== undefined || pending.longName !== undefined || pending.longLink !== undefined;
    if (!block || isZeroBlock(block)) {
      if (midEntry) throw new InvalidArgumentError("truncated tar archive: an extended header is not followed by its entry");
      if (block) {
        // The end is two zero blocks; a lone one at EOF is tolerated as Go does.
        const second = await this.source.readExact(BLOCK_SIZE);
        if (second && !isZeroBlock(second)) throw new InvalidArgumentError("invalid tar header: data after a zero block");
      }
      this.finished = true;
      return null;
    }
    const stored = parseNumeric(field(block, "checksum"), "checksum");
    const { unsigned, signed } = checksums(block);
    if (stored !== BigInt(unsigned) && stored !== BigInt(signed)) {
      throw new InvalidArgumentError(`invalid tar header: checksum mismatch (stored ${stored}, computed ${unsigned})`);
    }
    return block;
  }

  private async readMetadata(size: number, what: string): Promise<Uint8Array> {
    if (size > MAX_METADATA_BYTES) throw new InvalidArgumentError(`invalid tar archive: ${what} of ${size} bytes exceeds the ${MAX_METADATA_BYTES}-byte limit`);
    const data = size === 0 ? new Uint8Array(0) : await this.source.readExact(size);
    if (!data) throw truncated();
    await this.source.skip(padded(size) - size);
    return data.slice(); // the view may belong to a chunk the next read replaces
  }

  private buildHeader(block: Uint8Array, typeflag: string, size: number, pending: Pending): TarHeader {
    const magic = asciiField(field(block, "magic"));
    const version = asciiField(field(block, "version"));
    const isUstar = magic === USTAR_MAGIC.slice(0, 5) && version === USTAR_VERSION;
    const isGnu = field(block, "magic").every((byte, i) => byte === GNU_MAGIC.charCodeAt(i)) && block[FIELD.version[0]] === 0x20;

    let name = decodeName(field(block, "name"), "name");
    if (isUstar) {
      const star = asciiField(field(block, "starTrailer")) === "tar";
      const prefix = decodeName(field(block, star ? "starPrefix" : "prefix"), "name prefix");
      if (prefix) name = `${prefix}/${name}`;
    }
    let type = ENTRY_TYPES[typeflag];
    if (type === undefined) {
      const what = typeflag === "S" ? "GNU sparse file" : `type ${JSON.stringify(typeflag)}`;
      throw new InvalidArgumentError(`unsupported tar entry ${JSON.stringify(name)}: ${what}`);
    }
    // V7 archives mark directories only by a trailing slash.
    if (type === "file" && (typeflag === "\0" || typeflag === "") && name.endsWith("/")) type = "dir";

    const hasExtendedFields = isUstar || isGnu;
    const header: TarHeader = {
      name,
      type,
      mode: Number(parseNumeric(field(block, "mode"), "mode") & 0o7777n),
      uid: toBoundedNumber(parseNumeric(field(block, "uid"), "uid"), "uid"),
      gid: toBoundedNumber(parseNumeric(field(block, "gid"), "gid"), "gid"),
      size,
      mtimeNs: parseNumeric(field(block, "mtime"), "mtime") * 1_000_000_000n,
      linkname: decodeName(field(block, "linkname"), "link name"),
      devmajor: hasExtendedFields ? toBoundedNumber(parseNumeric(field(block, "devmajor"), "devmajor"), "devmajor") : 0,
      devminor: hasExtendedFields ? toBoundedNumber(parseNumeric(field(block, "devminor"), "devminor"), "devminor") : 0,
      xattrs: new Map(),
    };
    if (hasExtendedFields) {
      const uname = decodeName(field(block, "uname"), "user name");
      const gname = decodeName(field(block, "gname"), "group name");
      if (uname) header.uname = uname;
      if (gname) header.gname = gname;
    }
    if (isGnu && block[FIELD.gnuAtime[0]] !== 0) header.atimeNs = parseNumeric(field(block, "gnuAtime"), "atime") * 1_000_000_000n;

    applyPax(header, this.globals);
    if (pending.pax) applyPax(header, pending.pax);
    if (pending.longName !== undefined) header.name = pending.longName;
    if (pending.longLink !== undefined) header.linkname = pending.longLink;
    if (header.name === "") throw new InvalidArgumentError("invalid tar header: empty entry name");
    if (HEADER_ONLY.has(header.type)) header.size = 0;
    return header;
  }
}

function padded(size: number): number {
  return Math.ceil(size / BLOCK_SIZE) * BLOCK_SIZE;
}

/** Overrides header fields with PAX records; an empty value means "use the header's own field". */
function applyPax(header: TarHeader, records: PaxRecords): void {
  for (const [key, value] of records) {
    if (key.startsWith(PAX_XATTR_PREFIX)) {
      header.xattrs.set(key.slice(PAX_XATTR_PREFIX.length), value);
      continue;
    }
    if (key.startsWith(LIBARCHIVE_XATTR_PREFIX)) {
      const xattr = decodeLibarchiveXattr(key.slice(LIBARCHIVE_XATTR_PREFIX.length), value);
      header.xattrs.set(xattr.name, xattr.value);
      continue;
    }
    if (key.startsWith("GNU.sparse.")) throw new InvalidArgumentError(`unsupported tar entry ${JSON.stringify(header.name)}: GNU sparse file`);
    if (value.length === 0) continue;
    switch (key) {
      case "path": header.name = paxPath(value, key); break;
      case "linkpath": header.linkname = paxPath(value, key); break;
      case "size": header.size = paxInteger(value, key); break;
      case "uid": header.uid = paxInteger(value, key); break;
      case "gid": header.gid = paxInteger(value, key); break;
      case "uname": header.uname = paxText(value, key); break;
      case "gname": header.gname = paxText(value, key); break;
      case "mtime": header.mtimeNs = paxTimeNs(value, key); break;
      case "atime": header.atimeNs = paxTimeNs(value, key); break;
      case "SCHILY.devmajor": header.devmajor = paxInteger(value, key); break;
      case "SCHILY.devminor": header.devminor = paxInteger(value, key); break;
      // ctime, comment, charset, hdrcharset and vendor records change nothing a layer applies.
    }
  }
}

/** A PAX path cannot hold a NUL (no path can); the header fields stop at one, a PAX value would not. */
function paxPath(value: Uint8Array, key: string): string {
  if (value.includes(0)) throw new InvalidArgumentError(`invalid tar PAX header: ${key} contains a NUL byte`);
  return paxText(value, key);
}
