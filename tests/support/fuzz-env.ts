// Shared set-up for the fuzzing and access tests: the Task target server in its own process, the
// fuzzer as a subprocess (its one-line JSON summary parsed), and a bunker shim serving a live
// container under a private containerd.
import { join, resolve } from "node:path";
import type { FuzzSummary } from "../../tools/fuzz-ttrpc.ts";
import { startContainerd, type TestContainerd } from "./containerd.ts";
import { copyRootfs } from "./rootfs.ts";
import type { ProcInfo } from "./procs.ts";
import { endShims, groupSocket, RUNTIME, shimPath, shimServers, waitFor } from "./shim-env.ts";

export const REPO = resolve(import.meta.dir, "../..");

export interface Target {
  pid: number;
  stop(): Promise<void>;
}

/** tools/fuzz-ttrpc-target.ts on `sock`, ready once it printed its pid. */
export async function startTarget(sock: string): Promise<Target> {
  const proc = Bun.spawn([process.execPath, join(REPO, "tools/fuzz-ttrpc-target.ts"), sock], { stdout: "pipe", stderr: "pipe" });
  const reader = proc.stdout.getReader();
  let out = "";
  while (!out.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`target exited before ready: ${await new Response(proc.stderr).text()}`);
    out += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  const m = /^ready (\d+)/.exec(out);
  if (!m || Number(m[1]) !== proc.pid) throw new Error(`unexpected target output: ${out}`);
  return {
    pid: proc.pid,
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
    },
  };
}

export interface FuzzRun {
  code: number;
  summary: FuzzSummary;
  stderr: string;
}

/** Runs `bun tools/fuzz-ttrpc.ts` and parses its summary line. */
export async function runFuzzer(address: string, seconds: number, seed: number, pid: number): Promise<FuzzRun> {
  const proc = Bun.spawn(
    [process.execPath, join(REPO, "tools/fuzz-ttrpc.ts"), "--address", address, "--seconds", String(seconds), "--seed", String(seed), "--pid", String(pid)],
    { stdout: "pipe", stderr: "pipe" },
  );
  const killer = setTimeout(() => proc.kill("SIGKILL"), (seconds + 60) * 1000);
  const [code, stdout, stderr] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  clearTimeout(killer);
  const line = stdout.trim().split("\n").pop() ?? "";
  let summary: FuzzSummary;
  try {
    summary = JSON.parse(line) as FuzzSummary;
  } catch {
    throw new Error(`fuzzer printed no summary (exit ${code}):\n${stdout}\n${stderr}`);
  }
  return { code, summary, stderr };
}

export interface LiveShim {
  ctd: TestContainerd;
  ns: string;
  /** The container kept running, so the shim has something to serve and does not exit. */
  id: string;
  socket: string;
  shim: ProcInfo;
  taskStatus(): Promise<string | undefined>;
  stop(): Promise<void>;
}

/** A private containerd with one bunker shim serving one running busybox container. */
export async function startLiveShim(ns: string, id: string): Promise<LiveShim> {
  const ctd = await startContainerd({ path: await shimPath(), env: { BUNKER_SHIM_LINGER_MS: "0" } });
  try {
    const rootfs = await copyRootfs(join(ctd.dir, "rootfs"));
    const r = await ctd.ctr(["-n", ns, "run", "-d", "--runtime", RUNTIME, "--rootfs", rootfs, id, "/bin/sleep", "600"], { timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`ctr run -d failed: ${r.stderr}`);
    const shim = await waitFor("the shim's serve process", () => shimServers(ctd)[0]);
    const taskStatus = async (): Promise<string | undefined> => {
      const ls = await ctd.ctr(["-n", ns, "task", "ls"], { timeoutMs: 20_000 });
      return ls.stdout.split("\n").map((l) => l.trim().split(/\s+/)).find((f) => f[0] === id)?.[2];
    };
    return {
      ctd,
      ns,
      id,
      socket: groupSocket(ctd, ns),
      shim,
      taskStatus,
      async stop() {
        await ctd.ctr(["-n", ns, "task", "kill", "-s", "SIGKILL", id], { timeoutMs: 20_000 }).catch(() => undefined);
        await waitFor(`${id} stopped`, async () => (await taskStatus()) !== "RUNNING", 20_000).catch(() => undefined);
        await ctd.ctr(["-n", ns, "task", "delete", id], { timeoutMs: 20_000 }).catch(() => undefined);
        await ctd.ctr(["-n", ns, "container", "rm", id], { timeoutMs: 20_000 }).catch(() => undefined);
        await endShims(ctd).catch(() => undefined);
        await ctd.stop();
      },
    };
  } catch (err) {
    await ctd.stop();
    throw err;
  }
}
