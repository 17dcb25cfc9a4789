// What the fuzzer watches while it attacks: the target's memory (/proc/PID/status) and a healthy
// connection whose cheap calls must all be answered within their deadline.
import { readFileSync } from "node:fs";
import { BunkerError, Code } from "../../src/errdefs.ts";
import { Task } from "../../src/gen/containerd/task/v2/shim_pb.ts";
import { dial, type Client } from "../../src/ttrpc/index.ts";

/** VmRSS and VmHWM in KiB, or undefined once the process is gone. */
export function readMemory(pid: number): { rssKiB: number; hwmKiB: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return undefined;
  }
  if (/^State:\s+Z/m.test(text)) return undefined;
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? 0);
  return { rssKiB: field("VmRSS"), hwmKiB: field("VmHWM") };
}

export class RssSampler {
  startRssKiB = 0;
  peakRssKiB = 0;
  lastRssKiB = 0;
  hwmKiB = 0;
  samples = 0;
  /** Set when a sample finds the process gone. */
  diedAt: number | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    readonly pid: number,
    private readonly intervalMs = 50,
  ) {}

  start(): void {
    this.sample();
    this.startRssKiB = this.lastRssKiB;
    this.timer = setInterval(() => this.sample(), this.intervalMs);
  }

  sample(): void {
    if (this.diedAt !== undefined) return;
    const m = readMemory(this.pid);
    if (!m) {
      this.diedAt = Date.now();
      return;
    }
    this.samples++;
    this.lastRssKiB = m.rssKiB;
    this.hwmKiB = m.hwmKiB;
    if (m.rssKiB > this.peakRssKiB) this.peakRssKiB = m.rssKiB;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.sample();
  }

  get alive(): boolean {
    return this.diedAt === undefined;
  }
}

export interface ProbeStats {
  calls: number;
  answered: number;
  failures: number;
  /** The first few failures, for the report. */
  failureSamples: string[];
  reconnects: number;
  maxLatencyMs: number;
  p99LatencyMs: number;
  codes: Record<string, number>;
}

/**
 * One healthy connection calling Connect and State (of an id nobody holds) one after another. An
 * answer is any status the target sent; a failure is a deadline missed or the connection lost.
 */
export class HealthProbe {
  private readonly latencies: number[] = [];
  private readonly stats: ProbeStats = {
    calls: 0,
    answered: 0,
    failures: 0,
    failureSamples: [],
    reconnects: 0,
    maxLatencyMs: 0,
    p99LatencyMs: 0,
    codes: {},
  };
  private stopped = false;
  private running: Promise<void> | undefined;

  constructor(
    private readonly address: string,
    private readonly deadlineMs: number,
    private readonly gapMs = 10,
  ) {}

  start(): void {
    this.running = this.loop();
  }

  async stop(): Promise<ProbeStats> {
    this.stopped = true;
    await this.running;
    const sorted = this.latencies.slice().sort((a, b) => a - b);
    this.stats.p99LatencyMs = round(sorted[Math.floor(sorted.length * 0.99)] ?? 0);
    this.stats.maxLatencyMs = round(sorted[sorted.length - 1] ?? 0);
    return this.stats;
  }

  private fail(what: string): void {
    this.stats.failures++;
    if (this.stats.failureSamples.length < 5) this.stats.failureSamples.push(what);
  }

  private async loop(): Promise<void> {
    let client: Client | undefined;
    for (let i = 0; !this.stopped; i++) {
      if (!client || client.closed) {
        if (client) this.stats.reconnects++;
        try {
          client = await dial(this.address, { namespace: "fuzz", timeoutMs: this.deadlineMs, connectTimeoutMs: this.deadlineMs });
        } catch (err) {
          this.fail(`dial: ${String(err)}`);
          client = undefined;
          await Bun.sleep(100);
          continue;
        }
      }
      const task = client.service(Task);
      const t0 = performance.now();
      this.stats.calls++;
      let code: number;
      try {
        if (i % 2 === 0) await task.connect({ id: "" });
        else await task.state({ id: `fuzz-probe-${i}` });
        code = Code.OK;
      } catch (err) {
        code = err instanceof BunkerError ? err.code : Code.Unknown;
        const local = err instanceof BunkerError && (code === Code.DeadlineExceeded || code === Code.Unavailable);
        if (local) {
          this.fail(`${i % 2 === 0 ? "Connect" : "State"}: ${err.message}`);
          continue;
        }
      }
      const ms = performance.now() - t0;
      this.latencies.push(ms);
      this.stats.answered++;
      const name = Object.entries(Code).find(([, v]) => v === code)?.[0] ?? String(code);
      this.stats.codes[name] = (this.stats.codes[name] ?? 0) + 1;
      await Bun.sleep(this.gapMs);
    }
    client?.close();
  }
}

const round = (n: number): number => Math.round(n * 10) / 10;
