// ttrpc benchmark: our client against our server (a separate Bun process) and against Debian's
// containerd-shim-runc-v2 (Go ttrpc), same calls, same run. Run: bun bench/ttrpc.ts [seconds]
import { mkdtempSync, rmSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Task } from "../src/gen/containerd/task/v2/shim_pb.ts";
import { dial, socketPath, type Client } from "../src/ttrpc/index.ts";

const seconds = Number(process.argv[2] ?? 2);
const MiB = 1 << 20;
const dir = mkdtempSync(join(tmpdir(), "bunker-bench-ttrpc-"));
const started: { pid: number; name: string }[] = [];

interface Row {
  name: string;
  unit: string;
  ours: number;
  go: number | undefined;
}

/** Runs `one` with `inFlight` concurrent loops for `ms`; returns completed calls per second. */
async function rate(one: () => Promise<unknown>, inFlight: number, ms: number): Promise<number> {
  let done = 0;
  const end = performance.now() + ms;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < end) {
        await one();
        done++;
      }
    }),
  );
  return done / ((performance.now() - t0) / 1000);
}

async function measure(client: Client): Promise<Map<string, number>> {
  const task = client.service(Task);
  const small = () => task.connect({ id: "bench" });
  const bigId = "x".repeat(MiB);
  const big = () => task.connect({ id: bigId });
  await rate(small, 8, 300); // warm up both ends
  await rate(big, 2, 300);
  const ms = seconds * 1000;
  return new Map([
    ["sequential", await rate(small, 1, ms)],
    ["32 in flight", await rate(small, 32, ms)],
    ["1 MiB request, sequential", await rate(big, 1, ms)],
    ["1 MiB request, 4 in flight", await rate(big, 4, ms)],
  ]);
}

async function startOurs(): Promise<{ address: string; stop(): Promise<void> }> {
  const sock = join(dir, "ours.sock");
  const proc = Bun.spawn([process.execPath, join(import.meta.dir, "ttrpc-server.ts"), sock], { stdout: "pipe", stderr: "inherit" });
  started.push({ pid: proc.pid, name: "bench/ttrpc-server.ts" });
  const reader = proc.stdout.getReader();
  const first = await reader.read();
  if (!new TextDecoder().decode(first.value).includes("ready")) throw new Error("bench server did not start");
  return {
    address: sock,
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
    },
  };
}

/** Starts containerd-shim-runc-v2 via its `start` action in a throwaway bundle; no containerd needed for Connect. */
async function startGoShim(): Promise<{ address: string; stop(client: Client): Promise<void> }> {
  const bundle = join(dir, "bundle");
  Bun.spawnSync(["mkdir", "-p", bundle]);
  writeFileSync(join(bundle, "config.json"), JSON.stringify({ ociVersion: "1.0.2", annotations: {} }));
  // The serving shim writes its log to <bundle>/log, a FIFO containerd normally reads.
  if (Bun.spawnSync(["mkfifo", join(bundle, "log")]).exitCode !== 0) throw new Error("mkfifo failed");
  const logReader = Bun.spawn(["cat", join(bundle, "log")], { stdout: "ignore" });
  started.push({ pid: logReader.pid, name: "cat log" });
  const ns = `bench${process.pid}`;
  const start = Bun.spawn(
    ["containerd-shim-runc-v2", "-namespace", ns, "-id", "bench", "-address", join(dir, "no-containerd.sock"), "-publish-binary", "/usr/bin/containerd", "start"],
    { cwd: bundle, env: { ...process.env, TTRPC_ADDRESS: join(dir, "no-containerd.sock.ttrpc") }, stdin: "ignore", stdout: "pipe", stderr: "pipe" },
  );
  const [code, out, err] = await Promise.all([start.exited, new Response(start.stdout).text(), new Response(start.stderr).text()]);
  if (code !== 0) throw new Error(`containerd-shim-runc-v2 start: exit ${code}: ${err}`);
  const address = out.trim();
  return {
    address,
    async stop(client: Client) {
      const { shimPid } = await client.service(Task).connect({ id: "bench" });
      started.push({ pid: shimPid, name: "containerd-shim-runc-v2" });
      // With no containers, Shutdown makes the shim exit (and remove its socket).
      await client.service(Task).shutdown({ id: "bench" }).catch(() => undefined);
      client.close();
      const deadline = Date.now() + 5000;
      while (alive(shimPid) && Date.now() < deadline) await Bun.sleep(20);
      await logReader.exited;
      rmSync(socketPath(address), { force: true });
      rmSync(`/run/containerd/runc/${ns}`, { recursive: true, force: true });
    },
  };
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

function fmt(n: number | undefined): string {
  return n === undefined ? "-" : n >= 100 ? Math.round(n).toLocaleString("en-US") : n.toFixed(1);
}

const rows: Row[] = [];
try {
  const ours = await startOurs();
  const oursClient = await dial(ours.address);
  const oursRes = await measure(oursClient);
  oursClient.close();
  await ours.stop();

  let goRes: Map<string, number> | undefined;
  if (Bun.which("containerd-shim-runc-v2") && process.getuid?.() === 0) {
    const go = await startGoShim();
    const goClient = await dial(go.address);
    goRes = await measure(goClient);
    await go.stop(goClient);
  } else {
    console.error("containerd-shim-runc-v2 missing or not root: Go column skipped");
  }
  for (const [name, v] of oursRes) {
    // A 1 MiB call moves 1 MiB: calls/s of those is MiB/s.
    rows.push({ name, unit: name.startsWith("1 MiB") ? "MiB/s" : "calls/s", ours: v, go: goRes?.get(name) });
  }
} finally {
  for (const p of started.reverse()) {
    if (alive(p.pid)) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        // exited meanwhile
      }
    }
  }
  if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
}

const header = ["unary Task.Connect over a unix socket", "unit", "bunker client -> bunker server", "bunker client -> Go shim", "bunker/Go"];
const body = rows.map((r) => [r.name, r.unit, fmt(r.ours), fmt(r.go), r.go ? `${(r.ours / r.go).toFixed(2)}x` : "-"]);
const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
const line = (cells: string[]) => "| " + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ") + " |";
console.log(line(header));
console.log("|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|");
for (const b of body) console.log(line(b));
console.log(`(${seconds} s per cell; Bun ${Bun.version}; ${navigator.hardwareConcurrency} CPUs)`);
