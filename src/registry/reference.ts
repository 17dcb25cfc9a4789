// Image references as docker/distribution's reference package (containerd's reference/docker copy)
// parses and normalises them: `busybox` is docker.io/library/busybox:latest, a tag and a digest may
// both be given, and ParseDockerRef keeps only the digest then. Go's regular expressions run in
// linear time; the patterns below accept the same language but are written without nested
// ambiguous repetition so that JavaScript's backtracking engine cannot blow up on hostile input.
import { InvalidArgumentError } from "../errdefs.ts";

export const NAME_TOTAL_LENGTH_MAX = 255;
export const ErrReferenceInvalidFormat = "invalid reference format";
export const ErrTagInvalidFormat = "invalid tag format";
export const ErrDigestInvalidFormat = "invalid digest format";
export const ErrNameContainsUppercase = "repository name must be lowercase";
export const ErrNameEmpty = "repository name must have at least one component";
export const ErrNameTooLong = `repository name must not be more than ${NAME_TOTAL_LENGTH_MAX} characters`;
export const ErrNameNotCanonical = "repository name must be canonical";
export const ErrChecksumInvalidFormat = "invalid checksum digest format";
export const ErrChecksumInvalidLength = "invalid checksum digest length";
export const ErrChecksumUnsupported = "unsupported digest algorithm";

/** A reference the parser refused; `reason` is the Go error text, the message adds the input. */
export class InvalidReferenceError extends InvalidArgumentError {
  constructor(readonly reason: string, readonly input: string) {
    super(`${reason}: ${JSON.stringify(input)}`);
  }
}

// Separators may not be empty here (Go's `[-]*` may): an empty separator only joins two
// alphanumeric runs, which `[a-z0-9]+` already covers.
const NAME_COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
const DOMAIN_COMPONENT = "[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?";
const DOMAIN = `${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*(?::[0-9]+)?`;
const TAG = "[\\w][\\w.-]{0,127}";
const DIGEST = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}";
const NAME = `(?:${DOMAIN}/)?${NAME_COMPONENT}(?:/${NAME_COMPONENT})*`;

const referenceRegexp = new RegExp(`^(${NAME})(?::(${TAG}))?(?:@(${DIGEST}))?$`);
const anchoredNameRegexp = new RegExp(`^(?:(${DOMAIN})/)?(${NAME_COMPONENT}(?:/${NAME_COMPONENT})*)$`);
const anchoredTagRegexp = new RegExp(`^${TAG}$`);
const anchoredDigestRegexp = new RegExp(`^${DIGEST}$`);
const anchoredIdentifierRegexp = /^[a-f0-9]{64}$/;
// go-digest's own, looser grammar, used to tell an unknown algorithm from garbage.
const goDigestRegexp = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
// Hex lengths of the algorithms containerd links in; their hex must be lowercase.
const digestHexLength = new Map([["sha256", 64], ["sha384", 96], ["sha512", 128]]);

/** go-digest's Digest.Validate: the reason text when invalid, null when valid. */
function digestProblem(d: string): string | null {
  const i = d.indexOf(":");
  if (i <= 0 || i + 1 === d.length) return ErrChecksumInvalidFormat;
  const algorithm = d.slice(0, i), encoded = d.slice(i + 1);
  const length = digestHexLength.get(algorithm);
  if (length === undefined) return goDigestRegexp.test(d) ? ErrChecksumUnsupported : ErrChecksumInvalidFormat;
  if (encoded.length !== length) return ErrChecksumInvalidLength;
  return /^[a-f0-9]+$/.test(encoded) ? null : ErrChecksumInvalidFormat;
}

/** Validates a digest string (`sha256:<64 lowercase hex>`, sha384, sha512) like go-digest's Parse. */
export function parseDigest(d: string): string {
  const problem = digestProblem(d);
  if (problem !== null) throw new InvalidReferenceError(problem, d);
  return d;
}

/**
 * One parsed reference. `named` is false only for a bare digest (ParseAnyReference of an id or a
 * digest). Go's interfaces map to: Named = named; Tagged = tag !== ""; NamedTagged = named && tag;
 * Canonical = named && digest.
 */
export class Reference {
  constructor(
    readonly domain: string,
    readonly path: string,
    readonly tag = "",
    readonly digest = "",
    readonly named = true,
  ) {}

  get name(): string {
    return this.domain === "" ? this.path : `${this.domain}/${this.path}`;
  }

  get isTagged(): boolean {
    return this.tag !== "";
  }

  get isCanonical(): boolean {
    return this.named && this.digest !== "";
  }

  get isNameOnly(): boolean {
    return this.named && this.tag === "" && this.digest === "";
  }

  toString(): string {
    if (!this.named) return this.digest;
    let s = this.name;
    if (this.tag !== "") s += `:${this.tag}`;
    if (this.digest !== "") s += `@${this.digest}`;
    return s;
  }
}

function splitDomain(name: string): [string, string] {
  const m = anchoredNameRegexp.exec(name);
  if (m === null) return ["", name];
  return [m[1] ?? "", m[2] ?? ""];
}

/** reference.Parse: syntax only, no normalisation (`foo/bar` keeps `foo` as its domain). */
export function parseReference(s: string): Reference {
  const m = referenceRegexp.exec(s);
  if (m === null) {
    if (s === "") throw new InvalidReferenceError(ErrNameEmpty, s);
    if (referenceRegexp.test(s.toLowerCase())) throw new InvalidReferenceError(ErrNameContainsUppercase, s);
    throw new InvalidReferenceError(ErrReferenceInvalidFormat, s);
  }
  const name = m[1] ?? "";
  if (name.length > NAME_TOTAL_LENGTH_MAX) throw new InvalidReferenceError(ErrNameTooLong, s);
  const [domain, path] = splitDomain(name);
  const digest = m[3] ?? "";
  if (digest !== "") parseDigest(digest);
  return new Reference(domain, path, m[2] ?? "", digest);
}

export const DEFAULT_DOMAIN = "docker.io";
const LEGACY_DEFAULT_DOMAIN = "index.docker.io";
const OFFICIAL_REPO_NAME = "library";
export const DEFAULT_TAG = "latest";

function splitDockerDomain(name: string): [string, string] {
  const i = name.indexOf("/");
  let domain: string, remainder: string;
  if (i === -1 || (!/[.:]/.test(name.slice(0, i)) && name.slice(0, i) !== "localhost")) {
    [domain, remainder] = [DEFAULT_DOMAIN, name];
  } else {
    [domain, remainder] = [name.slice(0, i), name.slice(i + 1)];
  }
  if (domain === LEGACY_DEFAULT_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !remainder.includes("/")) remainder = `${OFFICIAL_REPO_NAME}/${remainder}`;
  return [domain, remainder];
}

/** reference.ParseNormalizedNamed: adds docker.io and library/ as Docker's UI does; no default tag. */
export function parseNormalizedNamed(s: string): Reference {
  if (anchoredIdentifierRegexp.test(s)) {
    throw new InvalidReferenceError(`invalid repository name (${s}), cannot specify 64-byte hexadecimal strings`, s);
  }
  const [domain, remainder] = splitDockerDomain(s);
  const tagSep = remainder.indexOf(":");
  const remoteName = tagSep > -1 ? remainder.slice(0, tagSep) : remainder;
  if (remoteName.toLowerCase() !== remoteName) {
    throw new InvalidReferenceError(`${ErrReferenceInvalidFormat}: ${ErrNameContainsUppercase}`, s);
  }
  return parseReference(`${domain}/${remainder}`);
}

/** reference.ParseNamed: the input must already be in canonical (normalised) form. */
export function parseNamed(s: string): Reference {
  const named = parseNormalizedNamed(s);
  if (named.toString() !== s) throw new InvalidReferenceError(ErrNameNotCanonical, s);
  return named;
}

/** reference.WithName. */
export function withName(name: string): Reference {
  if (name.length > NAME_TOTAL_LENGTH_MAX) throw new InvalidReferenceError(ErrNameTooLong, name);
  const m = anchoredNameRegexp.exec(name);
  if (m === null) throw new InvalidReferenceError(ErrReferenceInvalidFormat, name);
  return new Reference(m[1] ?? "", m[2] ?? "");
}

/** reference.WithTag: keeps the digest of a canonical name. */
export function withTag(name: Reference, tag: string): Reference {
  if (!anchoredTagRegexp.test(tag)) throw new InvalidReferenceError(ErrTagInvalidFormat, tag);
  return new Reference(name.domain, name.path, tag, name.isCanonical ? name.digest : "");
}

/** reference.WithDigest: keeps the tag. */
export function withDigest(name: Reference, digest: string): Reference {
  if (!anchoredDigestRegexp.test(digest)) throw new InvalidReferenceError(ErrDigestInvalidFormat, digest);
  return new Reference(name.domain, name.path, name.tag, digest);
}

/** reference.TrimNamed: the name alone. */
export function trimNamed(ref: Reference): Reference {
  return new Reference(ref.domain, ref.path);
}

/** reference.TagNameOnly: `:latest` when there is neither tag nor digest. */
export function tagNameOnly(ref: Reference): Reference {
  return ref.isNameOnly ? withTag(ref, DEFAULT_TAG) : ref;
}

/**
 * reference.ParseDockerRef: normalised, and either tagged or digested: a reference with both
 * keeps only the digest; one with neither gets `:latest`.
 */
export function parseDockerRef(ref: string): Reference {
  const named = parseNormalizedNamed(ref);
  if (named.isTagged && named.isCanonical) return withDigest(withName(named.name), named.digest);
  return tagNameOnly(named);
}

/** reference.ParseAnyReference: a 64-hex id or a digest becomes a bare digest, else a normalised name. */
export function parseAnyReference(ref: string): Reference {
  if (anchoredIdentifierRegexp.test(ref)) return new Reference("", "", "", `sha256:${ref}`, false);
  if (digestProblem(ref) === null) return new Reference("", "", "", ref, false);
  return parseNormalizedNamed(ref);
}

function familiarize(ref: Reference): Reference {
  if (!ref.named || ref.domain !== DEFAULT_DOMAIN) return ref;
  const parts = ref.path.split("/");
  const path = parts.length === 2 && parts[0] === OFFICIAL_REPO_NAME ? parts[1]! : ref.path;
  return new Reference("", path, ref.tag, ref.digest);
}

/** reference.FamiliarName: `docker.io/library/busybox` -> `busybox`. */
export function familiarName(ref: Reference): string {
  return familiarize(ref).name;
}

/** reference.FamiliarString: the familiar name with its tag and digest. */
export function familiarString(ref: Reference): string {
  return familiarize(ref).toString();
}
