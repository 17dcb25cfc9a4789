// The containerd builds the shim is tested against: the machine's own (Debian 12's 1.6) and the
// ones scripts/containerd-versions.sh unpacks from Debian trixie (1.7) and sid (2.x) into
// $BUNKER_CACHE/containerd/<suite>. Kubernetes clusters run all three lines today, and each
// changed what it asks of a shim (2.x's CRI runs `-info`, its config moved to version 3), so the
// shim suites run once per build.
//
// A build that is not unpacked skips its suite with a reason, and fails it under
// BUNKER_REQUIRE_ALL=1 (CI), like any other missing need: .ci/run fetches them through setup.sh.
import { describe, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describeWith, type Need } from "./require.ts";

export interface ContainerdBuild {
  /** "1.6", "1.7", "2.1": the line, for test names and version checks. */
  line: string;
  /** The full version string the package or binary reports. */
  version: string;
  /** The folder holding containerd, ctr and containerd-shim-runc-v2 of this build. */
  bin: string;
  major: number;
}

/** Where the fetch script unpacks the other builds. */
export const CACHE_DIR = join(process.env.BUNKER_CACHE ?? "/var/cache/bunker", "containerd");
/** The cached suites, in version order. */
export const CACHED_SUITES = ["trixie", "sid"] as const;

function lineOf(version: string): { line: string; major: number } {
  const m = /(\d+)\.(\d+)/.exec(version);
  if (!m) throw new Error(`containerd version ${JSON.stringify(version)} has no major.minor`);
  return { line: `${m[1]}.${m[2]}`, major: Number(m[1]) };
}

function systemBuild(): ContainerdBuild | undefined {
  const path = Bun.which("containerd", { PATH: `${process.env.PATH ?? ""}:/usr/sbin:/sbin` });
  if (!path) return undefined;
  const out = Bun.spawnSync([path, "--version"], { stdout: "pipe", stderr: "ignore" }).stdout.toString();
  // "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3"
  const version = out.trim().split(/\s+/)[2] ?? "";
  return { ...lineOf(version), version, bin: dirname(path) };
}

function cachedBuild(suite: string): ContainerdBuild | string {
  const root = join(CACHE_DIR, suite);
  const bin = join(root, "usr", "bin");
  if (!existsSync(join(bin, "containerd")) || !existsSync(join(root, "VERSION"))) {
    return `containerd from Debian ${suite} (run scripts/containerd-versions.sh)`;
  }
  const version = readFileSync(join(root, "VERSION"), "utf8").trim();
  return { ...lineOf(version), version, bin };
}

/** The builds unpacked in the cache (for benches that take a version). */
export function cachedBuilds(): ContainerdBuild[] {
  return CACHED_SUITES.map(cachedBuild).filter((b): b is ContainerdBuild => typeof b === "object");
}

/**
 * describeWith once per containerd build, named "<name> [containerd 1.7]"; a build not on this
 * machine is a missing need (skipped, or a failure under BUNKER_REQUIRE_ALL=1).
 */
export function describeEachContainerd(needs: Need[], name: string, body: (build: ContainerdBuild) => void): void {
  const builds: Array<ContainerdBuild | string> = [systemBuild() ?? "containerd", ...CACHED_SUITES.map(cachedBuild)];
  for (const build of builds) {
    if (typeof build === "object") {
      describeWith(needs, `${name} [containerd ${build.line}]`, () => body(build));
      continue;
    }
    const title = `${name} [${build}]`;
    if (process.env.BUNKER_REQUIRE_ALL === "1") {
      describe(title, () => {
        test("has what it needs", () => {
          throw new Error(`${title}: needs ${build}, and BUNKER_REQUIRE_ALL=1 forbids skipping`);
        });
      });
    } else {
      console.warn(`skipped: ${title}: needs ${build}`);
      describe.skipIf(true)(title, () => undefined);
    }
  }
}
