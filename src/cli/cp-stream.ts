// `bunker cp` with "-" on one side, as docker cp: `cp CONTAINER:PATH -` writes a tar of PATH to
// stdout, `cp - CONTAINER:DIR` extracts a tar from stdin into DIR, which must exist and be a
// directory (docker's "extraction point is not a directory"). The tar rules and their safety are
// archive/container-tar.ts's; cp.ts finds the container's root and freezes it around the call.
//
// stdin is spooled to a temp file (under TMPDIR) before the container is frozen: the archive is
// read twice (checked whole, then written), and a slow producer must not hold the container paused.
import { closeSync, lstatSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { extractTarInto, treeTarStream } from "../archive/container-tar.ts";
import { resolveInRoot } from "../archive/root-path.ts";
import { InvalidArgumentError, NotFoundError } from "../errdefs.ts";

/** The top entry's name in docker's layout: the base name, or "." for "DIR/." (its contents) and "/". */
export function tarTopName(path: string): string {
  if (/(^|\/)\.$/.test(path)) return ".";
  const base = path.replace(/\/+$/, "").split("/").pop() ?? "";
  return base === "" ? "." : base;
}

/** Writes the tar of `path` (a container path) in `root` to stdout. */
export async function copyOutAsTar(root: string, path: string, followLink: boolean): Promise<void> {
  const follow = followLink || /\/\.?$/.test(path);
  const src = resolveInRoot(root, path, follow);
  try {
    lstatSync(src);
  } catch {
    throw new NotFoundError(`${path}: no such file or directory in the container`);
  }
  const skipped = (p: string): void => void process.stderr.write(`bunker: cp: /${relative(root, p)}: a socket; skipped\n`);
  await writeToStdout(treeTarStream(src, tarTopName(path), skipped));
}

/**
 * Each chunk written to fd 1 whole before the next is pulled (the tar is made as fast as it is
 * read). Bun.write refuses a pipe as stdout, and fd 1 may be non-blocking when a shell shares it.
 */
async function writeToStdout(stream: ReadableStream<Uint8Array>): Promise<void> {
  for await (const chunk of stream) {
    for (let off = 0; off < chunk.length; ) {
      try {
        off += writeSync(1, chunk, off, chunk.length - off);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err;
        await Bun.sleep(1);
      }
    }
  }
}

/** The container directory a tar goes into, checked as docker checks it before reading stdin. */
export function extractionPoint(root: string, path: string): void {
  const resolved = resolveInRoot(root, path, true);
  let isDirectory: boolean;
  try {
    isDirectory = lstatSync(resolved).isDirectory();
  } catch {
    throw new NotFoundError(`${path}: no such directory in the container`);
  }
  if (!isDirectory) throw new InvalidArgumentError(`${path}: extraction point is not a directory`);
}

/** stdin, whole, in a temp file; `use` runs with its path, and the file goes after. */
export async function withSpooledStdin<T>(use: (file: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "bunker-cp-"));
  try {
    const file = join(dir, "stdin.tar");
    // chunk by chunk: Bun.write refuses a pipe on stdin as its source
    const fd = openSync(file, "wx", 0o600);
    try {
      for await (const chunk of Bun.stdin.stream()) for (let off = 0; off < chunk.length; ) off += writeSync(fd, chunk, off, chunk.length - off);
    } finally {
      closeSync(fd);
    }
    return await use(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Extracts the spooled tar into `path`; ownership root's unless `archive` (the tar's). */
export async function copyInFromTar(root: string, path: string, file: string, archive: boolean): Promise<void> {
  extractionPoint(root, path);
  await extractTarInto(root, path, () => Bun.file(file).stream(), archive ? {} : { owner: { uid: 0, gid: 0 } });
}
