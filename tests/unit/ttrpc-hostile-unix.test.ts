// The server's limits over real unix sockets (no root needed): a peer that floods requests and
// never reads is paused by the kernel's pushback, costs the server a bounded queue, and does not
// delay a healthy connection; a peer that disconnects mid-frame is forgotten.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Task } from "../../src/gen/containerd/task/v2/shim_pb.ts";
import { FrameType, Server, connectUnix, dial, encodeHeader, listenUnix } from "../../src/ttrpc/index.ts";
import { encodeRequestFrame } from "../../src/ttrpc/wire.ts";

const dir = mkdtempSync(join(tmpdir(), "bunker-ttrpc-hostile-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const sockPath = (): string => join(dir, `h${n++}.sock`);

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(2);
  }
}

function connectFrame(id: number, size: number): Uint8Array {
  // Connect echoes the id back, so each answer is about `size` bytes.
  const payload = new Uint8Array([0x0a, 0x80 | (size & 0x7f), size >>> 7, ...new Uint8Array(size).fill(0x61)]);
  return encodeRequestFrame(id, { service: "containerd.task.v2.Task", method: "Connect", payload, timeoutNano: 0, metadata: [] });
}

describe("hostile peers over unix sockets", () => {
  test("a flooding peer that never reads is paused, its queue stays bounded, and a healthy peer is answered promptly", async () => {
    const path = sockPath();
    const pauseBytes = 256 * 1024;
    const server = new Server({ pauseBytes });
    server.register(Task, { connect: (req) => ({ version: req.id }) });
    const l = await listenUnix(server, path);
    try {
      const flooder = await connectUnix(path);
      flooder.onData(() => {});
      flooder.onClose(() => {});
      flooder.pause();
      const frame = (i: number): Uint8Array => connectFrame(2 * i + 1, 8000);
      // 16 MiB of requests whose answers total as much: far more than the server may queue.
      for (let i = 0; i < 2000; i++) flooder.write(frame(i));
      await until(() => server.connectionStats().some((s) => s.readPaused), "the server to stop reading the flooder");
      const healthy = await dial(path, { timeoutMs: 2000 });
      const latencies: number[] = [];
      for (let i = 0; i < 50; i++) {
        const t0 = performance.now();
        expect((await healthy.service(Task).connect({ id: `h${i}` })).version).toBe(`h${i}`);
        latencies.push(performance.now() - t0);
      }
      const stats = server.connectionStats();
      const flood = stats.find((s) => s.readPaused)!;
      // At most the pause mark plus the answers of the requests one read brought in.
      expect(flood.queuedBytes).toBeLessThan(4 << 20);
      // The kernel pushed back: most of the flood still sits in the flooder's own queue.
      expect(flooder.buffered).toBeGreaterThan(8 << 20);
      // Generous for a loaded 2-core machine; a blocked event loop would miss it by seconds.
      expect(Math.max(...latencies)).toBeLessThan(1000);
      healthy.close();
      flooder.destroy();
      await until(() => server.connections === 0, "both connections to end");
    } finally {
      l.close();
      server.close();
    }
  }, 30_000);

  test("peers that hang up mid-header, mid-body and mid-skip leave no connection behind", async () => {
    const path = sockPath();
    const server = new Server();
    server.register(Task, { connect: () => ({ version: "v" }) });
    const l = await listenUnix(server, path);
    try {
      const partials = [
        encodeHeader({ length: 100, streamId: 1, type: FrameType.Request, flags: 0 }).subarray(0, 6),
        new Uint8Array([...encodeHeader({ length: 4 << 20, streamId: 1, type: FrameType.Request, flags: 0 }), 1, 2, 3]),
        new Uint8Array([...encodeHeader({ length: 0xffffffff, streamId: 1, type: FrameType.Request, flags: 0 }), ...new Uint8Array(70000)]),
      ];
      for (let round = 0; round < 20; round++) {
        for (const bytes of partials) {
          const d = await connectUnix(path);
          d.onData(() => {});
          d.onClose(() => {});
          d.write(bytes);
          d.close();
        }
      }
      await until(() => server.connections === 0, "every partial peer to be forgotten");
      const c = await dial(path, { timeoutMs: 2000 });
      expect((await c.service(Task).connect({})).version).toBe("v");
      c.close();
    } finally {
      l.close();
      server.close();
    }
  }, 30_000);
});
