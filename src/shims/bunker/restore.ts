// Restore (Task.Create with `checkpoint`) the way containerd's runc shim does it (pkg/process
// init.go createCheckpointedState, init_state.go createdCheckpointState.Start): Create mounts the
// rootfs and opens the stdio but runs nothing; Start runs `runc restore --detach`, which brings the
// checkpointed process back already running, on the same stdio a create would have given it.
// A CRIU failure is answered with the end of CRIU's restore.log, so the caller sees why.
import { mkdirSync, statSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { InvalidArgumentError } from "../../errdefs.ts";
import { OptionsSchema } from "../../gen/containerd/runc/v1/options_pb.ts";
import type { CreateTaskRequest } from "../../gen/containerd/task/v2/shim_pb.ts";
import { anyIs, unpackAny } from "../../ttrpc/any.ts";
import { criuArgs, type CriuOptions, withCriuLog } from "./checkpoint.ts";
import type { OciRuntime, ProcessIO, ProcessPipes } from "../../oci/runtime.ts";

/** What a restore reads and where CRIU works, fixed at Create. */
export interface RestorePlan {
  /** The checkpoint image (the request's `checkpoint`). */
  imagePath: string;
  /** CRIU's work dir (restore.log): Options.criu_work_path, else the bundle's `work` (go: p.WorkDir). */
  workPath: string;
  /** The request's `parent_checkpoint` ("" when none). */
  parentPath: string;
}

/** go-runc's RestoreOpts (CheckpointOpts embedded). */
export interface RestoreArgs extends CriuOptions {
  detach?: boolean;
  pidFile?: string;
  consoleSocket?: string;
  noPivot?: boolean;
  noSubreaper?: boolean;
}

/** Validates a restoring Create before anything is mounted or opened. */
export function restorePlan(req: CreateTaskRequest): RestorePlan {
  const imagePath = req.checkpoint;
  if (!isAbsolute(imagePath)) throw new InvalidArgumentError(`checkpoint path ${JSON.stringify(imagePath)} must be absolute`);
  if (!isDirectory(imagePath)) throw new InvalidArgumentError(`checkpoint ${imagePath} is not a directory`);
  const parentPath = req.parentCheckpoint;
  if (parentPath && !isAbsolute(parentPath)) throw new InvalidArgumentError(`parent checkpoint path ${JSON.stringify(parentPath)} must be absolute`);
  const o = req.options && anyIs(req.options, OptionsSchema) ? unpackAny(req.options, OptionsSchema) : undefined;
  const workPath = o?.criuWorkPath || join(req.bundle, "work");
  if (!isAbsolute(workPath)) throw new InvalidArgumentError(`criu work path ${JSON.stringify(workPath)} must be absolute`);
  return { imagePath, workPath, parentPath };
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** `runc restore` arguments in go-runc's order (Restore: CheckpointOpts.args, then RestoreOpts, --bundle, id). */
export function restoreArgs(id: string, bundle: string, o: RestoreArgs): string[] {
  const out = ["restore", ...criuArgs(o)];
  if (o.detach) out.push("--detach");
  if (o.pidFile) out.push("--pid-file", resolve(o.pidFile));
  if (o.consoleSocket) out.push("--console-socket", o.consoleSocket);
  if (o.noPivot) out.push("--no-pivot");
  // go-runc's spelling (one dash); runc's flag parser takes both
  if (o.noSubreaper) out.push("-no-subreaper");
  out.push("--bundle", bundle, id);
  return out;
}

/** The arguments containerd's shim passes at Start: detached, no subreaper, its pid file. */
export function startRestoreArgs(
  id: string,
  bundle: string,
  plan: RestorePlan,
  o: { pidFile: string; noPivot: boolean; consoleSocket?: string | undefined },
): string[] {
  return restoreArgs(id, bundle, {
    imagePath: plan.imagePath,
    workPath: plan.workPath,
    parentPath: plan.parentPath,
    pidFile: o.pidFile,
    noPivot: o.noPivot,
    detach: true,
    noSubreaper: true,
    ...(o.consoleSocket ? { consoleSocket: o.consoleSocket } : {}),
  });
}

/** Runs the restore; a failure carries the end of CRIU's restore log (when CRIU got that far). */
export async function restore(runtime: OciRuntime, plan: RestorePlan, args: string[], io: ProcessIO): Promise<ProcessPipes> {
  mkdirSync(plan.workPath, { recursive: true, mode: 0o700 });
  const since = Date.now();
  try {
    return await runtime.restore(args, io);
  } catch (err) {
    throw withCriuLog(err, join(plan.workPath, "restore.log"), since);
  }
}
