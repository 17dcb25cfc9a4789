// Facts about other processes from /proc and kill(0), shared by the shim, the manager and the CLI.
import { readFileSync } from "node:fs";

/** Whether a process with this pid exists (EPERM: it does, owned by someone else). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * The fields of /proc/PID/stat after comm (so index 0 is field 3, state), or undefined when there
 * is no such process. comm (field 2) may hold spaces and parentheses: split after its last ')'.
 */
export function procStatFields(pid: number): string[] | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** Field 22 (starttime): with the pid it names one process, as pids get reused. */
export function processStartTime(pid: number): string | undefined {
  return procStatFields(pid)?.[19];
}
