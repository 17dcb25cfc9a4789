// The bundle of one task on disk (containerd runtime/v2 bundle.go): a state directory
// `<state>/<ns>/<id>` (0700) holding config.json, rootfs/, the shim's `log` FIFO and a `work`
// symlink to the persistent `<root>/<ns>/<id>`. Creation rolls back everything it made.
import { lstatSync, mkdirSync, readlinkSync, renameSync, rmSync, rmdirSync, symlinkSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { errorMessage, FailedPreconditionError } from "../errdefs.ts";
import { RESERVED_NAMESPACES, validateIdentifier, validateNamespace } from "../identifiers.ts";
import { CONFIG_FILE } from "../contract/bundle.ts";
import { visibleDirs } from "../containers/record.ts";

/** The two kernel calls a bundle needs (a subset of src/sys's Syscalls, so tests can fake them). */
export interface BundleSys {
  mkfifo(path: string, mode: number): void;
  /** Unmounts every mount at or under path, deepest first; a path with no mount is fine. */
  unmountAll(path: string): void;
}

export { CONFIG_FILE };
export const LOG_FIFO = "log";

export interface Bundle {
  readonly id: string;
  readonly namespace: string;
  /** The state directory, `<state>/<ns>/<id>`; the shim's cwd. */
  readonly path: string;
}

export interface NewBundleOptions {
  root: string;
  state: string;
  namespace: string;
  id: string;
  spec: Uint8Array | string;
  sys: BundleSys;
}

export function bundlePaths(root: string, state: string, namespace: string, id: string): { path: string; work: string } {
  return { path: join(state, namespace, id), work: join(root, namespace, id) };
}

/**
 * Makes the bundle dir (owner-only, its namespace dir 0711 as needed); false when it already
 * exists. The mkdir is the id's reservation: two creators of one id cannot both get true.
 */
export function makeBundleDir(path: string): boolean {
  mkdirSync(dirname(path), { recursive: true, mode: 0o711 });
  try {
    mkdirSync(path, { mode: 0o700 });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  }
}

/** Creates a new bundle; on any failure removes what it made and rethrows. */
export function newBundle(opts: NewBundleOptions): Bundle {
  // Validate before any path is built from the names.
  validateNamespace(opts.namespace);
  validateIdentifier(opts.id, "container id");
  const { path, work } = bundlePaths(opts.root, opts.state, opts.namespace, opts.id);
  const made: string[] = [];
  try {
    if (!makeBundleDir(path)) throw new FailedPreconditionError(`bundle for ${opts.namespace}/${opts.id} already exists at ${path}`);
    made.push(path);
    mkdirSync(join(path, "rootfs"), { mode: 0o711 });
    mkdirSync(dirname(work), { recursive: true, mode: 0o711 });
    // A leftover work dir from a task that was never cleaned up is replaced, as containerd does.
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { mode: 0o711 });
    made.push(work);
    symlinkSync(work, join(path, "work"));
    // containerd opens the FIFO itself with O_CREAT; we make it up front so the shim's serve
    // process finds it and both sides agree on its mode.
    opts.sys.mkfifo(join(path, LOG_FIFO), 0o700);
    writeFileSync(join(path, CONFIG_FILE), opts.spec, { mode: 0o666 });
  } catch (err) {
    for (const p of made.reverse()) rmSync(p, { recursive: true, force: true });
    throw err;
  }
  return { id: opts.id, namespace: opts.namespace, path };
}

/** The bundle of an existing task; nothing is read from disk. */
export function loadBundle(state: string, namespace: string, id: string): Bundle {
  validateNamespace(namespace);
  validateIdentifier(id, "container id");
  return { id, namespace, path: join(state, namespace, id) };
}

/** Unmounts rootfs, then removes the state dir and the work dir it points to (each atomically). */
export function deleteBundle(bundle: Bundle, sys: BundleSys): void {
  let work: string | undefined;
  try {
    work = readlinkSync(join(bundle.path, "work"));
  } catch {
    work = undefined;
  }
  const rootfs = join(bundle.path, "rootfs");
  try {
    sys.unmountAll(rootfs);
  } catch (err) {
    throw new FailedPreconditionError(`unmount rootfs ${rootfs}: ${errorMessage(err)}`, { cause: err });
  }
  try {
    rmdirSync(rootfs);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // A non-empty rootfs after unmountAll is someone's data: never recurse into it.
    if (code !== "ENOENT") throw new FailedPreconditionError(`remove bundle rootfs ${rootfs}: ${errorMessage(err)}`);
  }
  const errors: string[] = [];
  for (const p of [bundle.path, work]) {
    if (p === undefined) continue;
    try {
      atomicDelete(p);
    } catch (err) {
      errors.push(errorMessage(err));
    }
  }
  if (errors.length > 0) throw new FailedPreconditionError(`delete bundle ${bundle.path}: ${errors.join("; ")}`);
}

/** Renames to a hidden sibling first, so a crash mid-removal never leaves a half bundle that looks live. */
export function atomicDelete(path: string): void {
  const hidden = join(dirname(path), `.${basename(path)}`);
  try {
    renameSync(path, hidden);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  rmSync(hidden, { recursive: true, force: true });
}

export function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Namespace dirs under state; hidden ones (atomicDelete leftovers) and subsystem dirs are skipped. */
export function listNamespaces(state: string): string[] {
  // <state>/runc (and the other reserved names) belong to subsystems, never to a namespace
  return visibleDirs(state).filter((d) => !RESERVED_NAMESPACES.includes(d));
}

/** Bundle dirs of one namespace; hidden ones are skipped. */
export function listBundleIds(state: string, namespace: string): string[] {
  return visibleDirs(join(state, namespace));
}
