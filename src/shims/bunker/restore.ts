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
import { withCriuLog } from "./checkpoint.ts";
import type { OciRuntime, ProcessIO, ProcessPipes, RestoreOptions } from "../../oci/runtime.ts";

/** What a restore reads and where CRIU works, fixed at Create. */
export interface RestorePlan {
  /** The checkpoint image (the request's `checkpoint`). */
  imagePath: string;
  /** CRIU's work dir (restore.log): Options.criu_work_path, else the bundle's `work` (go: p.WorkDir). */
  workPath: string;
  /** The request's `parent_checkpoint` ("" when none). */
  parentPath: string;
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

/** The restore containerd's shim runs at Start: detached, no subreaper, its pid file. */
export function startRestoreOptions(bundle: string, plan: RestorePlan, o: { pidFile: string; noPivot: boolean; consoleSocket?: string | undefined }): RestoreOptions {
  return {
    bundle,
    imagePath: plan.imagePath,
    workPath: plan.workPath,
    parentPath: plan.parentPath,
    pidFile: o.pidFile,
    noPivot: o.noPivot,
    detach: true,
    noSubreaper: true,
    ...(o.consoleSocket ? { consoleSocket: o.consoleSocket } : {}),
  };
}

/** Runs the restore; a failure carries the end of CRIU's restore log (when CRIU got that far). */
export async function restore(runtime: OciRuntime, id: string, plan: RestorePlan, opts: RestoreOptions, io: ProcessIO): Promise<ProcessPipes> {
  mkdirSync(plan.workPath, { recursive: true, mode: 0o700 });
  const since = Date.now();
  try {
    return await runtime.restore(id, opts, io);
  } catch (err) {
    throw withCriuLog(err, join(plan.workPath, "restore.log"), since);
  }
}
