// The command lines of `runc checkpoint` and `runc restore`, byte for byte in go-runc's order
// (CheckpointOpts.args, then the actions; RestoreOpts after the CRIU options, then --bundle and the
// id), so that a restore or checkpoint through our shim is the runc call containerd's shim makes.
import type { CheckpointOptions, CriuOptions, RestoreOptions } from "../oci/runtime.ts";

/** The CRIU flags both verbs share, in go-runc's CheckpointOpts.args order. */
export function criuArgs(o: CriuOptions): string[] {
  const out: string[] = [];
  if (o.imagePath) out.push("--image-path", o.imagePath);
  if (o.workPath) out.push("--work-path", o.workPath);
  if (o.parentPath) out.push("--parent-path", o.parentPath);
  if (o.openTcp) out.push("--tcp-established");
  if (o.externalUnixSockets) out.push("--ext-unix-sk");
  if (o.terminal) out.push("--shell-job");
  if (o.pageServer) out.push("--page-server", o.pageServer);
  if (o.fileLocks) out.push("--file-locks");
  if (o.cgroupsMode) out.push("--manage-cgroups-mode", o.cgroupsMode);
  for (const ns of o.emptyNamespaces ?? []) out.push("--empty-ns", ns);
  if (o.lazyPages) out.push("--lazy-pages");
  return out;
}

/** `runc checkpoint` (after the global flags): the options, the leave-running action, the id. */
export function checkpointArgs(id: string, o: CheckpointOptions): string[] {
  return ["checkpoint", ...criuArgs(o), ...(o.leaveRunning ? ["--leave-running"] : []), id];
}

/** `runc restore` (after the global flags). */
export function restoreArgs(id: string, o: RestoreOptions): string[] {
  const out = ["restore", ...criuArgs(o)];
  if (o.detach) out.push("--detach");
  if (o.pidFile) out.push("--pid-file", o.pidFile);
  if (o.consoleSocket) out.push("--console-socket", o.consoleSocket);
  if (o.noPivot) out.push("--no-pivot");
  // go-runc's spelling (one dash); runc's flag parser takes both
  if (o.noSubreaper) out.push("-no-subreaper");
  out.push("--bundle", o.bundle, id);
  return out;
}
