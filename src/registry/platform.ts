// Platform choice from an image index / manifest list, as containerd's platforms package
// (platforms.Only + the default matcher) does it: os and architecture must match, the variant
// too when both name one (arm64's "v8" is the default variant, so absent == v8); amd64 has no
// variants here. Entries that are not runnable images are skipped: BuildKit's attestation manifests
// (annotation vnd.docker.reference.type=attestation-manifest, platform unknown/unknown).
import { InvalidArgumentError, NotFoundError } from "../errdefs.ts";
import type { Descriptor, Platform } from "../content/oci.ts";

const ARCH_OF_NODE: Record<string, string> = { x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" };
const ARCH_ALIASES: Record<string, string> = { x86_64: "amd64", "x86-64": "amd64", aarch64: "arm64", i386: "386", armhf: "arm", armel: "arm" };

/** The platform this process runs on (linux/<arch>, as Go names it). */
export function defaultPlatform(): Platform {
  const architecture = ARCH_OF_NODE[process.arch] ?? process.arch;
  return architecture === "arm64" ? { os: "linux", architecture, variant: "v8" } : { os: "linux", architecture };
}

/** Parses `os/arch[/variant]` (or `arch` alone, meaning linux) like platforms.Parse; normalises aliases. */
export function parsePlatform(s: string): Platform {
  const parts = s.trim().toLowerCase().split("/");
  if (parts.some((p) => !/^[a-z0-9._-]+$/.test(p)) || parts.length > 3) {
    throw new InvalidArgumentError(`invalid platform ${JSON.stringify(s)}: want os/arch[/variant]`);
  }
  const [os, arch, variant] = parts.length === 1 ? ["linux", parts[0]!, undefined] : parts;
  return normalizePlatform({ os: os!, architecture: arch!, ...(variant ? { variant } : {}) });
}

export function normalizePlatform(p: Platform): Platform {
  const architecture = ARCH_ALIASES[p.architecture] ?? p.architecture;
  let variant = p.variant;
  if (architecture === "arm64" && (variant === undefined || variant === "8")) variant = "v8";
  if (architecture === "arm" && variant && /^\d$/.test(variant)) variant = `v${variant}`;
  if (architecture === "arm" && variant === undefined) variant = "v7";
  if (architecture === "amd64" && variant === "v1") variant = undefined;
  const out: Platform = { os: p.os.toLowerCase(), architecture };
  if (variant) out.variant = variant;
  return out;
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join("/");
}

/** Whether an index entry's platform runs where `want` asks for. */
export function platformMatches(want: Platform, have: Platform): boolean {
  const w = normalizePlatform(want), h = normalizePlatform(have);
  if (w.os !== h.os || w.architecture !== h.architecture) return false;
  // A wanted variant must be met; an unnamed one takes any (containerd keeps the best first).
  return w.variant === undefined || h.variant === w.variant;
}

export function isAttestation(d: Descriptor): boolean {
  return d.annotations?.["vnd.docker.reference.type"] === "attestation-manifest" ||
    (d.platform?.os === "unknown" && d.platform?.architecture === "unknown");
}

/**
 * The index entry for `want`; NotFoundError lists what the index offers. Entries with no platform
 * match nothing (containerd treats them the same), except in an index with a single such entry.
 */
export function choosePlatform(manifests: Descriptor[], want: Platform, what: string): Descriptor {
  const runnable = manifests.filter((d) => !isAttestation(d));
  const hit = runnable.find((d) => d.platform && platformMatches(want, d.platform));
  if (hit) return hit;
  if (runnable.length === 1 && !runnable[0]!.platform) return runnable[0]!;
  const offered = runnable.filter((d) => d.platform).map((d) => formatPlatform(normalizePlatform(d.platform!)));
  throw new NotFoundError(`${what}: no image for platform ${formatPlatform(normalizePlatform(want))} (available: ${offered.length ? offered.join(", ") : "none"})`);
}
