// `bunker cp SRC DST`, one side `CONTAINER:PATH`: docker cp. The CLI runs on the host (as root, or
// beside a daemon that does), so it reaches the container's files through the root filesystem the
// shim mounted for it (the bundle's `rootfs`, or the spec's root when the container was made
// straight on a directory) instead of a tar stream through the daemon. The rules of where things
// land and who owns them, and the symlink safety inside the root, are archive/container-copy.ts's.
//
// Like moby since CVE-2018-15664, a running container is frozen for the copy (pause, then resume;
// one the user paused stays paused): a process inside cannot swap a checked directory for a
// symlink while we walk it. A container with no mounted root filesystem (its shim unmounted it)
// has nothing to copy from or to, and says so. With "-" on one side, a tar stream on stdin or
// stdout takes the host path's place (cp-stream.ts, loaded only then).
import { lstatSync, readFileSync, realpathSync, type Stats, statSync } from "node:fs";
import { isAbsolute, join, posix, relative, resolve } from "node:path";
import type { Api } from "../api/client.ts";
import { copyTarget, copyTree, type CopyOptions, hostWriter, removePartial, resolveInRoot, rootWriter, type WritePath } from "../archive/container-copy.ts";
import { readBundleSpec } from "../contract/bundle.ts";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errdefs.ts";
import { Status } from "../gen/containerd/types/task/task_pb.ts";
import type { GlobalOptions } from "./args.ts";

export type CopyEndpoint = { container: string; path: string } | { host: string };

/**
 * docker's splitCpArg: an absolute path, or one whose part before the first colon starts with "."
 * (`./a:b`), is the host's; `NAME:PATH` is a container's; no colon is the host's.
 */
export function parseCopyEndpoint(arg: string): CopyEndpoint {
  if (isAbsolute(arg)) return { host: arg };
  const colon = arg.indexOf(":");
  if (colon < 0 || arg.startsWith(".")) return { host: arg };
  const container = arg.slice(0, colon);
  if (container === "") throw new InvalidArgumentError(`${JSON.stringify(arg)}: a container name is needed before the colon`);
  return { container, path: arg.slice(colon + 1) };
}

/** A container path as docker takes it: relative to the container's / (the leading slash is optional). */
function containerPath(path: string): string {
  if (path === "") return "/";
  return path.startsWith("/") ? path : `/${path}`;
}

/** Whether `dir` is a mount point (the shim's rootfs mount, as /proc/self/mountinfo lists it). */
export function isMountPoint(dir: string, mountinfo = readFileSync("/proc/self/mountinfo", "utf8")): boolean {
  const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return mountinfo.split("\n").some((line) => line.split(" ")[4] !== undefined && unescape(line.split(" ")[4]!) === dir);
}

/** The container's root filesystem on the host, checked to be there (mounted, when it is the bundle's). */
function containerRoot(bundle: string, id: string, status: Status): string {
  let rootPath = "rootfs";
  try {
    const root = readBundleSpec(bundle).root as { path?: unknown } | undefined;
    if (typeof root?.path === "string" && root.path !== "") rootPath = root.path;
  } catch {
    // no readable spec: the bundle's rootfs is where the shim mounts it
  }
  const root = realpathOr(resolve(bundle, rootPath));
  const why = status === Status.STOPPED ? "it is stopped and its shim has unmounted it" : "it is not mounted";
  if (root === undefined || (root === realpathOr(join(bundle, "rootfs")) && !isMountPoint(root))) {
    throw new FailedPreconditionError(`container ${id} has no root filesystem to copy with: ${why}`);
  }
  return root;
}

function realpathOr(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}

function statOr(path: string, follow: boolean): Stats | undefined {
  try {
    return follow ? statSync(path) : lstatSync(path);
  } catch {
    return undefined;
  }
}

/** The parent of a path that does not exist yet must be a directory, as docker requires. */
function requireParent(hostPath: string, shown: string): void {
  if (!statOr(posix.dirname(hostPath), true)?.isDirectory()) throw new NotFoundError(`${posix.dirname(shown)}: no such directory`);
}

/** Copies, and removes what it made if it fails halfway (an existing destination is left as it is). */
function copyOrRollback(src: string, write: WritePath, existed: boolean, o: CopyOptions): void {
  try {
    const r = copyTree(src, write, o);
    for (const skipped of r.skipped) process.stderr.write(`bunker: cp: ${skipped}: not a file, directory or symlink; skipped\n`);
  } catch (err) {
    if (!existed) removePartial(write(""));
    throw err;
  }
}

export async function cp(api: Api, g: GlobalOptions, c: { source: string; destination: string; archive: boolean; followLink: boolean }): Promise<number> {
  const from = parseCopyEndpoint(c.source);
  const to = parseCopyEndpoint(c.destination);
  if ("host" in from && "host" in to) throw new InvalidArgumentError("cp: one of SRC and DST must be CONTAINER:PATH");
  if ("container" in from && "container" in to) throw new InvalidArgumentError("cp: copying between containers is not supported");
  const side = "container" in from ? from : (to as { container: string; path: string });
  const t = (await api.list({ namespace: g.namespace, id: side.container })).tasks[0];
  if (!t) throw new NotFoundError(`container ${side.container} not found`);
  const root = containerRoot(t.bundle, t.id, t.status);
  const ref = { namespace: g.namespace, id: t.id };
  if (c.source === "-" || c.destination === "-") return await copyStream(api, ref, t.status, root, side.path, c);
  // frozen while we walk it; a container we cannot freeze (a foreground run) is copied as it runs
  const frozen = t.status === Status.RUNNING && (await api.pause(ref).then(() => true, () => false));
  try {
    if ("container" in from) copyOut(root, containerPath(from.path), (to as { host: string }).host, c);
    else copyIn((from as { host: string }).host, root, containerPath(side.path), c);
  } finally {
    if (frozen) await api.resume(ref);
  }
  return 0;
}

/** cp with a tar stream: stdin spooled before the freeze, and the freeze as for a host path. */
async function copyStream(api: Api, ref: { namespace: string; id: string }, status: Status, root: string, path: string, c: { source: string; archive: boolean; followLink: boolean }): Promise<number> {
  const stream = await import("./cp-stream.ts");
  const inside = containerPath(path);
  const frozen = async (work: () => Promise<void>): Promise<void> => {
    const paused = status === Status.RUNNING && (await api.pause(ref).then(() => true, () => false));
    try {
      await work();
    } finally {
      if (paused) await api.resume(ref);
    }
  };
  if (c.source !== "-") {
    await frozen(() => stream.copyOutAsTar(root, inside, c.followLink));
    return 0;
  }
  stream.extractionPoint(root, inside); // refused before stdin is read, as docker does
  await stream.withSpooledStdin((file) => frozen(() => stream.copyInFromTar(root, inside, file, c.archive)));
  return 0;
}

function copyOut(root: string, path: string, hostDst: string, c: { archive: boolean; followLink: boolean }): void {
  const follow = c.followLink || /\/\.?$/.test(path);
  const src = resolveInRoot(root, path, follow);
  const st = statOr(src, false);
  if (!st) throw new NotFoundError(`${path}: no such file or directory in the container`);
  const dst = resolve(hostDst) + (hostDst.endsWith("/") ? "/" : "");
  const dstSt = statOr(dst, true);
  const target = copyTarget(path, st.isDirectory(), dst, { exists: dstSt !== undefined, isDirectory: dstSt?.isDirectory() ?? false });
  if (!statOr(target, false)) requireParent(target, hostDst);
  const owner = c.archive ? undefined : { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  copyOrRollback(src, hostWriter(target), statOr(target, false) !== undefined, owner ? { owner } : {});
}

function copyIn(hostSrc: string, root: string, path: string, c: { archive: boolean; followLink: boolean }): void {
  const srcPath = c.followLink ? (realpathOr(resolve(hostSrc)) ?? resolve(hostSrc)) : resolve(hostSrc);
  const st = statOr(srcPath, hostSrc.endsWith("/") || hostSrc.endsWith("/."));
  if (!st) throw new NotFoundError(`${hostSrc}: no such file or directory`);
  // the destination as the container sees it: symlinks in it followed, inside the root
  const resolved = resolveInRoot(root, path, true);
  const inContainer = "/" + relative(root, resolved);
  const dstSt = statOr(resolved, false);
  const dst = inContainer + (path.endsWith("/") && inContainer !== "/" ? "/" : "");
  const target = copyTarget(hostSrc, st.isDirectory(), dst, { exists: dstSt !== undefined, isDirectory: dstSt?.isDirectory() ?? false });
  const write = rootWriter(root, target);
  const existed = statOr(write(""), false) !== undefined;
  if (!existed) requireParent(write(""), target);
  copyOrRollback(srcPath, write, existed, c.archive ? {} : { owner: { uid: 0, gid: 0 } });
}
