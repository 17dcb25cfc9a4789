// A command run to its end with its output captured, killed (by its pid) after a timeout: what the
// package and standalone tests do with bun, the packed tarball and the installed binary. The caller
// asserts on the result; nothing here throws for a failed command.

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs argv in cwd with exactly `env` (not merged with ours), stdin closed. */
export async function runCommand(argv: string[], opts: { cwd: string; env: Record<string, string | undefined>; timeoutMs: number }): Promise<RunResult> {
  const proc = Bun.spawn(argv, { cwd: opts.cwd, env: opts.env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), opts.timeoutMs);
  try {
    const [code, stdout, stderr] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}
