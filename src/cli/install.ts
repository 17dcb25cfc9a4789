// `bunker install` and the parts of `bunker version` that look at the host. Neither needs the
// manager, so nothing here imports it.
import { appendFileSync, chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync } from "node:fs";
import { join, resolve } from "node:path";
import { FailedPreconditionError, InvalidArgumentError } from "../errdefs.ts";
import { writeUnit } from "./systemd-unit.ts";

/** Set by scripts/build.sh (`--define`); absent when running from sources. */
declare const BUNKER_COMMIT: string | undefined;

export const SHIM_NAME = "containerd-shim-bunker-v1";
import { BUNKER_RUNTIME } from "../contract/runtime.ts";
import { chooseConfigVersion, containerdSection, hasSection, sectionHeader } from "./containerd-config.ts";
export const RUNTIME_TYPE = BUNKER_RUNTIME;

export function commit(): string {
  return typeof BUNKER_COMMIT !== "undefined" && BUNKER_COMMIT ? BUNKER_COMMIT : "dev";
}

/** First line of `runc --version` for the runc on PATH (where the shim looks), or "runc: not found". */
export function runcVersion(): string {
  const runc = Bun.which("runc");
  if (!runc) return "runc: not found";
  try {
    const r = Bun.spawnSync([runc, "--version"], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const first = r.stdout.toString().split("\n")[0]?.trim() ?? "";
    if (!r.success || first === "") return `runc: ${runc} --version failed (exit ${r.exitCode})`;
    return `${first} (${runc})`;
  } catch (err) {
    return `runc: ${runc}: ${err instanceof Error ? err.message : String(err)}`;
  }
}

export interface InstallOptions {
  prefix: string;
  containerdConfig?: string;
  /** --containerd-version: which containerd the section is for (else the config file's version, else `containerd --version`). */
  containerdVersion?: string;
  /** `containerd --version`'s version (tests substitute it). */
  installedContainerd?: () => string | undefined;
  /** The daemon's dirs and socket for the systemd unit (systemd-unit.ts); no unit without them. */
  daemon?: { root: string; state: string; address: string };
}

/** A compiled binary runs its entry point from Bun's embedded file system; `bun main.ts` does not. */
function isCompiled(): boolean {
  return Bun.main.startsWith("/$bunfs/");
}

/** Lines to print, or throws a clear error. */
export function install(o: InstallOptions, source = process.execPath, compiled = isCompiled()): string[] {
  if (!compiled) {
    throw new FailedPreconditionError(`install copies the compiled bunker binary, but this is ${source} running sources: build dist/bunker (scripts/build.sh) and run its install`);
  }
  if (o.prefix === "") throw new InvalidArgumentError("--prefix must not be empty");
  // decided before anything is copied: a bad --containerd-version leaves nothing behind
  const configText = o.containerdConfig !== undefined ? readConfig(resolve(o.containerdConfig)) : undefined;
  const choice = chooseConfigVersion({ flag: o.containerdVersion, config: configText, installed: o.installedContainerd });
  const bin = join(resolve(o.prefix), "bin");
  try {
    mkdirSync(bin, { recursive: true });
  } catch (err) {
    throw new FailedPreconditionError(`cannot create ${bin}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const target = join(bin, "bunker");
  const link = join(bin, SHIM_NAME);
  // Copy under a temp name then rename: a shim starting meanwhile sees the old binary or the new
  // one, never a half-written file (and a running bunker is not ETXTBSY-overwritten).
  const tmpBin = join(bin, `.bunker.tmp-${process.pid}`);
  const tmpLink = join(bin, `.${SHIM_NAME}.tmp-${process.pid}`);
  try {
    if (resolve(source) !== target) {
      copyFileSync(source, tmpBin);
      chmodSync(tmpBin, 0o755);
      renameSync(tmpBin, target);
    }
    rmSync(tmpLink, { force: true });
    symlinkSync("bunker", tmpLink);
    renameSync(tmpLink, link);
  } catch (err) {
    rmSync(tmpBin, { force: true });
    rmSync(tmpLink, { force: true });
    throw new FailedPreconditionError(`install into ${bin}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const lines = [`installed ${target}`, `installed ${link} -> bunker`];
  if (o.daemon) lines.push(...writeUnit(o.prefix, { binary: target, ...o.daemon }));
  if (o.containerdConfig !== undefined) {
    lines.push(...writeSection(resolve(o.containerdConfig), configText ?? "", choice.version));
  } else {
    lines.push(...sectionLines(choice));
  }
  return lines;
}

/** The printed snippet: which config version and why, then the section. */
export function sectionLines(choice: { version: 2 | 3; because: string }): string[] {
  return ["", `# containerd config.toml (version ${choice.version}, ${choice.because}): add, then restart containerd`, containerdSection(choice.version).trimEnd()];
}

function readConfig(file: string): string {
  if (!existsSync(file)) return "";
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new FailedPreconditionError(`read ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function writeSection(file: string, current: string, version: 2 | 3): string[] {
  const header = sectionHeader(version);
  if (hasSection(current, version)) return [`${file} already has ${header}`];
  const sep = current === "" || current.endsWith("\n\n") ? "" : current.endsWith("\n") ? "\n" : "\n\n";
  try {
    appendFileSync(file, sep + containerdSection(version));
  } catch (err) {
    throw new FailedPreconditionError(`write ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return [`added ${header} to ${file} (restart containerd to use it)`];
}
