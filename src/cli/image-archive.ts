// `bunker load`, `bunker save` and `bunker image prune`: archives in and out, and the sweep.
import { closeSync, existsSync, openSync, renameSync, rmSync, statSync, writeSync, fsyncSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { ContainerStore } from "../containers/record.ts";
import { loadImages, saveImages } from "../images/archive.ts";
import { pruneImages } from "../images/prune.ts";
import { familiarString, parseDockerRef } from "../registry/reference.ts";
import type { Command, GlobalOptions } from "./args.ts";
import { openImageStore } from "./image-store.ts";
import { stdout } from "./stdout.ts";

function out(line: string): void {
  stdout().write(line + "\n");
}

function shown(name: string): string {
  return name.startsWith("sha256:") ? `ID: ${name}` : `image: ${familiarString(parseDockerRef(name))}`;
}

export async function load(g: GlobalOptions, c: Extract<Command, { name: "load" }>): Promise<number> {
  const store = openImageStore(g);
  let input: ReadableStream<Uint8Array> | { dir: string };
  if (c.input === undefined || c.input === "-") input = Bun.stdin.stream();
  else {
    const path = resolve(c.input);
    input = existsSync(path) && statSync(path).isDirectory() ? { dir: path } : Bun.file(path).stream();
  }
  const names = await loadImages(store, input);
  if (!c.quiet) for (const n of names) out(`Loaded ${shown(n)}`);
  return 0;
}

/** Written to a temp file beside the output and renamed: a failed save leaves no half archive. */
export async function save(g: GlobalOptions, c: Extract<Command, { name: "save" }>): Promise<number> {
  const store = openImageStore(g);
  const target = resolve(c.output);
  const tmp = join(dirname(target), `.${process.pid}.bunker-save.tmp`);
  const fd = openSync(tmp, "w", 0o644);
  try {
    for await (const chunk of await saveImages(store, c.refs)) {
      for (let off = 0; off < chunk.length; ) off += writeSync(fd, chunk, off);
    }
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, target);
  } catch (err) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    rmSync(tmp, { force: true });
    throw err;
  }
  return 0;
}

export async function prune(g: GlobalOptions, all: boolean): Promise<number> {
  const store = openImageStore(g);
  const r = await pruneImages(store, new ContainerStore(g.root).list(), all);
  for (const n of r.untagged) out(`Untagged: ${familiarString(parseDockerRef(n))}`);
  out(`Deleted ${r.blobs} blobs (${r.bytes} bytes) and ${r.snapshots} snapshots; reclaimed ${r.reclaimed} leftovers`);
  return 0;
}
