// The library against the CLI, for what a test does with a container (issue #20), side by side on
// one root, interleaved, no daemon (the library's manager in this process; each CLI call its own):
//   1. start to first log line: `bunker.run(busybox, { waitFor: Wait.log(/ready/) })` against
//      `bunker run -d` then `bunker logs` polled until the line is there
//   2. per-test overhead: start + `exec true` (exit code read) + remove, against
//      `bunker run -d` + `bunker exec` + `bunker rm -f`
// busybox is loaded from the archive scripts/busybox-image.ts builds offline; --net none (both).
// Usage (root): bun bench/lib.ts [runs=10]. Prints a table and one JSON line.
import { join } from "node:path";
import { Bunker, Wait } from "../src/lib/index.ts";
import { BunkerEnv } from "../tests/support/cli-harness.ts";

const RUNS = Number(process.argv[2] ?? 10);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const env = await BunkerEnv.create("bunker-bench-lib-");
try {
  const archive = join(env.dir, "busybox.tar");
  const built = Bun.spawnSync([process.execPath, join(import.meta.dir, "../scripts/busybox-image.ts"), archive], { stderr: "pipe" });
  if (built.exitCode !== 0) throw new Error(`busybox-image.ts: ${built.stderr.toString()}`);
  const cli = async (...args: string[]): Promise<string> => {
    const r = await env.run(args);
    if (r.code !== 0) throw new Error(`bunker ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  await cli("load", "-q", "-i", archive);
  const lib = new Bunker({ mode: "embedded", root: env.root, state: env.state, address: env.address, namespace: env.namespace });
  const cmd = ["sh", "-c", "echo ready; exec sleep 1000"];
  const times = { libFirstLine: [] as number[], cliFirstLine: [] as number[], libCycle: [] as number[], cliCycle: [] as number[] };
  for (let i = -1; i < RUNS; i++) {
    // 1. library: run until its first log line, then exec and remove (the whole cycle)
    let t0 = performance.now();
    const c = await lib.run("busybox", { cmd, network: "none", waitFor: Wait.log(/ready/) });
    const libFirst = performance.now() - t0;
    const r = await c.exec(["true"]);
    if (r.exitCode !== 0) throw new Error(`exec true: ${r.exitCode}`);
    await c.remove();
    const libCycle = performance.now() - t0;
    // 2. CLI: the same through bunker run -d, logs (polled), exec, rm -f
    const id = `cli${i + 1}`;
    t0 = performance.now();
    await cli("run", "-d", "--net", "none", "--name", id, "busybox", ...cmd);
    while (!(await cli("logs", id)).includes("ready")) await Bun.sleep(5);
    const cliFirst = performance.now() - t0;
    await cli("exec", id, "true");
    await cli("rm", "-f", id);
    const cliCycle = performance.now() - t0;
    if (i < 0) continue; // warm-up
    times.libFirstLine.push(libFirst);
    times.libCycle.push(libCycle);
    times.cliFirstLine.push(cliFirst);
    times.cliCycle.push(cliCycle);
  }
  await lib.close();
  const m = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, Math.round(median(v))])) as Record<keyof typeof times, number>;
  console.log(`| start to the first log line, median of ${RUNS} | library ${m.libFirstLine} ms | CLI (run -d, logs polled) ${m.cliFirstLine} ms | ${(m.libFirstLine / m.cliFirstLine).toFixed(2)}x |`);
  console.log(`| start + exec + remove, median of ${RUNS} | library ${m.libCycle} ms | CLI (run -d, logs, exec, rm -f) ${m.cliCycle} ms | ${(m.libCycle / m.cliCycle).toFixed(2)}x |`);
  console.log(JSON.stringify({ bench: "lib", runs: RUNS, medianMs: m }));
} finally {
  await env.dispose();
}
