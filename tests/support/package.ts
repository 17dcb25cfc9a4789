// bunker as its users get it: this repo packed with `bun pm pack` (as `npm pack` would, package.json
// "files" deciding what ships; its prepack script cross-builds native/prebuilt/), and a fresh project
// outside the repo (`bun init -y`, then `bun add <tarball>`) in which a test writes and runs files.
// The packing happens once per test run however many files ask for it: it rebuilds nothing when the
// prebuilt files are fresh, but each fresh project costs a `bun add` (dependencies from the npm
// registry, or bun's cache), so tests share one project where they can.
import { runCommand, type RunResult } from "./run-command.ts";
import { mkdtempSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { removeAtEnd } from "./cleanup.ts";

const REPO = resolve(import.meta.dir, "../..");

/** Runs argv in cwd with our environment plus `env`; rejects nothing, the caller asserts. */
export function runIn(cwd: string, argv: string[], env: Record<string, string | undefined> = {}, timeoutMs = 180_000): Promise<RunResult> {
  return runCommand(argv, { cwd, env: { ...process.env, ...env }, timeoutMs });
}

function mustSucceed(what: string, r: RunResult): void {
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
}

let packed: Promise<string> | undefined;

async function pack(): Promise<string> {
  const dir = mkdtempSync("/tmp/bunker-pack-");
  removeAtEnd(dir);
  const r = await runIn(REPO, [process.execPath, "pm", "pack", "--destination", dir, "--quiet"]);
  mustSucceed("bun pm pack", r);
  // --quiet prints the tarball's name (bun) or path; either way it lies in dir
  const name = r.stdout.trim().split("\n").pop()!.split("/").pop()!;
  const tarball = join(dir, name);
  if (!(await Bun.file(tarball).exists())) throw new Error(`bun pm pack printed ${JSON.stringify(r.stdout)}, but ${tarball} does not exist`);
  return tarball;
}

/** The repo packed into a tarball, once per test run. */
export function packedTarball(): Promise<string> {
  packed ??= pack();
  return packed;
}

export interface FreshProject {
  /** The project's directory (outside the repo); removed at the end of the run. */
  dir: string;
  /** Writes a file of the project (relative path). */
  write(relative: string, text: string): void;
  /** Runs argv in the project's directory. */
  run(argv: string[], env?: Record<string, string | undefined>, timeoutMs?: number): Promise<RunResult>;
  /** `bun test <files>` in the project, with the bun that runs this suite. */
  bunTest(files: string[], env?: Record<string, string | undefined>, timeoutMs?: number): Promise<RunResult>;
}

/** A new project in a temp dir, made as a user would: `bun init -y`, then `bun add <tarball>`. */
export async function freshProject(tarball: string): Promise<FreshProject> {
  const dir = mkdtempSync("/tmp/bunker-user-project-");
  removeAtEnd(dir);
  const run = (argv: string[], env: Record<string, string | undefined> = {}, timeoutMs?: number) => runIn(dir, argv, env, timeoutMs);
  mustSucceed("bun init -y", await run([process.execPath, "init", "-y"]));
  mustSucceed(`bun add ${tarball}`, await run([process.execPath, "add", tarball]));
  return {
    dir,
    write: (relative, text) => writeFileSync(join(dir, relative), text),
    run,
    bunTest: (files, env, timeoutMs) => run([process.execPath, "test", "--timeout", "120000", ...files], env, timeoutMs),
  };
}
