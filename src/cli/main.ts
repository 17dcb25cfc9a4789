// The single entry point of the bunker binary. Invoked as containerd-shim-bunker-v1 (or with
// `shim` as first argument) it is the shim, and imports nothing else; otherwise it is the CLI.
// No top-level await: `bun build --compile --bytecode` needs a script it can precompile.
// No node:path either: the shim's start action runs once per pod, and evaluating it costs ~0.7 ms.
import { stdoutUsed } from "./stdout.ts";

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const name = process.argv0.slice(process.argv0.lastIndexOf("/") + 1);
  if (name.startsWith("containerd-shim-bunker")) {
    return (await import("../shims/bunker/main.ts")).shimMain(argv);
  }
  if (argv[0] === "shim") return (await import("../shims/bunker/main.ts")).shimMain(argv.slice(1));
  return (await import("./cli.ts")).cli(argv);
}

void main().then(async (code) => {
  // Hand off what is still buffered for stdout, then end: nothing else (a closed client's
  // socket, a stray timer) may keep the process alive. Only if stdout was used: see stdout.ts.
  if (stdoutUsed()) await new Promise<void>((resolve) => process.stdout.write("", () => resolve()));
  process.exit(code);
});
