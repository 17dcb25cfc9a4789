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
export const RUNTIME_TYPE = BUNKER_RUNTIME;
const SECTION_HEADER = '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.bunker]';

/** The config.toml (version 2) runtime section that makes containerd's CRI use our shim. */
export function containerdSection(): string {
  return `${SECTION_HEADER}\n  runtime_type = "${RUNTIME_TYPE}"\n`;
}

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
    lines.push(...writeSection(resolve(o.containerdConfig)));
  } else {
    lines.push("", "# containerd config.toml (version 2): add, then restart containerd", containerdSection().trimEnd());
  }
  return lines;
}

function writeSection(file: string): string[] {
  let current = "";
  if (existsSync(file)) {
    try {
      current = readFileSync(file, "utf8");
    } catch (err) {
      throw new FailedPreconditionError(`read ${file}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  if (current.includes(SECTION_HEADER)) return [`${file} already has ${SECTION_HEADER}`];
  const sep = current === "" || current.endsWith("\n\n") ? "" : current.endsWith("\n") ? "\n" : "\n\n";
  try {
    appendFileSync(file, sep + containerdSection());
  } catch (err) {
    throw new FailedPreconditionError(`write ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return [`added ${SECTION_HEADER} to ${file} (restart containerd to use it)`];
}
