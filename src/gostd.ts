// The few pieces of Go's standard library whose exact semantics the CRI helpers depend on:
// path.Match (annotation globs), path.Clean/Join (mount and state paths), strconv.Quote (%q in
// label filters) and strconv.ParseInt (numeric image users). Go works on UTF-8 bytes, so these do too.
import { InvalidArgumentError } from "./errdefs.ts";

export class BadPatternError extends InvalidArgumentError {
  constructor(pattern: string) {
    super(`syntax error in pattern ${JSON.stringify(pattern)}`);
  }
}

const encoder = new TextEncoder();
const RUNE_ERROR = 0xfffd;

/** utf8.DecodeRune: the rune at b[i] and its width; (RuneError, 1) for an invalid or empty sequence. */
function decodeRune(b: Uint8Array, i: number): [number, number] {
  const c0 = b[i];
  if (c0 === undefined) return [RUNE_ERROR, 0];
  if (c0 < 0x80) return [c0, 1];
  const cont = (k: number): number => {
    const c = b[i + k];
    return c !== undefined && (c & 0xc0) === 0x80 ? c & 0x3f : -1;
  };
  if (c0 >= 0xc2 && c0 <= 0xdf) {
    const c1 = cont(1);
    return c1 < 0 ? [RUNE_ERROR, 1] : [((c0 & 0x1f) << 6) | c1, 2];
  }
  if (c0 >= 0xe0 && c0 <= 0xef) {
    const c1 = cont(1), c2 = cont(2);
    if (c1 < 0 || c2 < 0) return [RUNE_ERROR, 1];
    const r = ((c0 & 0x0f) << 12) | (c1 << 6) | c2;
    if (r < 0x800 || (r >= 0xd800 && r <= 0xdfff)) return [RUNE_ERROR, 1];
    return [r, 3];
  }
  if (c0 >= 0xf0 && c0 <= 0xf4) {
    const c1 = cont(1), c2 = cont(2), c3 = cont(3);
    if (c1 < 0 || c2 < 0 || c3 < 0) return [RUNE_ERROR, 1];
    const r = ((c0 & 0x07) << 18) | (c1 << 12) | (c2 << 6) | c3;
    if (r < 0x10000 || r > 0x10ffff) return [RUNE_ERROR, 1];
    return [r, 4];
  }
  return [RUNE_ERROR, 1];
}

type Bytes = Uint8Array;
const SLASH = 0x2f, STAR = 0x2a, QUESTION = 0x3f, BACKSLASH = 0x5c, LBRACK = 0x5b, RBRACK = 0x5d;
const CARET = 0x5e, DASH = 0x2d;

/**
 * Go's path.Match: `*` any run of non-`/` bytes, `?` one non-`/` rune, `[...]`/`[^...]` a rune class
 * with ranges, `\` escapes. The whole name must match. Malformed patterns throw BadPatternError,
 * and (as in Go) they do so even when the name already failed to match.
 */
export function pathMatch(pattern: string, name: string): boolean {
  let p: Bytes = encoder.encode(pattern);
  let n: Bytes = encoder.encode(name);
  pattern: while (p.length > 0) {
    const { star, chunk, rest } = scanChunk(p);
    p = rest;
    if (star && chunk.length === 0) return !n.includes(SLASH);
    const first = matchChunk(chunk, n, pattern);
    if (first !== null && (first.length === 0 || p.length > 0)) {
      n = first;
      continue;
    }
    if (star) {
      for (let i = 0; i < n.length && n[i] !== SLASH; i++) {
        const t = matchChunk(chunk, n.subarray(i + 1), pattern);
        if (t !== null) {
          if (p.length === 0 && t.length > 0) continue;
          n = t;
          continue pattern;
        }
      }
    }
    // Before answering false, make sure the rest of the pattern is well formed.
    while (p.length > 0) {
      const next = scanChunk(p);
      p = next.rest;
      matchChunk(next.chunk, new Uint8Array(0), pattern);
    }
    return false;
  }
  return n.length === 0;
}

function scanChunk(p: Bytes): { star: boolean; chunk: Bytes; rest: Bytes } {
  let star = false;
  while (p.length > 0 && p[0] === STAR) {
    p = p.subarray(1);
    star = true;
  }
  let inRange = false;
  for (let i = 0; i < p.length; i++) {
    switch (p[i]) {
      case BACKSLASH:
        if (i + 1 < p.length) i++;
        break;
      case LBRACK:
        inRange = true;
        break;
      case RBRACK:
        inRange = false;
        break;
      case STAR:
        if (!inRange) return { star, chunk: p.subarray(0, i), rest: p.subarray(i) };
    }
  }
  return { star, chunk: p, rest: p.subarray(p.length) };
}

/** The rest of s after chunk matched its beginning, or null. Keeps parsing after a mismatch to report bad syntax. */
function matchChunk(chunk: Bytes, s: Bytes, pattern: string): Bytes | null {
  let failed = false;
  while (chunk.length > 0) {
    if (!failed && s.length === 0) failed = true;
    const c = chunk[0];
    if (c === LBRACK) {
      let r = 0;
      if (!failed) {
        const [rune, width] = decodeRune(s, 0);
        r = rune;
        s = s.subarray(width);
      }
      chunk = chunk.subarray(1);
      let negated = false;
      if (chunk.length > 0 && chunk[0] === CARET) {
        negated = true;
        chunk = chunk.subarray(1);
      }
      let match = false;
      let nrange = 0;
      for (;;) {
        if (chunk.length > 0 && chunk[0] === RBRACK && nrange > 0) {
          chunk = chunk.subarray(1);
          break;
        }
        const lo = getEsc(chunk, pattern);
        chunk = lo.rest;
        let hi = lo.rune;
        if (chunk[0] === DASH) {
          const h = getEsc(chunk.subarray(1), pattern);
          chunk = h.rest;
          hi = h.rune;
        }
        if (lo.rune <= r && r <= hi) match = true;
        nrange++;
      }
      if (match === negated) failed = true;
    } else if (c === QUESTION) {
      if (!failed) {
        if (s[0] === SLASH) failed = true;
        s = s.subarray(decodeRune(s, 0)[1]);
      }
      chunk = chunk.subarray(1);
    } else {
      if (c === BACKSLASH) {
        chunk = chunk.subarray(1);
        if (chunk.length === 0) throw new BadPatternError(pattern);
      }
      if (!failed) {
        if (chunk[0] !== s[0]) failed = true;
        s = s.subarray(1);
      }
      chunk = chunk.subarray(1);
    }
  }
  return failed ? null : s;
}

/** A possibly escaped rune of a character class; a class may not end right after it. */
function getEsc(chunk: Bytes, pattern: string): { rune: number; rest: Bytes } {
  if (chunk.length === 0 || chunk[0] === DASH || chunk[0] === RBRACK) throw new BadPatternError(pattern);
  if (chunk[0] === BACKSLASH) {
    chunk = chunk.subarray(1);
    if (chunk.length === 0) throw new BadPatternError(pattern);
  }
  const [rune, width] = decodeRune(chunk, 0);
  if (rune === RUNE_ERROR && width === 1) throw new BadPatternError(pattern);
  const rest = chunk.subarray(width);
  if (rest.length === 0) throw new BadPatternError(pattern);
  return { rune, rest };
}

export { goClean as pathClean, goJoin as pathJoin } from "./gopath.ts";

const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;
const hex = (v: number, width: number): string => v.toString(16).padStart(width, "0");

/** Go's strconv.Quote (what %q prints for a string). A lone surrogate stands for its invalid UTF-8 bytes. */
export function goQuote(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; ) {
    const r = s.codePointAt(i)!;
    const width = r > 0xffff ? 2 : 1;
    i += width;
    if (r >= 0xd800 && r <= 0xdfff) {
      // WTF-8 bytes of the surrogate: Go sees three invalid bytes and prints each as \x.
      out += `\\x${hex(0xe0 | (r >> 12), 2)}\\x${hex(0x80 | ((r >> 6) & 0x3f), 2)}\\x${hex(0x80 | (r & 0x3f), 2)}`;
      continue;
    }
    const ch = String.fromCodePoint(r);
    if (ch === '"' || ch === "\\") out += "\\" + ch;
    else if (r === 0x20 || PRINTABLE.test(ch)) out += ch;
    else if (r === 0x07) out += "\\a";
    else if (r === 0x08) out += "\\b";
    else if (r === 0x0c) out += "\\f";
    else if (r === 0x0a) out += "\\n";
    else if (r === 0x0d) out += "\\r";
    else if (r === 0x09) out += "\\t";
    else if (r === 0x0b) out += "\\v";
    else if (r < 0x20 || r === 0x7f) out += `\\x${hex(r, 2)}`;
    else if (r < 0x10000) out += `\\u${hex(r, 4)}`;
    else out += `\\U${hex(r, 8)}`;
  }
  return out + '"';
}

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;

/** strconv.ParseInt(s, 10, 64): optional sign then decimal digits, within int64; null when Go would error. */
export function parseInt64(s: string): bigint | null {
  if (!/^[+-]?[0-9]+$/.test(s)) return null;
  const v = BigInt(s);
  return v < INT64_MIN || v > INT64_MAX ? null : v;
}

/** Byte length of s in UTF-8, which is what Go's len() measures. */
export function utf8Length(s: string): number {
  return encoder.encode(s).length;
}
