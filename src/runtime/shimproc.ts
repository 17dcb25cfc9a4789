// Running a shim binary's one-shot actions, the way containerd's runtime/v2/binary.go does:
// `start` (prints the address the shim serves on) and `delete` (cleans up after a dead shim and
// prints a DeleteResponse). Flags: -namespace -address -publish-binary, then -id [-bundle] [-debug]
// and the action; cwd is the bundle; TTRPC_ADDRESS is where the shim publishes events.
import { fromBinary } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { DeadlineExceededError, FailedPreconditionError, UnknownError } from "../errdefs.ts";
import { DeleteResponseSchema } from "../gen/containerd/task/v2/shim_pb.ts";
import { isCompiled } from "../native.ts";
import type { Bundle } from "./bundle.ts";
import type { ExitInfo } from "./events.ts";

export interface ShimCommandConfig {
  /** Absolute path of the shim binary. */
  binary: string;
  bundle: Bundle;
  /** bunker's API address (the shims hash it into their socket path). */
  address: string;
  /** bunker's events socket (TTRPC_ADDRESS). */
  ttrpcAddress: string;
  /** The bunker executable, for -publish-binary. */
  publishBinary: string;
  debug?: boolean;
}

/**
 * Generous on purpose: a start may wait on its group's start lock behind another starter (containerd,
 * another bunker), and a loaded 2-core machine takes seconds to start a runtime. The manager queues
 * its own starts before this deadline begins (shim-start.ts), so queueing does not eat into it.
 */
export const START_TIMEOUT_MS = 30_000;
/** As generous as start: a dead grouped shim leaves many deletes, each a runtime start plus `runc delete`. */
export const DELETE_TIMEOUT_MS = 30_000;
/** After the action exits, how long a leaked stdout may stay open before we stop reading it. */
const STDOUT_GRACE_MS = 200;

/**
 * Running from sources (bunker as a library under `bun test`), the shim is the package's launcher
 * (bin/containerd-shim-bunker-v1), a shell script that needs a bun: ours, which PATH may not have.
 */
function ownBun(): { BUNKER_BUN?: string } {
  return isCompiled() || process.env.BUNKER_BUN !== undefined ? {} : { BUNKER_BUN: process.execPath };
}

function baseArgs(c: ShimCommandConfig): string[] {
  return [c.binary, "-namespace", c.bundle.namespace, "-address", c.address, "-publish-binary", c.publishBinary];
}

interface ActionResult {
  code: number;
  stdout: Uint8Array;
  stderr: string;
}

async function collect(stream: ReadableStream<Uint8Array>, until: Promise<unknown>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const reader = stream.getReader();
  let done = false;
  const reading = (async () => {
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      chunks.push(r.value);
    }
    done = true;
  })().catch(() => undefined);
  await until;
  // A shim whose serve child inherited stdout would keep it open forever: read what is there.
  await Promise.race([reading, Bun.sleep(STDOUT_GRACE_MS)]);
  if (!done) await reader.cancel().catch(() => undefined);
  return Buffer.concat(chunks);
}

async function runAction(cmd: string[], c: ShimCommandConfig, stdin: Uint8Array | undefined, timeoutMs: number, action: string): Promise<ActionResult> {
  let proc: Bun.Subprocess<"pipe" | "ignore", "pipe", "pipe">;
  try {
    proc = Bun.spawn(cmd, {
      cwd: c.bundle.path,
      env: { ...process.env, ...ownBun(), TTRPC_ADDRESS: c.ttrpcAddress, GOMAXPROCS: "2" },
      stdin: stdin ? "pipe" : "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
  } catch (err) {
    throw new FailedPreconditionError(`shim ${action}: cannot run ${c.binary}: ${(err as Error).message}`, { cause: err });
  }
  if (stdin && proc.stdin) {
    // The runtime options travel as a protobuf Any on stdin; the shim reads to EOF.
    void Promise.resolve(proc.stdin.write(stdin)).then(() => proc.stdin?.end()).catch(() => undefined);
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, timeoutMs);
  try {
    const [stdout, stderrBytes, code] = await Promise.all([
      collect(proc.stdout, proc.exited),
      collect(proc.stderr, proc.exited),
      proc.exited,
    ]);
    if (timedOut) throw new DeadlineExceededError(`shim ${action}: ${c.binary} did not finish within ${timeoutMs} ms (killed; is the machine overloaded?)`);
    return { code, stdout, stderr: new TextDecoder().decode(stderrBytes).trim() };
  } finally {
    clearTimeout(timer);
  }
}

function firstLine(s: string, max = 200): string {
  const line = s.split("\n").find((l) => l.trim() !== "")?.trim() ?? "";
  return line.length > max ? `${line.slice(0, max)}…` : line;
}

/**
 * The shim's reply to `start`: a plain address (containerd 1.6) or the JSON bootstrap params of
 * 1.7 ({"version":2,"address":...,"protocol":"ttrpc"}). Anything else is refused with the text.
 */
export function parseStartReply(stdout: string): string {
  const text = stdout.trim();
  if (text.startsWith("{")) {
    let params: unknown;
    try {
      params = JSON.parse(text);
    } catch {
      throw new UnknownError(`shim start printed malformed JSON: ${firstLine(text)}`);
    }
    const p = params as { version?: unknown; address?: unknown; protocol?: unknown };
    if (p.version !== 2 && p.version !== undefined) throw new UnknownError(`shim start: unsupported bootstrap version ${JSON.stringify(p.version)}`);
    if (p.protocol !== undefined && p.protocol !== "ttrpc") throw new UnknownError(`shim start: unsupported protocol ${JSON.stringify(p.protocol)} (bunker speaks ttrpc)`);
    if (typeof p.address !== "string") throw new UnknownError(`shim start: bootstrap params have no address: ${firstLine(text)}`);
    return checkAddress(p.address);
  }
  if (text.includes("\n")) throw new UnknownError(`shim start printed more than an address: ${firstLine(text)}`);
  return checkAddress(text);
}

function checkAddress(address: string): string {
  if (!/^unix:\/\/\S+$/.test(address) && !/^\/\S+$/.test(address)) {
    throw new UnknownError(`shim start did not print a unix socket address: ${JSON.stringify(firstLine(address, 100))}`);
  }
  return address;
}


/** Runs `start` and returns the address the shim serves on. */
export async function shimStart(c: ShimCommandConfig, options?: Uint8Array, timeoutMs = START_TIMEOUT_MS): Promise<string> {
  const cmd = [...baseArgs(c), "-id", c.bundle.id, ...(c.debug ? ["-debug"] : []), "start"];
  const r = await runAction(cmd, c, options, timeoutMs, "start");
  const out = new TextDecoder().decode(r.stdout);
  if (r.code !== 0) {
    const why = firstLine(r.stderr) || firstLine(out) || `exit status ${r.code}`;
    throw new FailedPreconditionError(`shim start failed (${c.binary}): ${why}`);
  }
  if (out.trim() === "") throw new UnknownError(`shim start (${c.binary}) printed no address${r.stderr ? `: ${firstLine(r.stderr)}` : ""}`);
  return parseStartReply(out);
}

/** Runs `delete` for a shim that is gone and returns the exit it reports for the task. */
export async function shimDelete(c: ShimCommandConfig, timeoutMs = DELETE_TIMEOUT_MS): Promise<ExitInfo> {
  const cmd = [...baseArgs(c), "-id", c.bundle.id, "-bundle", c.bundle.path, "delete"];
  const r = await runAction(cmd, c, undefined, timeoutMs, "delete");
  if (r.code !== 0) throw new FailedPreconditionError(`shim delete failed (${c.binary}): ${firstLine(r.stderr) || `exit status ${r.code}`}`);
  let res;
  try {
    res = fromBinary(DeleteResponseSchema, r.stdout);
  } catch (err) {
    throw new UnknownError(`shim delete printed no DeleteResponse: ${(err as Error).message}`, { cause: err });
  }
  const exitedAt = res.exitedAt ? timestampDate(res.exitedAt) : new Date();
  return { pid: res.pid, exitStatus: res.exitStatus, exitedAt };
}
