// Task.Checkpoint through `runc checkpoint` (CRIU), as containerd's runc shim does (pkg/process
// init.go checkpoint): the image goes to the request's path, CRIU's work files and log to a work
// dir, and the container keeps running unless the options say exit. A CRIU failure is answered
// with CRIU's own last log lines, so the caller sees why (e.g. a kernel CRIU does not know).
import { mkdirSync, readFileSync, statSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { errorMessage, InvalidArgumentError } from "../../errdefs.ts";
import { CheckpointOptionsSchema } from "../../gen/containerd/runc/v1/options_pb.ts";
import type { CheckpointTaskRequest } from "../../gen/containerd/task/v2/shim_pb.ts";
import { anyIs, unpackAny } from "../../ttrpc/any.ts";
import type { CheckpointOptions, CriuOptions, OciRuntime } from "../../oci/runtime.ts";

/** The CRIU fields of the proto's CheckpointOptions that are set. */
function criuOptionsOf(o: Partial<CriuOptions> | undefined): Omit<CriuOptions, "imagePath"> {
  const out: Omit<CriuOptions, "imagePath"> = {};
  if (!o) return out;
  if (o.openTcp) out.openTcp = true;
  if (o.externalUnixSockets) out.externalUnixSockets = true;
  if (o.terminal) out.terminal = true;
  if (o.fileLocks) out.fileLocks = true;
  if (o.emptyNamespaces?.length) out.emptyNamespaces = [...o.emptyNamespaces];
  if (o.cgroupsMode) out.cgroupsMode = o.cgroupsMode;
  return out;
}

export interface CheckpointPlan {
  imagePath: string;
  workPath: string;
  options: CheckpointOptions;
  exit: boolean;
}

/** The checkpoint a request asks for (containerd's runc shim: the request's path, a work dir in the bundle). */
export function checkpointPlan(req: CheckpointTaskRequest, bundle: string): CheckpointPlan {
  const o = req.options && anyIs(req.options, CheckpointOptionsSchema) ? unpackAny(req.options, CheckpointOptionsSchema) : undefined;
  const imagePath = o?.imagePath || req.path;
  if (!imagePath || !isAbsolute(imagePath)) throw new InvalidArgumentError(`checkpoint path ${JSON.stringify(imagePath)} must be absolute`);
  const workPath = o?.workPath || join(bundle, "criu-work");
  // the proto's CheckpointOptions names its fields as CriuOptions does; unset ones (false, "", []) say nothing
  const options: CheckpointOptions = { ...criuOptionsOf(o), imagePath, workPath, leaveRunning: !o?.exit };
  return { imagePath, workPath, options, exit: o?.exit ?? false };
}

/** Runs the checkpoint; a failure carries the end of CRIU's dump log. */
export async function checkpoint(runtime: OciRuntime, id: string, plan: CheckpointPlan): Promise<void> {
  mkdirSync(plan.imagePath, { recursive: true, mode: 0o700 });
  mkdirSync(plan.workPath, { recursive: true, mode: 0o700 });
  const since = Date.now();
  try {
    await runtime.checkpoint(id, plan.options);
  } catch (err) {
    throw withCriuLog(err, join(plan.workPath, "dump.log"), since);
  }
}

/** A coarse file clock may stamp a log written just now slightly before Date.now() said. */
const CLOCK_SLACK_MS = 100;
const CRIU_LOG_READ_MAX = 256 * 1024;

/**
 * CRIU's last error lines from its log ("vdso: Unexpected rt vDSO area bounds"), without the
 * timestamps; "" when there is none, or when the log predates `since` (an earlier run's, left in a
 * shared work dir).
 */
export function criuLogTail(logPath: string, since = 0): string {
  let text: string;
  try {
    const st = statSync(logPath);
    if (st.mtimeMs < since - CLOCK_SLACK_MS) return "";
    text = readFileSync(logPath, "utf8");
  } catch {
    return "";
  }
  return text
    .slice(-CRIU_LOG_READ_MAX)
    .split("\n")
    .filter((l) => l.includes("Error"))
    .slice(-3)
    .map((l) => l.replace(/^\(\s*[\d.]+\)\s*/, "").trim())
    .join("; ");
}

/** Appends CRIU's reason to a failed runc command's error (the same error object, code kept). */
export function withCriuLog(err: unknown, logPath: string, since = 0): unknown {
  const tail = criuLogTail(logPath, since);
  if (tail && err instanceof Error) err.message = `${errorMessage(err)} (criu: ${tail})`;
  return err;
}
