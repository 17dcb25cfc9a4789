// A fuzzer for a ttrpc server serving containerd's Task service (a bunker shim, or any shim).
//
//   bun tools/fuzz-ttrpc.ts --address unix:///path --seconds 20 --seed 1 [--pid PID] [--max-frames N]
//       [--workers 4] [--slow-readers 2] [--deadline-ms 2000]
//
// Meanwhile a healthy connection keeps calling Connect and State (of ids nobody holds), and the
// target's VmRSS/VmHWM are sampled (PID from --pid, else from the socket's peer credentials).
// Stops by itself after --seconds or --max-frames; prints one line of JSON; exits 0 only when the
// target is alive and every healthy call was answered within its deadline.
import { parseArgs } from "node:util";
import { errorMessage } from "../src/errdefs.ts";
import { connectUnix } from "../src/ttrpc/index.ts";
import { rng, type Rng } from "./fuzz/corpus.ts";
import { HealthProbe, RssSampler } from "./fuzz/observe.ts";
import { newTally, pickScenario, slowReader, type Tally } from "./fuzz/scenarios.ts";

export interface FuzzOptions {
  address: string;
  seconds: number;
  seed: number;
  pid?: number;
  maxFrames?: number;
  workers?: number;
  slowReaders?: number;
  deadlineMs?: number;
}

export interface FuzzSummary {
  ok: boolean;
  address: string;
  seed: number;
  durationMs: number;
  frames: number;
  bytes: number;
  connections: number;
  connectErrors: number;
  answers: number;
  droppedByTarget: number;
  codes: Record<string, number>;
  scenarios: Record<string, number>;
  scenarioErrors: string[];
  healthy: Awaited<ReturnType<HealthProbe["stop"]>>;
  target: { pid: number | null; alive: boolean; startRssKiB: number; peakRssKiB: number; lastRssKiB: number; hwmKiB: number; samples: number };
}

/** The server's pid from SO_PEERCRED, when src/sys's native library is built. */
async function peerPid(address: string): Promise<number | undefined> {
  try {
    const { sys } = await import("../src/sys/index.ts");
    const d = await connectUnix(address, { timeoutMs: 2000 });
    try {
      return sys().peerCred(d.fd).pid;
    } finally {
      d.destroy();
    }
  } catch {
    return undefined;
  }
}

export async function fuzz(opts: FuzzOptions): Promise<FuzzSummary> {
  const started = Date.now();
  const end = started + opts.seconds * 1000;
  const pid = opts.pid ?? (await peerPid(opts.address));
  const sampler = pid === undefined ? undefined : new RssSampler(pid);
  sampler?.start();
  const probe = new HealthProbe(opts.address, opts.deadlineMs ?? 2000);
  probe.start();

  const t: Tally = newTally();
  const errors: string[] = [];
  const root = rng(opts.seed);
  const more = (): boolean =>
    Date.now() < end && (opts.maxFrames === undefined || t.frames < opts.maxFrames) && (sampler?.alive ?? true);
  const run = async (name: string, r: Rng, f: (r: Rng, a: string, t: Tally) => Promise<void>): Promise<void> => {
    t.scenarios[name] = (t.scenarios[name] ?? 0) + 1;
    try {
      await f(r, opts.address, t);
    } catch (err) {
      if (errors.length < 10) errors.push(`${name}: ${errorMessage(err)}`);
    }
    // Let the probe and the sampler run between attacks: their timing must reflect the target, not us.
    await Bun.sleep(1);
  };
  const worker = async (r: Rng): Promise<void> => {
    while (more()) {
      const [name, f] = pickScenario(r);
      await run(name, r, f);
    }
  };
  const slow = async (r: Rng): Promise<void> => {
    while (more()) await run("slow-reader", r, slowReader);
  };
  // Each loop gets its own stream of the seed, so one loop's timing does not change another's bytes.
  const seedOf = (): number => Math.floor(root() * 2 ** 32);
  await Promise.all([
    ...Array.from({ length: opts.workers ?? 4 }, () => worker(rng(seedOf()))),
    ...Array.from({ length: opts.slowReaders ?? 2 }, () => slow(rng(seedOf()))),
  ]);

  const healthy = await probe.stop();
  sampler?.stop();
  const alive = sampler?.alive ?? true;
  return {
    ok: alive && healthy.failures === 0 && healthy.answered > 0,
    address: opts.address,
    seed: opts.seed,
    durationMs: Date.now() - started,
    frames: t.frames,
    bytes: t.bytes,
    connections: t.connections,
    connectErrors: t.connectErrors,
    answers: t.answers,
    droppedByTarget: t.droppedByTarget,
    codes: t.codes,
    scenarios: t.scenarios,
    scenarioErrors: errors,
    healthy,
    target: {
      pid: pid ?? null,
      alive,
      startRssKiB: sampler?.startRssKiB ?? 0,
      peakRssKiB: sampler?.peakRssKiB ?? 0,
      lastRssKiB: sampler?.lastRssKiB ?? 0,
      hwmKiB: sampler?.hwmKiB ?? 0,
      samples: sampler?.samples ?? 0,
    },
  };
}

function positive(name: string, v: string | undefined, dflt?: number): number | undefined {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number, got ${JSON.stringify(v)}`);
  return n;
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      address: { type: "string" },
      seconds: { type: "string" },
      seed: { type: "string" },
      pid: { type: "string" },
      "max-frames": { type: "string" },
      workers: { type: "string" },
      "slow-readers": { type: "string" },
      "deadline-ms": { type: "string" },
    },
  });
  if (!values.address) {
    console.error("usage: bun tools/fuzz-ttrpc.ts --address unix:///path --seconds N --seed S [--pid PID] [--max-frames N]");
    process.exit(2);
  }
  process.on("SIGPIPE", () => {});
  const summary = await fuzz({
    address: values.address,
    seconds: positive("seconds", values.seconds, 10)!,
    seed: positive("seed", values.seed, Date.now() % 2 ** 31)!,
    pid: positive("pid", values.pid),
    maxFrames: positive("max-frames", values["max-frames"]),
    workers: positive("workers", values.workers),
    slowReaders: positive("slow-readers", values["slow-readers"]),
    deadlineMs: positive("deadline-ms", values["deadline-ms"]),
  });
  console.log(JSON.stringify(summary));
  process.exit(summary.ok ? 0 : 1);
}
