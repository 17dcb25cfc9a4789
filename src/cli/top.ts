// `bunker top ID [ps OPTIONS]`: docker top. The shim's Pids names the container's processes (host
// pids, from runc ps); the host's own `ps` (default `-ef`, docker's default too) describes them,
// and only its header and the rows of those pids are printed. Running ps on the host rather than
// in the container is docker's way as well: the container needs no ps of its own, and the pids
// are the host's.
import type { Api } from "../api/client.ts";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errdefs.ts";
import type { GlobalOptions } from "./args.ts";
import { stdout } from "./stdout.ts";

const DEFAULT_PS_ARGS = ["-ef"];

/**
 * The header and the rows of `pids` in ps's output, found by its PID column (docker's
 * parsePSOutput); fails when ps printed no PID column (`-o comm` alone).
 */
export function filterPsOutput(output: string, pids: ReadonlySet<number>): string[] {
  const lines = output.split("\n").filter((l) => l.trim() !== "");
  const header = lines[0];
  if (header === undefined) throw new FailedPreconditionError("ps printed nothing");
  const pidColumn = header.trim().split(/\s+/).indexOf("PID");
  if (pidColumn < 0) throw new InvalidArgumentError("ps printed no PID column: its options must include the pid (e.g. -o pid,comm)");
  const rows = lines.slice(1).filter((line) => {
    const pid = Number(line.trim().split(/\s+/)[pidColumn]);
    return Number.isInteger(pid) && pids.has(pid);
  });
  return [header, ...rows];
}

export async function top(api: Api, g: GlobalOptions, c: { id: string; psArgs: string[] }): Promise<number> {
  const { pids } = await api.top({ namespace: g.namespace, id: c.id });
  const ps = Bun.which("ps");
  if (!ps) throw new NotFoundError("top needs the host's ps (procps), and none is on PATH");
  const r = Bun.spawnSync([ps, ...(c.psArgs.length > 0 ? c.psArgs : DEFAULT_PS_ARGS)], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  if (!r.success) throw new InvalidArgumentError(`ps ${c.psArgs.join(" ")} failed (exit ${r.exitCode}): ${r.stderr.toString().trim().split("\n")[0] ?? ""}`);
  for (const line of filterPsOutput(r.stdout.toString(), new Set(pids))) stdout().write(line + "\n");
  return 0;
}
