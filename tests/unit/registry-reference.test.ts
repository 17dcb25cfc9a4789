import { describe, expect, test } from "bun:test";
import { InvalidArgumentError } from "../../src/errdefs.ts";
import {
  ErrChecksumInvalidFormat,
  ErrChecksumInvalidLength,
  ErrChecksumUnsupported,
  ErrNameContainsUppercase,
  ErrNameEmpty,
  ErrNameNotCanonical,
  ErrNameTooLong,
  ErrReferenceInvalidFormat,
  ErrTagInvalidFormat,
  InvalidReferenceError,
  type Reference,
  familiarName,
  familiarString,
  parseAnyReference,
  parseDockerRef,
  parseNamed,
  parseNormalizedNamed,
  parseReference,
  withDigest,
  withName,
  withTag,
} from "../../src/registry/reference.ts";

const HEX = "e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582";
const SHA = `sha256:${HEX}`;

function reasonOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidReferenceError);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    return (err as InvalidReferenceError).reason;
  }
  throw new Error("expected the reference to be refused");
}

describe("parseDockerRef (normalise to a tagged or digested name)", () => {
  test.each([
    ["busybox", "docker.io/library/busybox:latest"],
    ["busybox:1.36", "docker.io/library/busybox:1.36"],
    ["library/busybox", "docker.io/library/busybox:latest"],
    ["foo/bar", "docker.io/foo/bar:latest"],
    ["foo/bar/baz:v1", "docker.io/foo/bar/baz:v1"],
    ["docker.io/busybox", "docker.io/library/busybox:latest"],
    ["index.docker.io/library/busybox:latest", "docker.io/library/busybox:latest"],
    ["index.docker.io/foo/bar", "docker.io/foo/bar:latest"],
    ["gcr.io/foo/bar", "gcr.io/foo/bar:latest"],
    ["localhost/busybox", "localhost/busybox:latest"],
    ["localhost:5000/busybox", "localhost:5000/busybox:latest"],
    ["registry.example.com:5000/team/app:v1.2.3", "registry.example.com:5000/team/app:v1.2.3"],
    ["MyRegistry:5000/app", "MyRegistry:5000/app:latest"], // the domain may have capitals, the path may not
    [`busybox@${SHA}`, `docker.io/library/busybox@${SHA}`],
    [`busybox:latest@${SHA}`, `docker.io/library/busybox@${SHA}`], // tag+digest keeps the digest only
    [`gcr.io/foo/bar:v1@${SHA}`, `gcr.io/foo/bar@${SHA}`],
    ["a_b.c__d---e", "docker.io/library/a_b.c__d---e:latest"],
  ])("%p -> %p", (input, want) => {
    expect(parseDockerRef(input).toString()).toBe(want);
  });

  test.each([
    ["", ErrReferenceInvalidFormat], // normalised to "docker.io/library/" first
    ["Busybox", `${ErrReferenceInvalidFormat}: ${ErrNameContainsUppercase}`],
    ["foo/Bar", `${ErrReferenceInvalidFormat}: ${ErrNameContainsUppercase}`],
    ["busybox:", ErrReferenceInvalidFormat],
    [":latest", ErrReferenceInvalidFormat],
    ["busybox@sha256:abc", ErrReferenceInvalidFormat], // too short to be a digest
    [`busybox@sha256:${HEX.toUpperCase()}`, ErrChecksumInvalidFormat],
    [`busybox@sha256:${HEX}00`, ErrChecksumInvalidLength],
    [`busybox@md5:${HEX.slice(0, 32)}`, ErrChecksumUnsupported],
    ["busybox:" + "t".repeat(129), ErrReferenceInvalidFormat],
    ["-busybox", ErrReferenceInvalidFormat],
    ["foo//bar", ErrReferenceInvalidFormat],
    ["foo/bar/", ErrReferenceInvalidFormat],
    ["busy box", ErrReferenceInvalidFormat],
    ["a".repeat(250) + "/b".repeat(3), ErrNameTooLong],
  ])("%p is refused (%s)", (input, reason) => {
    expect(reasonOf(() => parseDockerRef(input))).toBe(reason);
  });

  test("a 64-hex string is an id, not a repository", () => {
    expect(reasonOf(() => parseDockerRef(HEX))).toContain("cannot specify 64-byte hexadecimal strings");
  });

  test("parts of a normalised reference", () => {
    const ref = parseDockerRef("localhost:5000/team/app:v1");
    expect([ref.domain, ref.path, ref.tag, ref.digest, ref.name]).toEqual([
      "localhost:5000",
      "team/app",
      "v1",
      "",
      "localhost:5000/team/app",
    ]);
    const digested = parseDockerRef(`busybox:1@${SHA}`);
    expect([digested.tag, digested.digest, digested.isCanonical, digested.isTagged]).toEqual(["", SHA, true, false]);
  });

  test("hostile input fails fast (no catastrophic backtracking)", () => {
    const started = performance.now();
    for (const input of ["a".repeat(5000) + "!", "a-".repeat(3000) + "!", "a.".repeat(3000) + "/!", "a" + "-a".repeat(3000) + "A"]) {
      expect(() => parseDockerRef(input)).toThrow(InvalidArgumentError);
    }
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe("parseReference (syntax only)", () => {
  test("keeps the first component as a domain without normalising", () => {
    const ref = parseReference("foo/bar:baz");
    expect([ref.domain, ref.path, ref.tag]).toEqual(["foo", "bar", "baz"]);
    expect(parseReference("busybox").toString()).toBe("busybox");
    expect(parseReference(`x/y:t@${SHA}`).toString()).toBe(`x/y:t@${SHA}`);
  });

  test("an empty reference has no name", () => {
    expect(reasonOf(() => parseReference(""))).toBe(ErrNameEmpty);
  });

  test("upper case in the path is its own error", () => {
    expect(reasonOf(() => parseReference("foo/Bar"))).toBe(ErrNameContainsUppercase);
  });
});

describe("parseNormalizedNamed, parseNamed, familiar forms", () => {
  test("normalised without a default tag", () => {
    expect(parseNormalizedNamed("busybox").toString()).toBe("docker.io/library/busybox");
    expect(parseNormalizedNamed("busybox").isNameOnly).toBe(true);
  });

  test("parseNamed wants the canonical form", () => {
    expect(parseNamed("docker.io/library/busybox:1").tag).toBe("1");
    expect(reasonOf(() => parseNamed("busybox"))).toBe(ErrNameNotCanonical);
  });

  test.each([
    ["docker.io/library/busybox:latest", "busybox", "busybox:latest"],
    ["docker.io/foo/bar", "foo/bar", "foo/bar"],
    ["docker.io/library/a/b", "library/a/b", "library/a/b"],
    ["gcr.io/library/x:1", "gcr.io/library/x", "gcr.io/library/x:1"],
  ])("%p -> %p / %p", (input, name, str) => {
    const ref = parseNormalizedNamed(input);
    expect(familiarName(ref)).toBe(name);
    expect(familiarString(ref)).toBe(str);
  });
});

describe("parseAnyReference", () => {
  test("an id and a digest are bare digests; names are normalised", () => {
    const id = parseAnyReference(HEX);
    expect([id.named, id.toString(), id.isCanonical]).toEqual([false, SHA, false]);
    expect(parseAnyReference(SHA).toString()).toBe(SHA);
    expect(parseAnyReference("busybox:1").toString()).toBe("docker.io/library/busybox:1");
  });
});

describe("withName, withTag, withDigest", () => {
  test("compose and validate", () => {
    const name = withName("gcr.io/foo/bar");
    expect(withTag(name, "v1").toString()).toBe("gcr.io/foo/bar:v1");
    expect(withTag(withDigest(name, SHA), "v1").toString()).toBe(`gcr.io/foo/bar:v1@${SHA}`);
    expect(withDigest(withTag(name, "v1"), SHA).toString()).toBe(`gcr.io/foo/bar:v1@${SHA}`);
    expect(reasonOf(() => withTag(name, ".bad"))).toBe(ErrTagInvalidFormat);
    expect(reasonOf(() => withName("x/UPPER"))).toBe(ErrReferenceInvalidFormat);
    expect(withName("UPPER/x").domain).toBe("UPPER"); // a domain may have capitals
  });
});

describe("same language and captures as Go's grammar", () => {
  // Go's expressions transcribed literally (safe for JavaScript on short inputs only).
  const alnum = "[a-z0-9]+";
  const sep = "(?:[._]|__|[-]*)";
  const comp = `${alnum}(?:(?:${sep}${alnum})+)?`;
  const dcomp = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
  const domain = `${dcomp}(?:(?:\\.${dcomp})+)?(?::[0-9]+)?`;
  const tag = "[\\w][\\w.-]{0,127}";
  const digest = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9A-Fa-f]{32,}";
  const name = `(?:${domain}/)?${comp}(?:(?:/${comp})+)?`;
  const goReference = new RegExp(`^(${name})(?::(${tag}))?(?:@(${digest}))?$`);
  const goName = new RegExp(`^(?:(${domain})/)?(${comp}(?:(?:/${comp})+)?)$`);

  test("on 20000 random short strings", () => {
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return Math.floor(seed / 65536) % n;
    };
    const alphabet = "aab0Z._-/:@";
    const suffix = `@sha256:${"ab".repeat(16)}`;
    let agreed = 0;
    for (let i = 0; i < 20000; i++) {
      let s = "";
      const len = 1 + rand(14);
      for (let j = 0; j < len; j++) s += alphabet[rand(alphabet.length)];
      if (rand(4) === 0) s += suffix.slice(0, 8 + 32 + rand(2));
      const m = goReference.exec(s);
      let ours: Reference | null = null;
      try {
        ours = parseReference(s);
      } catch {
        ours = null;
      }
      if (m === null) {
        expect(ours).toBeNull();
        continue;
      }
      if (ours === null) {
        // Go refuses it too when the digest does not validate (only sha256 with 64 hex here).
        expect(m[3]).toBeDefined();
        continue;
      }
      const n = goName.exec(m[1]!)!;
      expect([ours.domain, ours.path, ours.tag, ours.digest]).toEqual([n[1] ?? "", n[2]!, m[2] ?? "", m[3] ?? ""]);
      agreed++;
    }
    expect(agreed).toBeGreaterThan(1000);
  });
});
