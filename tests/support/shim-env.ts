// Shared set-up for the shim's integration tests and benchmark: a directory holding an executable
// `containerd-shim-bunker-v1` to put on containerd's PATH, and helpers to find and end our shims
// by pid. The shim is the compiled single binary (what ships; starts in tens of milliseconds),
// built once per test process from src/shims/bunker/bin.ts; BUNKER_SHIM_LAUNCHER=script uses a shell
// launcher running the TypeScript sources with bun instead; BUNKER_SHIM_BIN_DIR=<dir> uses a
// prebuilt <dir>/containerd-shim-bunker-v1 (e.g. dist/).
import { COMPILE_FLAGS } from "./compile.ts";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { socketAddress, socketPath } from "../../src/contract/address.ts";
import { NAMESPACE_GROUP_KEY } from "../../src/contract/grouping.ts";
import { startContainerd, type TestContainerd } from "./containerd.ts";
import type { ContainerdBuild } from "./containerd-versions.ts";
import { copyRootfs } from "./rootfs.ts";
import { allProcs, cmdline, killSame, type ProcInfo, procInfo, waitGone } from "./procs.ts";
import { removeAtEnd } from "./cleanup.ts";

export const RUNTIME = "io.containerd.bunker.v1";
export const SHIM_BINARY = "containerd-shim-bunker-v1";
const REPO = resolve(import.meta.dir, "../..");

let built: Promise<string> | undefined;

async function build(): Promise<string> {
  // a prebuilt shim (e.g. the packaged dist/ directory) instead of building one
  const given = process.env.BUNKER_SHIM_BIN_DIR;
  if (given) {
    if (!existsSync(join(given, SHIM_BINARY))) throw new Error(`BUNKER_SHIM_BIN_DIR=${given} has no ${SHIM_BINARY}`);
    return given;
  }
  const dir = mkdtempSync("/tmp/bunker-shim-bin-");
  removeAtEnd(dir);
  const target = join(dir, SHIM_BINARY);
  if (process.env.BUNKER_SHIM_LAUNCHER === "script") {
    writeFileSync(target, `#!/bin/sh\nexec ${process.execPath} ${join(REPO, "src/shims/bunker/bin.ts")} "$@"\n`);
    chmodSync(target, 0o755);
    return dir;
  }
  const proc = Bun.spawn([process.execPath, "build", ...COMPILE_FLAGS, "--minify", join(REPO, "src/shims/bunker/bin.ts"), "--outfile", target], {
    cwd: REPO,
    stdout: "pipe",
    stderr: "pipe",
  });
  const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  if (code !== 0 || !existsSync(target)) throw new Error(`bun build --compile failed (${code}):\n${out}\n${err}`);
  return dir;
}

/** A directory with an executable containerd-shim-bunker-v1 (built once per process). */
export function shimBinDir(): Promise<string> {
  built ??= build();
  return built;
}

/** PATH for a test containerd that finds our shim first. */
export async function shimPath(): Promise<string> {
  return `${await shimBinDir()}:${process.env.PATH ?? ""}:/usr/sbin:/sbin`;
}

/**
 * The serve processes of our runtime started by this containerd: argv names its address and has
 * -socket (Go shims get the listener as fd 3 instead). The binary may be the shim's name, dist's
 * `bunker shim`, or bun running the sources.
 */
export function shimServers(ctd: TestContainerd): ProcInfo[] {
  return allProcs().filter((p) => {
    const cmd = cmdline(p.pid);
    return cmd.includes(` -address ${ctd.address} `) && cmd.includes(" -socket ");
  });
}

/**
 * Warm spares (src/shim/spare.ts, opt-in) of this containerd: argv names its address and ends with
 * the `spare` action, also once a spare has become a pod's shim (its argv does not change).
 */
export function spareServers(ctd: TestContainerd): ProcInfo[] {
  return allProcs().filter((p) => {
    const cmd = cmdline(p.pid);
    return cmd.includes(` -address ${ctd.address} `) && cmd.endsWith(" spare");
  });
}

/** The address a namespace's default group is served on. */
export function groupSocket(ctd: TestContainerd, namespace: string): string {
  return socketPath(socketAddress(ctd.address, namespace, NAMESPACE_GROUP_KEY));
}

/** Zombie children of a process (what a subreaper that forgot to reap would leave). */
export function zombieChildren(pid: number): ProcInfo[] {
  return allProcs().filter((p) => p.ppid === pid && p.state === "Z");
}

/** SIGTERM our shims and spares (an empty shim exits cleanly and removes its socket) and wait for them. */
export async function endShims(ctd: TestContainerd, timeoutMs = 10_000): Promise<ProcInfo[]> {
  const shims = [...shimServers(ctd), ...spareServers(ctd)];
  for (const p of shims) killSame(p, "SIGTERM");
  return await waitGone(shims, timeoutMs);
}

/** Waits for a condition, polling; throws with `what` after timeoutMs. */
export async function waitFor<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 20_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(50);
  }
}

export function alive(p: ProcInfo): boolean {
  const now = procInfo(p.pid);
  return now !== undefined && now.start === p.start && now.state !== "Z";
}

/** Mount points under a directory (from /proc/self/mountinfo). */
export function mountsUnder(dir: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((p) => p.startsWith(`${dir}/`));
}

/** A private containerd whose PATH finds our shim (exiting with its last container), and a rootfs. */
export async function startEnv(build?: ContainerdBuild): Promise<{ ctd: TestContainerd; rootfs: string }> {
  const ctd = await startContainerd({ path: await shimPath(), env: { BUNKER_SHIM_LINGER_MS: "0" }, build });
  const rootfs = await copyRootfs(join(ctd.dir, "rootfs"));
  return { ctd, rootfs };
}

export async function stopEnv(ctd: TestContainerd | undefined): Promise<void> {
  if (!ctd) return;
  await endShims(ctd).catch(() => undefined);
  await ctd.stop();
}
