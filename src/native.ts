// Where bunker finds its native files (libbunker.so, which src/sys dlopens, and bunker-init, the
// static PID 1 of `run --init`) and its own package (the shim launcher in bin/). No upstream has
// this exact job; the lookup order is prebuildify/node-gyp-build's: a prebuilt for this platform
// and architecture first, then a local build.
//
// Why this order:
// 1. Inside a compiled binary (scripts/build.sh's dist/bunker) the files are embedded: the literal
//    requires below make `bun build --compile` carry them (a file import, as the import attribute
//    did before), and Bun's dlopen extracts a $bunfs path by itself. Only evaluated when compiled,
//    so an installed package, which ships no dev build, never resolves them.
// 2. native/prebuilt/linux-<arch>/ inside the package: what `bun pm pack` ships (native/Makefile's
//    `prebuilt` target builds x64 and arm64), so a project that adds bunker needs no C compiler.
//    In the repo `make -C native` refreshes the host's copy, so it never shadows a newer dev build.
// 3. native/<file>: a dev build (make -C native), e.g. on an architecture nothing was prebuilt for.
// Anything else is a one-line error that names what is missing and how to build it.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { FailedPreconditionError } from "./errdefs.ts";

export type NativeFile = "libbunker.so" | "bunker-init";

/** The bunker package's root (package.json, src/, native/, bin/): the repo, or node_modules/bunker. */
export const packageRoot: string = resolve(import.meta.dir, "..");

/** A compiled binary runs its entry point from Bun's embedded file system; `bun main.ts` does not. */
export function isCompiled(): boolean {
  return Bun.main.startsWith("/$bunfs/");
}

function embedded(name: NativeFile): string {
  // Literal specifiers, one per file: the bundler follows only those.
  return name === "libbunker.so" ? (require("../native/libbunker.so") as string) : (require("../native/bunker-init") as string);
}

/** Where a non-compiled bunker looks for a native file, in order. */
export function nativeCandidates(name: NativeFile, arch: string = process.arch, root: string = packageRoot): string[] {
  return [join(root, "native", "prebuilt", `linux-${arch}`, name), join(root, "native", name)];
}

/** The path of a native file (a $bunfs path when compiled), or FailedPrecondition naming how to build it. */
export function locateNative(name: NativeFile, opts: { compiled?: boolean; arch?: string; root?: string } = {}): string {
  if (opts.compiled ?? isCompiled()) return embedded(name);
  const root = opts.root ?? packageRoot;
  const arch = opts.arch ?? process.arch;
  const candidates = nativeCandidates(name, arch, root);
  const found = candidates.find((p) => existsSync(p));
  if (found !== undefined) return found;
  throw new FailedPreconditionError(
    `bunker's native ${name} for linux-${arch} is missing (no ${candidates.join(" or ")}): build it with \`make -C ${join(root, "native")}\` (needs gcc, make and libc6-dev)`,
  );
}

/** A launcher in the package's bin/ (bin/containerd-shim-bunker-v1, bin/bunker); none inside a compiled binary. */
export function packageBin(name: string): string | undefined {
  return isCompiled() ? undefined : join(packageRoot, "bin", name);
}
