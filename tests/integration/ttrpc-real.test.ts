// Our ttrpc client against real Go peers: containerd's ttrpc events service, and Debian's
// containerd-shim-runc-v2 started through its `start` action and driven through a task's life.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { AnySchema, timestampNow } from "@bufbuild/protobuf/wkt";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { NotFoundError, UnavailableError } from "../../src/errdefs.ts";
import { TaskExitSchema } from "../../src/gen/containerd/events/task_pb.ts";
import { OptionsSchema } from "../../src/gen/containerd/runc/v1/options_pb.ts";
import { Events } from "../../src/gen/containerd/services/events/ttrpc/v1/events_pb.ts";
import { Task } from "../../src/gen/containerd/task/v2/shim_pb.ts";
import { Status } from "../../src/gen/containerd/types/task/task_pb.ts";
import { Server, dial, listenUnix, packAny, socketPath, type Client } from "../../src/ttrpc/index.ts";
import { sys } from "../../src/sys/index.ts";
import { startContainerd, type TestContainerd } from "../support/containerd.ts";
import { killSame, procInfo, waitGone, type ProcInfo } from "../support/procs.ts";
import { copyRootfs } from "../support/rootfs.ts";
import { describeWith } from "../support/require.ts";

const uniq = `${process.pid}${Math.random().toString(36).slice(2, 7)}`;

/** Collects a subprocess's stdout and lets a test wait for a line matching a predicate. */
function lineWatcher(stream: ReadableStream<Uint8Array>): { text(): string; waitFor(pred: (line: string) => boolean, ms: number): Promise<string | undefined> } {
  let buf = "";
  let wake: (() => void) | undefined;
  void (async () => {
    const dec = new TextDecoder();
    for await (const chunk of stream) {
      buf += dec.decode(chunk, { stream: true });
      wake?.();
    }
  })();
  return {
    text: () => buf,
    async waitFor(pred, ms) {
      const deadline = Date.now() + ms;
      for (;;) {
        const hit = buf.split("\n").find(pred);
        if (hit !== undefined) return hit;
        const left = deadline - Date.now();
        if (left <= 0) return undefined;
        await new Promise<void>((r) => {
          const t = setTimeout(r, left);
          wake = () => (clearTimeout(t), r());
        });
      }
    },
  };
}

describeWith(["root", "bin:containerd", "bin:containerd-shim-runc-v2", "bin:runc", "bin:ctr"], "ttrpc against real containerd peers", () => {
  let ctd: TestContainerd;
  let dir: string;
  const cleanups: (() => Promise<void> | void)[] = [];

  beforeAll(async () => {
    ctd = await startContainerd();
    dir = await mkdtemp("/tmp/bunker-ttrpc-real-");
  }, 60_000);

  afterAll(async () => {
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
    await ctd?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 60_000);

  test("(a) Events/Forward of a TaskExit envelope shows up in `ctr events`", async () => {
    const ctr = Bun.spawn(["ctr", "-a", ctd.address, "events"], { stdout: "pipe", stderr: "pipe" });
    cleanups.push(() => void ctr.kill("SIGKILL"));
    const out = lineWatcher(ctr.stdout);
    const client = await dial(ctd.ttrpcAddress, { namespace: "default", connectTimeoutMs: 5000 });
    cleanups.push(() => client.close());
    const events = client.service(Events);
    const forward = (containerId: string, exitStatus: number) =>
      events.forward(
        {
          envelope: {
            timestamp: timestampNow(),
            namespace: "default",
            topic: "/tasks/exit",
            event: packAny(TaskExitSchema, { containerId, id: containerId, pid: 4242, exitStatus, exitedAt: timestampNow() }),
          },
        },
        { timeoutMs: 5000 },
      );

    // `ctr events` gives no sign of having subscribed: forward probes until one comes through.
    let subscribed = false;
    for (let i = 0; i < 40 && !subscribed; i++) {
      await forward(`probe-${uniq}-${i}`, 0);
      subscribed = (await out.waitFor((l) => l.includes(`probe-${uniq}-`), 500)) !== undefined;
    }
    expect(subscribed).toBe(true);

    const id = `exit-${uniq}`;
    await forward(id, 137);
    const line = await out.waitFor((l) => l.includes(`"container_id":"${id}"`), 10_000);
    expect(line).toBeDefined();
    // ctr decoded our Any (so its type URL is right) and printed namespace, topic and fields.
    expect(line).toContain(" default /tasks/exit ");
    expect(line).toContain('"pid":4242');
    expect(line).toContain('"exit_status":137');
    ctr.kill("SIGKILL");
    await ctr.exited;
  }, 60_000);

  test("(b) drives containerd-shim-runc-v2: start, Connect, Create, Start, Wait, State, Kill, Delete, Shutdown", async () => {
    const ns = `bunker${uniq}`;
    const id = `ttrpc-${uniq}`;
    const bundle = join(dir, "bundle");
    await copyRootfs(join(bundle, "rootfs"));
    const spec = Bun.spawnSync(["runc", "spec"], { cwd: bundle, stderr: "pipe" });
    expect(spec.stderr.toString()).toBe("");
    const config = JSON.parse(await readFile(join(bundle, "config.json"), "utf8")) as {
      process: { args: string[]; terminal: boolean };
    };
    config.process.args = ["sh", "-c", "echo hello from busybox; exec sleep 600"];
    config.process.terminal = false;
    await writeFile(join(bundle, "config.json"), JSON.stringify(config));
    cleanups.push(async () => {
      Bun.spawnSync(["runc", "--root", `/run/containerd/runc/${ns}`, "delete", "--force", id], { stdout: "ignore", stderr: "ignore" });
      await rm(`/run/containerd/runc/${ns}`, { recursive: true, force: true });
    });
    // The serving shim opens <bundle>/log (a FIFO containerd makes and reads) for writing and exits
    // if it is missing. `cat` is our reader; it ends at EOF when the shim exits.
    expect(Bun.spawnSync(["mkfifo", join(bundle, "log")]).exitCode).toBe(0);
    const logReader = Bun.spawn(["cat", join(bundle, "log")], { stdout: "pipe" });
    cleanups.push(() => void logReader.kill("SIGKILL"));
    let finished = false;
    cleanups.push(() => {
      if (!finished) console.error(`containerd-shim-runc-v2 log:\n${shimLog.text()}`);
    });
    const shimLog = lineWatcher(logReader.stdout);

    // The runtime options travel on stdin as a protobuf Any; the shim refuses a type URL it cannot resolve.
    const options = toBinary(AnySchema, packAny(OptionsSchema, { binaryName: "runc" }));
    const start = Bun.spawn(
      ["containerd-shim-runc-v2", "-namespace", ns, "-id", id, "-address", ctd.address, "-publish-binary", "/usr/bin/containerd", "start"],
      { cwd: bundle, env: { ...process.env, TTRPC_ADDRESS: ctd.ttrpcAddress }, stdin: options, stdout: "pipe", stderr: "pipe" },
    );
    const [code, stdout, stderr] = await Promise.all([start.exited, new Response(start.stdout).text(), new Response(start.stderr).text()]);
    expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
    const address = stdout.trim();
    expect(address).toMatch(/^unix:\/\/\/run\/containerd\/s\/[0-9a-f]{64}$/);
    expect(readFileSync(join(bundle, "address"), "utf8").trim()).toBe(address);
    const sock = socketPath(address);
    // Registered now so a shim that dies early does not leave its socket behind (runs after the kill below).
    cleanups.push(() => rm(sock, { force: true }));

    const client: Client = await dial(address, { namespace: ns, connectTimeoutMs: 5000, timeoutMs: 30_000 });
    const task = client.service(Task);
    const connected = await task.connect({ id });
    expect(connected.shimPid).toBeGreaterThan(1);
    expect(connected.taskPid).toBe(0);
    const shim = procInfo(connected.shimPid) as ProcInfo;
    expect(shim).toBeDefined();
    cleanups.push(async () => {
      killSame(shim, "SIGKILL");
      await waitGone([shim], 5000);
    });

    const stdoutFile = join(dir, "stdout.log");
    // file:// with an empty stderr panics the 1.6.20 shim (it copies from a stderr pipe it never made).
    const uri = `file://${stdoutFile}`;
    const created = await task.create({ id, bundle, rootfs: [], terminal: false, stdin: "", stdout: uri, stderr: uri });
    expect(created.pid).toBeGreaterThan(1);
    const createdState = await task.state({ id });
    expect(createdState.status).toBe(Status.CREATED);

    const started = await task.start({ id });
    expect(started.pid).toBe(created.pid);
    const waiting = task.wait({ id }); // in flight while we look and kill

    const state = await task.state({ id });
    expect(state).toMatchObject({ id, bundle, pid: created.pid, status: Status.RUNNING });
    const deadline = Date.now() + 10_000;
    while (!existsSync(stdoutFile) || !readFileSync(stdoutFile, "utf8").includes("hello")) {
      if (Date.now() > deadline) throw new Error(`no output in ${stdoutFile}`);
      await Bun.sleep(20);
    }
    expect(readFileSync(stdoutFile, "utf8")).toBe("hello from busybox\n");
    expect(client.inFlight).toBe(1);

    await task.kill({ id, signal: 9 });
    const waited = await waiting;
    expect(waited.exitStatus).toBe(137);
    expect(waited.exitedAt).toBeDefined();
    expect((await task.state({ id })).status).toBe(Status.STOPPED);

    const deleted = await task.delete({ id });
    expect(deleted).toMatchObject({ pid: created.pid, exitStatus: 137 });

    // The shim exits as it answers Shutdown: the answer may or may not beat the close.
    let closed = false;
    client.onClose(() => (closed = true));
    const shut = await task.shutdown({ id }).then(
      () => "answered",
      (e: unknown) => e,
    );
    if (shut !== "answered") {
      expect(shut).toBeInstanceOf(UnavailableError);
    }
    expect(await waitGone([shim], 10_000)).toEqual([]);
    const gone = Date.now() + 5000;
    while ((!closed || existsSync(sock)) && Date.now() < gone) await Bun.sleep(20);
    expect(closed).toBe(true);
    expect(existsSync(sock)).toBe(false);
    expect(await logReader.exited).toBe(0);
    finished = true;
  }, 120_000);

  test("(c) our server answers a Go ttrpc client: `ctr shim` (State, Start, Delete)", async () => {
    // `ctr shim --id ID` dials /run/containerd/s/sha256(<address>/<namespace>/<id>) and calls the Task
    // service with containerd's Go ttrpc client; it never talks to containerd itself.
    const address = join(dir, "not-a-containerd.sock");
    const ns = `bunkergo${uniq}`;
    const id = `go-${uniq}`;
    const sock = `/run/containerd/s/${createHash("sha256").update(`${address}/${ns}/${id}`).digest("hex")}`;
    const seen: string[] = [];
    const server = new Server();
    server.register(Task, {
      state: (req) => {
        seen.push(`State ${req.id}`);
        return { id: req.id, bundle: "/b", pid: 4242, status: Status.RUNNING, stdout: "/o", exitStatus: 0 };
      },
      start: (req) => {
        seen.push(`Start ${req.id}`);
        throw new NotFoundError(`container ${req.id}: not found`);
      },
    });
    const listener = await listenUnix(server, sock);
    cleanups.push(() => {
      listener.close();
      server.close();
    });
    const ctr = async (...args: string[]) => {
      const p = Bun.spawn(["ctr", "-a", address, "-n", ns, "shim", "--id", id, ...args], { stdout: "pipe", stderr: "pipe" });
      const [code, stdout, stderr] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
      return { code, stdout, stderr };
    };

    const state = await ctr("state");
    expect(state.stderr).toBe("");
    expect(state.code).toBe(0);
    expect(JSON.parse(state.stdout)).toMatchObject({ id, bundle: "/b", pid: 4242, status: Status.RUNNING, stdout: "/o" });

    // Our NotFoundError travels as status code 5 with its message; ctr prints the Go status as is.
    const start = await ctr("start", id);
    expect(start.code).not.toBe(0);
    expect(start.stderr).toBe(`ctr: rpc error: code = NotFound desc = container ${id}: not found\n`);

    // No Delete handler: Unimplemented (12), named the way Go's ttrpc server names it.
    const del = await ctr("delete", id);
    expect(del.code).not.toBe(0);
    expect(del.stderr).toBe("ctr: rpc error: code = Unimplemented desc = method Delete\n");
    expect(seen).toEqual([`State ${id}`, `Start ${id}`]);

    listener.close();
    server.close();
    expect(existsSync(sock)).toBe(false);
  }, 60_000);

  test("(d) peer-uid check: authorize() with SO_PEERCRED admits our uid and refuses another", async () => {
    const path = join(dir, "peercred.sock");
    const server = new Server();
    server.register(Task, { connect: () => ({ shimPid: process.pid }) });
    const uids: number[] = [];
    let requiredUid = process.getuid!();
    const listener = await listenUnix(server, path, {
      authorize: ({ fd }) => {
        const { uid } = sys().peerCred(fd);
        uids.push(uid);
        return uid === requiredUid;
      },
    });
    cleanups.push(() => listener.close());
    const ok = await dial(path);
    expect((await ok.service(Task).connect({})).shimPid).toBe(process.pid);
    ok.close();
    requiredUid = 65534; // as if the shim ran as another user than its client
    const refused = await dial(path);
    expect(await refused.service(Task).connect({}).catch((e: unknown) => e)).toBeInstanceOf(UnavailableError);
    expect(uids).toEqual([process.getuid!(), process.getuid!()]);
    listener.close();
    server.close();
  }, 30_000);
});
