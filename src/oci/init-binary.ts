// Where `run --init` finds its init (native/init.c, built static by native/Makefile) on the host,
// so that it can be bind-mounted into the container as docker mounts its docker-init.
//
// Why embedded and copied under --root: bunker ships as one compiled binary (scripts/build.sh), with
// no file beside it we could count on, and a file embedded in it lives in Bun's $bunfs, which the
// kernel cannot mount. So the binary carries the init (src/native.ts finds it: embedded when
// compiled, native/prebuilt/linux-<arch>/ in an installed package, else the dev build), and the
// first --init run writes it to
// <root>/init/bunker-init-<16 hex of its sha256>: the name is the content, so two bunker versions
// with the same init share the file, a different init never overwrites one a running container
// has mounted, and a later run only checks that the file exists. It is written to a temp name and
// renamed, so a concurrent run or a crash never leaves a half-written init under the final name.
// `init` is a reserved namespace name (identifiers.ts) so that no namespace's work dirs share it.
// Loaded only when --init is given: reading and hashing ~700 KB is not every run's to pay for.
import { chmodSync, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { locateNative } from "../native.ts";

export async function installInit(root: string): Promise<string> {
  const bytes = await Bun.file(locateNative("bunker-init")).bytes();
  const hex = new Bun.CryptoHasher("sha256").update(bytes).digest("hex").slice(0, 16);
  const dir = join(root, "init");
  const path = join(dir, `bunker-init-${hex}`);
  if (existsSync(path)) return path;
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  try {
    writeFileSync(tmp, bytes, { mode: 0o755 });
    chmodSync(tmp, 0o755); // the umask must not take x from anyone: the container's user may not be root
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  return path;
}
