// exec in a running container with its exit code and output collected, as `bunker exec` drives
// the bunker.v1 API (src/cli/commands.ts): FIFOs made by us (src/api/stdio.ts), Exec, Wait
// before Start so a fast process never exits unobserved, drain, then Delete of the exec process.
// Output is kept whole in memory: exec in tests is for short commands whose output is asserted on.
import { tmpdir } from "node:os";
import { InvalidArgumentError } from "../errdefs.ts";
import { type Api, startWatched } from "../api/client.ts";
import { openOutputFifos } from "../api/stdio.ts";
import { sys } from "../sys/index.ts";

export interface ExecOptions {
  env?: Readonly<Record<string, string>> | readonly string[];
  workdir?: string;
  /** "uid" or "uid:gid" (numeric; a name would need the image's passwd file inside the container). */
  user?: string;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  stdoutBytes: Uint8Array;
  stderrBytes: Uint8Array;
}

const DRAIN_MS = 2_000;

/** `KEY=VALUE` strings from either form; InvalidArgument for a key docker would refuse. */
export function envList(env: Readonly<Record<string, string>> | readonly string[] | undefined): string[] {
  if (!env) return [];
  if (Array.isArray(env)) return [...(env as readonly string[])];
  return Object.entries(env as Record<string, string>).map(([k, v]) => {
    if (k === "" || k.includes("=")) throw new InvalidArgumentError(`env: ${JSON.stringify(k)} is not a variable name`);
    return `${k}=${v}`;
  });
}

/** A numeric user as the OCI process's user; names are refused with a clear message. */
export function numericUser(user: string): { uid: number; gid: number } {
  const m = /^(\d+)(?::(\d+))?$/.exec(user);
  if (!m) throw new InvalidArgumentError(`exec user ${JSON.stringify(user)} must be numeric (uid or uid:gid)`);
  return { uid: Number(m[1]), gid: Number(m[2] ?? m[1]) };
}

function collector(): { sink: (c: Uint8Array) => void; bytes: () => Uint8Array } {
  const chunks: Uint8Array[] = [];
  return { sink: (c) => void chunks.push(c.slice()), bytes: () => Buffer.concat(chunks) };
}

export async function execIn(api: Api, ref: { namespace: string; id: string }, argv: readonly string[], o: ExecOptions = {}): Promise<ExecResult> {
  if (argv.length === 0 || argv.some((a) => typeof a !== "string")) throw new InvalidArgumentError("exec needs a command: an array of strings");
  const execId = `exec-${Buffer.from(crypto.getRandomValues(new Uint8Array(8))).toString("hex")}`;
  const process = { args: [...argv], env: envList(o.env), ...(o.workdir ? { cwd: o.workdir } : {}), ...(o.user !== undefined ? { user: numericUser(o.user) } : {}) };
  const out = collector();
  const err = collector();
  const io = openOutputFifos(sys(), tmpdir(), false, out.sink, err.sink);
  const proc = { ...ref, execId };
  try {
    await api.exec({ ...proc, process: new TextEncoder().encode(JSON.stringify(process)), stdin: "", stdout: io.stdout, stderr: io.stderr, terminal: false });
    const { waiting } = await startWatched(api, proc);
    io.releaseWriters();
    const exit = await waiting;
    await io.drain(DRAIN_MS);
    await api.delete(proc).catch(() => undefined);
    const stdoutBytes = out.bytes();
    const stderrBytes = err.bytes();
    const dec = new TextDecoder();
    return { exitCode: exit.exitStatus, stdout: dec.decode(stdoutBytes), stderr: dec.decode(stderrBytes), stdoutBytes, stderrBytes };
  } finally {
    io.dispose();
  }
}
