// Platform parsing and choice from an index (src/registry/platform.ts).
import { expect, test } from "bun:test";
import { choosePlatform, defaultPlatform, formatPlatform, parsePlatform, platformMatches } from "../../src/registry/platform.ts";
import type { Descriptor } from "../../src/content/oci.ts";

const d = (n: number, platform?: Descriptor["platform"], annotations?: Record<string, string>): Descriptor => ({
  mediaType: "application/vnd.oci.image.manifest.v1+json", digest: `sha256:${String(n).repeat(64)}`, size: n,
  ...(platform ? { platform } : {}), ...(annotations ? { annotations } : {}),
});

test("parse: os/arch[/variant], aliases, arch alone means linux, garbage refused", () => {
  expect(parsePlatform("linux/amd64")).toEqual({ os: "linux", architecture: "amd64" });
  expect(parsePlatform("linux/arm64")).toEqual({ os: "linux", architecture: "arm64", variant: "v8" });
  expect(parsePlatform("linux/arm/v6")).toEqual({ os: "linux", architecture: "arm", variant: "v6" });
  expect(parsePlatform("Linux/x86_64")).toEqual({ os: "linux", architecture: "amd64" });
  expect(parsePlatform("aarch64")).toEqual({ os: "linux", architecture: "arm64", variant: "v8" });
  for (const bad of ["", "linux/", "a/b/c/d", "linux/am d64"]) expect(() => parsePlatform(bad)).toThrow(/invalid platform/);
});

test("the default is linux and this process's architecture in Go's names", () => {
  const p = defaultPlatform();
  expect(p.os).toBe("linux");
  expect(p.architecture).toBe(({ x64: "amd64", arm64: "arm64" } as Record<string, string>)[process.arch] ?? process.arch);
});

test("matching: os and arch; the variant when asked (arm64's absent variant is v8)", () => {
  expect(platformMatches({ os: "linux", architecture: "arm64" }, { os: "linux", architecture: "arm64", variant: "v8" })).toBe(true);
  expect(platformMatches({ os: "linux", architecture: "arm", variant: "v7" }, { os: "linux", architecture: "arm", variant: "v6" })).toBe(false);
  expect(platformMatches({ os: "linux", architecture: "amd64" }, { os: "windows", architecture: "amd64" })).toBe(false);
});

test("choice skips attestation entries and unknown/unknown", () => {
  const list = [
    d(1, { os: "unknown", architecture: "unknown" }),
    d(2, { os: "linux", architecture: "amd64" }, { "vnd.docker.reference.type": "attestation-manifest" }),
    d(3, { os: "linux", architecture: "arm64", variant: "v8" }),
    d(4, { os: "linux", architecture: "amd64" }),
  ];
  expect(choosePlatform(list, parsePlatform("linux/amd64"), "img").digest).toBe(d(4).digest);
  expect(choosePlatform(list, parsePlatform("linux/arm64"), "img").digest).toBe(d(3).digest);
});

test("no match names what the index offers", () => {
  const list = [d(3, { os: "linux", architecture: "arm64", variant: "v8" }), d(4, { os: "linux", architecture: "amd64" }), d(5, { os: "unknown", architecture: "unknown" })];
  expect(() => choosePlatform(list, parsePlatform("linux/s390x"), "docker.io/library/x:1")).toThrow(
    "docker.io/library/x:1: no image for platform linux/s390x (available: linux/arm64/v8, linux/amd64)",
  );
  expect(formatPlatform({ os: "linux", architecture: "arm", variant: "v7" })).toBe("linux/arm/v7");
});

test("a lone entry without a platform is taken; several are not", () => {
  expect(choosePlatform([d(1)], parsePlatform("linux/amd64"), "x").digest).toBe(d(1).digest);
  expect(() => choosePlatform([d(1), d(2)], parsePlatform("linux/amd64"), "x")).toThrow(/available: none/);
});
