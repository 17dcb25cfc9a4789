// The cost of bunker as a library's shim: the package's launcher (bin/containerd-shim-bunker-v1,
// bun running the TypeScript sources) against the compiled binary (dist/, scripts/build.sh), both
// started by an embedded manager as `bun test` would start them. Per round and kind: wall time from
// Executor.create to the container's first output line (a fresh shim each time: every round has its
// own address, so its own shim group), and the RSS/PSS of the shim's serve process while the
// container waits. Interleaved rounds, medians. Run as root after scripts/build.sh:
//   bun bench/shim-launcher.ts [rounds=8]
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import pino from "pino";
import { Executor, startEmbeddedRuntime } from "../src/executor/index.ts";
import { generateSpec } from "../src/oci/spec.ts";
import { allProcs, cmdline, killSame, waitGone } from "../tests/support/procs.ts";
import { copyRootfs } from "../tests/support/rootfs.ts";

const ROUNDS = Number(process.argv[2] ?? 8);
const REPO = resolve(import.meta.dir, "..");
// selfDir undefined: nothing on PATH or beside bun, so the resolution falls through to the package's bin/
const KINDS = { launcher: undefined, compiled: join(REPO, "dist") } as const;
type Kind = keyof typeof KINDS;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function memoryKiB(pid: number): { rss: number; pss: number } {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? Number.NaN);
  return { rss: field("Rss"), pss: field("Pss") };
}

async function round(kind: Kind, dir: string, rootfs: string): Promise<{ ms: number; rss: number; pss: number }> {
  const address = join(dir, `${kind}.sock`);
  const selfDir = KINDS[kind];
  const rt = await startEmbeddedRuntime({
    root: join(dir, "root"),
    state: join(dir, "state"),
    address,
    logger: pino({ level: "silent" }),
    ...(selfDir === undefined ? {} : { selfDir }),
  });
  const exited = Promise.withResolvers<void>();
  const exec = new Executor({ manager: rt.manager, namespace: "bench", rootDir: join(dir, "executor"), exitHandler: { handleExitEvent: () => exited.resolve() }, logger: pino({ level: "silent" }) });
  const first = Promise.withResolvers<void>();
  const id = `${kind}-${Date.now()}`;
  const spec = generateSpec({ namespace: "bench", id, args: ["sh", "-c", "echo up; while [ ! -e /go ]; do sleep 0.02; done"] });
  const t0 = performance.now();
  await exec.create(id, { ...spec, root: { path: rootfs, readonly: false } }, (chunk: Uint8Array | null) => {
    if (chunk) first.resolve();
  }, null);
  await first.promise;
  const ms = performance.now() - t0;
  const serve = allProcs().filter((p) => cmdline(p.pid).includes(address) && cmdline(p.pid).includes(" -socket "));
  if (serve.length !== 1) throw new Error(`expected one serve process for ${address}, found ${serve.length}`);
  const mem = memoryKiB(serve[0]!.pid);
  writeFileSync(join(rootfs, "go"), "");
  await exited.promise;
  rmSync(join(rootfs, "go"));
  await exec.close();
  rt.close();
  const left = allProcs().filter((p) => cmdline(p.pid).includes(address));
  for (const p of left) killSame(p, "SIGKILL");
  await waitGone(left, 5_000);
  return { ms, ...mem };
}

const dir = mkdtempSync("/tmp/bunker-bench-launcher-");
try {
  const rootfs = await copyRootfs(join(dir, "rootfs"));
  const results: Record<Kind, { ms: number[]; rss: number[]; pss: number[] }> = {
    launcher: { ms: [], rss: [], pss: [] },
    compiled: { ms: [], rss: [], pss: [] },
  };
  for (let r = 0; r < ROUNDS; r++) {
    for (const kind of Object.keys(KINDS) as Kind[]) {
      const x = await round(kind, dir, rootfs);
      results[kind].ms.push(x.ms);
      results[kind].rss.push(x.rss);
      results[kind].pss.push(x.pss);
    }
  }
  console.log("kind       create->first line (ms)   serve RSS (MiB)   serve PSS (MiB)");
  for (const [kind, v] of Object.entries(results)) {
    console.log(`${kind.padEnd(10)} ${median(v.ms).toFixed(0).padStart(24)} ${(median(v.rss) / 1024).toFixed(1).padStart(17)} ${(median(v.pss) / 1024).toFixed(1).padStart(17)}`);
  }
  console.log(JSON.stringify({ rounds: ROUNDS, results }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
