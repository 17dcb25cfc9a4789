// Client and server over real unix sockets (no root needed).
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AlreadyExistsError, Code, InvalidArgumentError, UnavailableError } from "../../src/errdefs.ts";
import { Task } from "../../src/gen/containerd/task/v2/shim_pb.ts";
import {
  FrameParser,
  FrameType,
  Server,
  connectUnix,
  dial,
  encodeFrame,
  listenUnix,
  socketPath,
  type CallContext,
} from "../../src/ttrpc/index.ts";
import { decodeResponse } from "../../src/ttrpc/wire-decode.ts";
import { encodeRequestFrame, type ResponseEnvelope } from "../../src/ttrpc/wire.ts";

const dir = mkdtempSync(join(tmpdir(), "bunker-ttrpc-unix-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const sockPath = (): string => join(dir, `s${n++}.sock`);

function echoServer(): Server {
  const server = new Server();
  server.register(Task, {
    // Echoes the id back in `version`: lets tests send and receive payloads of any size.
    connect: (req, ctx: CallContext) => ({ version: req.id, shimPid: process.pid, taskPid: ctx.namespace?.length ?? 0 }),
    wait: () => new Promise(() => {}),
  });
  return server;
}

describe("unix transport", () => {
  test("listens with mode 0600, serves calls, and close() removes the socket", async () => {
    const path = sockPath();
    const server = echoServer();
    const l = await listenUnix(server, path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(path).isSocket()).toBe(true);
    const c = await dial(`unix://${path}`, { namespace: "abc" });
    const r = await c.service(Task).connect({ id: "hello" });
    expect(r).toMatchObject({ version: "hello", shimPid: process.pid, taskPid: 3 });
    c.close();
    l.close();
    server.close();
    expect(existsSync(path)).toBe(false);
  });

  test("large payloads both ways, many in flight: backpressure queues and drains without loss", async () => {
    const path = sockPath();
    const server = echoServer();
    const l = await listenUnix(server, path);
    const c = await dial(path);
    const size = 3 << 20;
    const ids = Array.from({ length: 8 }, (_, i) => String.fromCharCode(97 + i).repeat(size));
    const out = await Promise.all(ids.map((id) => c.service(Task).connect({ id })));
    out.forEach((o, i) => expect(o.version === ids[i]).toBe(true));
    // Small calls interleaved with big ones still get their own answers.
    const mixed = await Promise.all(
      Array.from({ length: 64 }, (_, i) => c.service(Task).connect({ id: i % 8 === 0 ? "x".repeat(1 << 20) : `s${i}` })),
    );
    mixed.forEach((m, i) => expect(m.version.length).toBe(i % 8 === 0 ? 1 << 20 : `s${i}`.length));
    c.close();
    l.close();
    server.close();
  });

  test("an oversized frame over a socket answers ResourceExhausted and the connection still answers", async () => {
    const path = sockPath();
    const server = echoServer();
    const l = await listenUnix(server, path);
    const d = await connectUnix(path);
    const got = new Map<number, ResponseEnvelope>();
    const parser = new FrameParser({ frame: (f) => got.set(f.streamId, decodeResponse(f.data)), oversized: () => {} });
    d.onData((b) => parser.push(b));
    d.onClose(() => {});
    d.write(encodeFrame(1, FrameType.Request, new Uint8Array((4 << 20) + 100)));
    d.write(encodeRequestFrame(3, { service: "containerd.task.v2.Task", method: "Connect", payload: new Uint8Array([0x0a, 1, 0x7a]), timeoutNano: 0, metadata: [] }));
    while (got.size < 2) await Bun.sleep(2);
    expect(got.get(1)!.status.code).toBe(Code.ResourceExhausted);
    expect(got.get(3)!.status.code).toBe(Code.OK);
    d.close();
    l.close();
    server.close();
  });

  test("closing the server fails the client's pending calls and fires onClose", async () => {
    const path = sockPath();
    const server = echoServer();
    const l = await listenUnix(server, path);
    let closed = false;
    const c = await dial(path, { onClose: () => (closed = true) });
    const pending = c.service(Task).wait({ id: "x" }).catch((e: unknown) => e);
    while (server.connections === 0) await Bun.sleep(1);
    await c.service(Task).connect({}); // the wait request is on the wire before this answer
    server.close();
    const err = await pending;
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toBe("ttrpc: closed");
    expect(closed).toBe(true);
    l.close();
  });

  test("a server process killed by SIGKILL fails the client's pending calls with UnavailableError", async () => {
    const path = sockPath();
    const script = `
      import { Task } from ${JSON.stringify(join(import.meta.dir, "../../src/gen/containerd/task/v2/shim_pb.ts"))};
      import { Server, listenUnix } from ${JSON.stringify(join(import.meta.dir, "../../src/ttrpc/index.ts"))};
      const server = new Server();
      server.register(Task, { wait: () => new Promise(() => {}), connect: () => ({ shimPid: process.pid }) });
      await listenUnix(server, ${JSON.stringify(path)});
      console.log("ready");`;
    const child = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "inherit" });
    try {
      const first = await child.stdout.getReader().read();
      expect(new TextDecoder().decode(first.value)).toContain("ready");
      const c = await dial(path);
      expect((await c.service(Task).connect({})).shimPid).toBe(child.pid);
      const pending = [c.service(Task).wait({ id: "a" }), c.service(Task).wait({ id: "b" })].map((p) => p.catch((e: unknown) => e));
      await c.service(Task).connect({}); // both waits reached the server before this answer
      child.kill("SIGKILL");
      for (const err of await Promise.all(pending)) {
        expect(err).toBeInstanceOf(UnavailableError);
        expect((err as Error).message).toBe("ttrpc: closed");
      }
      expect(c.closed).toBe(true);
    } finally {
      child.kill("SIGKILL");
      await child.exited;
    }
  });

  test("a stale socket file is replaced; a live one is refused; a non-socket is refused", async () => {
    const path = sockPath();
    const s1 = echoServer();
    const l1 = await listenUnix(s1, path);
    expect(await listenUnix(echoServer(), path).catch((e: unknown) => e)).toBeInstanceOf(AlreadyExistsError);
    l1.close();
    // A process that exits without cleaning up leaves its socket file behind with no listener.
    const child = Bun.spawnSync([process.execPath, "-e", `Bun.listen({ unix: ${JSON.stringify(path)}, socket: { data() {} } }); process.exit(0)`]);
    expect(child.exitCode).toBe(0);
    expect(statSync(path).isSocket()).toBe(true);
    const s2 = echoServer();
    const l2 = await listenUnix(s2, path);
    const c = await dial(path);
    expect((await c.service(Task).connect({ id: "fresh" })).version).toBe("fresh");
    c.close();
    l2.close();
    s1.close();
    s2.close();

    const file = join(dir, "plain-file");
    writeFileSync(file, "x");
    expect(await listenUnix(echoServer(), file).catch((e: unknown) => e)).toBeInstanceOf(AlreadyExistsError);
  });

  test("authorize() sees the peer's fd and can refuse the connection", async () => {
    const path = sockPath();
    const server = echoServer();
    const fds: number[] = [];
    let allow = false;
    const l = await listenUnix(server, path, { authorize: ({ fd }) => (fds.push(fd), allow) });
    const refused = await dial(path);
    const err = await refused.service(Task).connect({ id: "x" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    allow = true;
    const ok = await dial(path);
    expect((await ok.service(Task).connect({ id: "y" })).version).toBe("y");
    expect(fds.length).toBe(2);
    expect(fds.every((fd) => fd > 2)).toBe(true);
    ok.close();
    l.close();
    server.close();
  });

  test("dialing nothing is UnavailableError; bad addresses are InvalidArgumentError", async () => {
    expect(await dial(join(dir, "missing.sock")).catch((e: unknown) => e)).toBeInstanceOf(UnavailableError);
    expect(() => socketPath("unix://")).toThrow(InvalidArgumentError);
    expect(() => socketPath("/x/" + "a".repeat(120))).toThrow(InvalidArgumentError);
    expect(socketPath("unix:///run/containerd/s/ab")).toBe("/run/containerd/s/ab");
    expect(socketPath("/run/x.sock")).toBe("/run/x.sock");
  });
});
