// Entry point of the bunker shim binary (containerd-shim-bunker-v1, or `bunker shim ...`).
import { run } from "../../shim/run.ts";
import { VERSION } from "../../version.ts";
import { RuncShim } from "./manager.ts";

/** Runs the shim with its arguments (flags then action); a leading "shim" word is dropped. */
export async function shimMain(argv: string[]): Promise<number> {
  const args = argv[0] === "shim" ? argv.slice(1) : argv;
  return await run(args, new RuncShim(), { version: VERSION });
}
