// Image benchmark, side by side in one run against one local registry (as root):
//   1. cold pull: `bunker pull` (a fresh --root each run) against `ctr images pull --plain-http
//      --snapshotter overlayfs` into a private containerd 1.6 (fetch and unpack; a fresh namespace
//      each run, with content_sharing_policy = "isolated", so every run downloads every blob and
//      unpacks every layer anew) and against `skopeo copy docker://… oci:DIR` (a fresh dir each run;
//      skopeo fetches but does not unpack, so it is the floor of the download alone), for (a)
//      busybox + one 100 MiB incompressible layer and (b) a 10-layer image; interleaved runs (the
//      order rotates each round), median, ratios. Goal (issue #16): bunker no slower than either.
//      Nothing is deleted until the end: on this machine's ext4 (no journal) a create skips every
//      inode of its block group freed in the last 30 s (the kernel's recently_deleted()), which
//      made whichever tool ran right after a deletion pay 1-3 ms per file.
//   2. `bunker run --rm IMAGE /bin/true` with the image present, against `bunker run --rm --rootfs
//      DIR id /bin/true` on the same busybox layer extracted to a dir; interleaved, median, ratio
//      (goal <= 1.15x).
//   3. peak RSS of `bunker pull` of (a) (/usr/bin/time's maximum resident set size; goal < 100 MiB),
//      with ctr's and skopeo's for reference (containerd's unpack runs in the daemon, not in ctr).
// The images are umoci-built (tests/support/image-fixtures.ts) and pushed with skopeo, so layers are
// gzip-compressed as registries serve them. Everything started here (registry, containerd, its
// shims) is ended by pid, and every temp dir is removed.
// Usage: bun bench/images.ts [runs=5]. Prints a table and one JSON line. With BENCH_BUNKER_BASELINE=
// <path of another compiled bunker> its pulls are interleaved too (tool "base"): a before/after
// comparison on one loaded machine means something only when measured in the same rounds.
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { BunkerEnv } from "../tests/support/cli-harness.ts";
import { startContainerd, type TestContainerd } from "../tests/support/containerd.ts";
import { imageFixtures, pushFixture, removeImageFixtures } from "../tests/support/image-fixtures.ts";
import { startRegistry, type TestRegistry } from "../tests/support/registry.ts";

const RUNS = Number(process.argv[2] ?? 5);
const BIG_LAYER_BYTES = 100 << 20;
const EXTRA_LAYERS = 9; // on top of busybox's: 10 layers in all
const NS = "bench";
const MiB = 1024;

type Tool = "bunker" | "ctr" | "skopeo" | "base";
const BASELINE = process.env.BENCH_BUNKER_BASELINE;
const TOOLS: Tool[] = BASELINE ? ["bunker", "ctr", "skopeo", "base"] : ["bunker", "ctr", "skopeo"];

interface Sample {
  ms: number;
  maxRssKiB: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function run(argv: string[]): string {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${argv.join(" ")} failed (${r.status}): ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** Wall time and peak RSS of one command, under /usr/bin/time (its fork and wait are in every tool's figure alike). */
async function measure(argv: string[], env: Record<string, string>, rssFile: string): Promise<Sample> {
  const t0 = performance.now();
  const p = Bun.spawn(["/usr/bin/time", "-o", rssFile, "-f", "%M", ...argv], { env, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
  const ms = performance.now() - t0;
  if (code !== 0) throw new Error(`${argv.join(" ")}: exit ${code}: ${err.trim()}`);
  const maxRssKiB = Number(readFileSync(rssFile, "utf8").trim().split("\n").pop());
  return { ms, maxRssKiB };
}

/** A layer tar made with GNU tar (numeric root ownership, sorted), as the fixtures' own layers are. */
function tarOf(stage: string, out: string): void {
  run(["tar", "--sort=name", "--numeric-owner", "--owner=0", "--group=0", "--mtime=@1700000000", "-C", stage, "-cf", out, "."]);
}

/**
 * Two tags in the fixtures' OCI layout, over its busybox image: "bench-big" (one 100 MiB layer of
 * random bytes, which gzip cannot shrink) and "bench-layers" (9 more layers, each a 1 MiB random
 * file and 200 small text files: some bytes and some metadata per layer).
 */
function buildBenchImages(): { layout: string; busyboxTar: string } {
  const fx = imageFixtures();
  const stage = join(fx.dir, "bench-stage");
  mkdirSync(stage);
  const big = join(stage, "big");
  mkdirSync(big);
  writeFileSync(join(big, "big.bin"), randomBytes(BIG_LAYER_BYTES));
  tarOf(big, join(fx.dir, "bench-big.tar"));
  rmSync(big, { recursive: true });
  run(["umoci", "config", "--image", `${fx.layout}:busybox`, "--tag", "bench-big"]);
  run(["umoci", "raw", "add-layer", "--image", `${fx.layout}:bench-big`, join(fx.dir, "bench-big.tar")]);
  run(["umoci", "config", "--image", `${fx.layout}:busybox`, "--tag", "bench-layers"]);
  for (let i = 1; i <= EXTRA_LAYERS; i++) {
    const dir = join(stage, `layer${i}`);
    mkdirSync(join(dir, `opt/layer${i}/files`), { recursive: true });
    writeFileSync(join(dir, `opt/layer${i}/data.bin`), randomBytes(1 << 20));
    for (let f = 0; f < 200; f++) writeFileSync(join(dir, `opt/layer${i}/files/f${f}.txt`), `layer ${i} file ${f}\n`.repeat(20));
    tarOf(dir, join(fx.dir, `bench-layer${i}.tar`));
    run(["umoci", "raw", "add-layer", "--image", `${fx.layout}:bench-layers`, join(fx.dir, `bench-layer${i}.tar`)]);
  }
  rmSync(stage, { recursive: true });
  return { layout: fx.layout, busyboxTar: join(fx.dir, "busybox.tar") };
}

/** Blob and committed snapshot counts in a namespace: what an unpacked pull must leave there. */
async function containerdHolds(ctd: TestContainerd, ns: string): Promise<{ blobs: number; snapshots: number }> {
  const lines = async (args: string[]) => {
    const r = await ctd.ctr(["-n", ns, ...args]);
    if (r.code !== 0) throw new Error(`ctr ${args.join(" ")}: ${r.stderr}`);
    return r.stdout.split("\n").filter((l) => l.trim());
  };
  const snapshots = (await lines(["snapshots", "--snapshotter", "overlayfs", "ls"])).filter((l) => /\sCommitted\s*$/.test(l));
  return { blobs: (await lines(["content", "ls", "-q"])).length, snapshots: snapshots.length };
}

interface PullCase {
  name: string;
  ref: string;
  /** Layers; the blobs are these plus the manifest and the config. */
  layers: number;
}

async function coldPulls(env: BunkerEnv, ctd: TestContainerd, cases: PullCase[]): Promise<Map<string, Sample[]>> {
  const samples = new Map<string, Sample[]>();
  for (const c of cases) for (const t of TOOLS) samples.set(`${c.name}/${t}`, []);
  const rssFile = join(env.dir, "rss");
  const bunkerEnv = env.spawnEnv();
  const ctrEnv = { ...(process.env as Record<string, string>) };
  let n = 0;
  for (let round = -1; round < RUNS; round++) {
    for (const c of cases) {
      const order = TOOLS.map((_, i) => TOOLS[(i + round + 1) % TOOLS.length]!);
      for (const tool of order) {
        const dir = join(env.dir, `pull-${n}`);
        const ns = `${NS}${n}`;
        n++;
        let argv: string[];
        if (tool === "bunker") argv = [env.bunker, "--root", dir, "pull", "-q", c.ref];
        else if (tool === "base") argv = [BASELINE!, "--root", dir, "pull", "-q", c.ref];
        else if (tool === "skopeo") argv = ["skopeo", "copy", "--quiet", "--src-tls-verify=false", `docker://${c.ref}`, `oci:${dir}:latest`];
        else argv = ["ctr", "-a", ctd.address, "-n", ns, "images", "pull", "--plain-http", "--snapshotter", "overlayfs", c.ref];
        // what the previous run wrote must not be flushed on this one's time
        run(["sync"]);
        const s = await measure(argv, tool === "bunker" || tool === "base" ? bunkerEnv : ctrEnv, rssFile);
        if (round >= 0) samples.get(`${c.name}/${tool}`)!.push(s);
        if (tool === "ctr") {
          // ctr must have fetched every blob into this namespace and unpacked every layer
          const held = await containerdHolds(ctd, ns);
          if (held.snapshots !== c.layers || held.blobs !== c.layers + 2) {
            throw new Error(`ctr pull ${c.ref} left ${held.blobs} blobs and ${held.snapshots} committed snapshots in ${ns}, not ${c.layers + 2} and ${c.layers}`);
          }
        }
      }
    }
  }
  return samples;
}

async function runLifecycle(env: BunkerEnv, imageRef: string, busyboxTar: string): Promise<Record<"image" | "rootfs", number[]>> {
  const pulled = await env.run(["pull", "-q", imageRef]);
  if (pulled.code !== 0) throw new Error(`bunker pull ${imageRef}: ${pulled.stderr}`);
  const rootfs = join(env.dir, "busybox-layer-rootfs");
  mkdirSync(rootfs);
  run(["tar", "-xf", busyboxTar, "-C", rootfs]);
  const e = env.spawnEnv();
  const times: Record<"image" | "rootfs", number[]> = { image: [], rootfs: [] };
  const rssFile = join(env.dir, "rss");
  for (let i = -2; i < RUNS * 4; i++) {
    const image = await measure([env.bunker, ...env.globals(), "run", "--rm", imageRef, "/bin/true"], e, rssFile);
    const dir = await measure([env.bunker, ...env.globals(), "run", "--rm", "--rootfs", rootfs, `rootfs${i + 2}`, "/bin/true"], e, rssFile);
    if (i >= 0) {
      times.image.push(image.ms);
      times.rootfs.push(dir.ms);
    }
  }
  return times;
}

if (process.getuid?.() !== 0) throw new Error("bench/images.ts needs root");
let registry: TestRegistry | undefined;
let ctd: TestContainerd | undefined;
let env: BunkerEnv | undefined;
try {
  env = await BunkerEnv.create("bunker-bench-images-");
  const { busyboxTar } = buildBenchImages();
  registry = await startRegistry();
  const host = registry.host;
  await pushFixture("bench-big", host, "bench/big:latest");
  await pushFixture("bench-layers", host, "bench/layers:latest");
  await pushFixture("busybox", host, "bench/busybox:latest");
  // isolated: a blob another namespace holds is downloaded again, as a cold pull must
  ctd = await startContainerd({ extraConfig: '[plugins."io.containerd.metadata.v1.bolt"]\n  content_sharing_policy = "isolated"\n' });
  const cases: PullCase[] = [
    { name: "100 MiB layer", ref: `${host}/bench/big:latest`, layers: 2 },
    { name: "10 layers", ref: `${host}/bench/layers:latest`, layers: 1 + EXTRA_LAYERS },
  ];
  const pulls = await coldPulls(env, ctd, cases);
  const life = await runLifecycle(env, `${host}/bench/busybox:latest`, busyboxTar);

  const pullMs: Record<string, Record<Tool, number>> = {};
  const pullRssKiB: Record<string, Record<Tool, number>> = {};
  console.log(`\ncold pull from a local registry, median of ${RUNS} interleaved runs (ms; peak RSS of the client process)`);
  console.log(`${"".padEnd(16)}${TOOLS.map((t) => t.padStart(10)).join("")}${"x ctr".padStart(9)}${"x skopeo".padStart(10)}   ${"RSS MiB: bunker / ctr / skopeo"}`);
  for (const c of cases) {
    const ms = Object.fromEntries(TOOLS.map((t) => [t, median(samples(pulls, c.name, t).map((s) => s.ms))])) as Record<Tool, number>;
    const rss = Object.fromEntries(TOOLS.map((t) => [t, Math.max(...samples(pulls, c.name, t).map((s) => s.maxRssKiB))])) as Record<Tool, number>;
    pullMs[c.name] = ms;
    pullRssKiB[c.name] = rss;
    console.log(`${c.name.padEnd(16)}${TOOLS.map((t) => ms[t].toFixed(0).padStart(10)).join("")}${(ms.bunker / ms.ctr).toFixed(2).padStart(9)}${(ms.bunker / ms.skopeo).toFixed(2).padStart(10)}   ${TOOLS.map((t) => (rss[t] / MiB).toFixed(1)).join(" / ")}`);
  }
  console.log("  (ctr: fetch and unpack into containerd's overlayfs snapshotter; skopeo: fetch only, no unpack; goal: bunker <= both)");
  if (BASELINE) for (const c of cases) console.log(`  ${c.name}: bunker / base (${BASELINE}) = ${(pullMs[c.name]!.bunker / pullMs[c.name]!.base).toFixed(2)}`);
  const bigRss = pullRssKiB[cases[0]!.name]!.bunker / MiB;
  console.log(`peak RSS of bunker pull, 100 MiB layer: ${bigRss.toFixed(1)} MiB (goal < 100 MiB)`);
  const lifeMs = { image: median(life.image), rootfs: median(life.rootfs) };
  console.log(`\nbunker run --rm /bin/true, median of ${life.image.length} interleaved runs`);
  console.log(`  IMAGE (present) ${lifeMs.image.toFixed(1)} ms   --rootfs DIR ${lifeMs.rootfs.toFixed(1)} ms   ratio ${(lifeMs.image / lifeMs.rootfs).toFixed(2)}x (goal <= 1.15x)`);
  console.log(JSON.stringify({ bench: "images", runs: RUNS, pullMs, pullRssKiB, runMs: lifeMs, runRatio: lifeMs.image / lifeMs.rootfs }));
} finally {
  await ctd?.stop().catch((err: unknown) => console.error(`containerd stop: ${String(err)}`));
  await registry?.stop();
  await env?.dispose();
  removeImageFixtures();
}

function samples(pulls: Map<string, Sample[]>, name: string, tool: Tool): Sample[] {
  return pulls.get(`${name}/${tool}`)!;
}
