// The shim driven the way containerd drives it, without containerd: the `start` action in a
// bundle, ttrpc Task calls on the printed address, events received by our own Events service on
// TTRPC_ADDRESS. Covers what `ctr run --rootfs` cannot: rootfs mounts in the Create request, the
// exact event sequence, and the shim going away after Shutdown.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { fromBinary } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TaskCreateSchema, TaskDeleteSchema, TaskExitSchema, TaskStartSchema } from "../../src/gen/containerd/events/task_pb.ts";
import { Task } from "../../src/gen/containerd/task/v2/shim_pb.ts";
import { Status } from "../../src/gen/containerd/types/task/task_pb.ts";
import { isMounted } from "../../src/shims/bunker/manager.ts";
import { sys } from "../../src/sys/index.ts";
import { Server } from "../../src/ttrpc/server.ts";
import { dial, listenUnix, type UnixListener } from "../../src/ttrpc/unix.ts";
import { busyboxRootfs } from "../support/rootfs.ts";
import { type ForwardedEvent, recordForwardedEvents } from "../support/events.ts";
import { describeWith } from "../support/require.ts";
import { SHIM_BINARY, shimBinDir, waitFor } from "../support/shim-env.ts";

const NS = `bkd${process.pid}`;

describeWith(["root", "bin:runc"], "bunker shim driven directly over ttrpc", () => {
  let dir: string;
  let bundle: string;
  let events: ForwardedEvent[];
  let server: Server;
  let listener: UnixListener;
  let shimPid = 0;

  beforeAll(async () => {
    dir = mkdtempSync("/tmp/bunker-direct-");
    bundle = join(dir, "bundle");
    mkdirSync(join(bundle, "rootfs"), { recursive: true });
    const spec = Bun.spawnSync(["runc", "spec", "--bundle", bundle], { env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin` } });
    expect(spec.exitCode).toBe(0);
    const config = JSON.parse(readFileSync(join(bundle, "config.json"), "utf8"));
    config.process.terminal = false;
    config.process.args = ["/bin/sh", "-c", "echo hello-direct; exit 3"];
    config.root = { path: "rootfs", readonly: false };
    writeFileSync(join(bundle, "config.json"), JSON.stringify(config));
    events = [];
    server = new Server();
    recordForwardedEvents(server, events);
    listener = await listenUnix(server, join(dir, "events.sock"));
  }, 120_000);

  afterAll(() => {
    if (shimPid > 0) {
      try {
        process.kill(shimPid, "SIGKILL"); // only if a failed test left it running
      } catch {}
    }
    listener.close();
    server.close();
    if (existsSync(join(bundle, "rootfs"))) sys().unmountAll(join(bundle, "rootfs"));
    rmSync(dir, { recursive: true, force: true });
  });

  test("start, Create with a bind rootfs, Wait before Start, Start, exit, Delete, Shutdown", async () => {
    const shim = join(await shimBinDir(), SHIM_BINARY);
    const start = Bun.spawn([shim, "-namespace", NS, "-address", join(dir, "containerd.sock"), "-publish-binary", "/usr/bin/containerd", "-id", "d1", "start"], {
      cwd: bundle,
      env: { ...process.env, TTRPC_ADDRESS: join(dir, "events.sock"), BUNKER_SHIM_LINGER_MS: "0" },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [code, address, stderr] = await Promise.all([start.exited, new Response(start.stdout).text(), new Response(start.stderr).text()]);
    expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
    expect(address).toMatch(/^unix:\/\/\/run\/containerd\/s\/[0-9a-f]{64}$/);
    expect(readFileSync(join(bundle, "address"), "utf8")).toBe(address);

    const client = await dial(address, { namespace: NS, timeoutMs: 30_000 });
    try {
      const task = client.service(Task);
      shimPid = (await task.connect({ id: "d1" })).shimPid;
      sys().mkfifo(join(dir, "stdout"), 0o600);
      const outFd = openSync(join(dir, "stdout"), constants.O_RDONLY | constants.O_NONBLOCK);
      const output = new Response(Bun.file(outFd).stream()).text();

      const created = await task.create({
        id: "d1",
        bundle,
        rootfs: [{ type: "bind", source: await busyboxRootfs(), options: ["rbind", "ro"] }],
        stdout: join(dir, "stdout"),
      });
      expect(created.pid).toBeGreaterThan(0);
      expect(isMounted(join(bundle, "rootfs"))).toBe(true);
      expect((await task.state({ id: "d1" })).status).toBe(Status.CREATED);

      const waited = task.wait({ id: "d1" }); // ctr calls Wait before Start: it must block
      const started = await task.start({ id: "d1" });
      expect(started.pid).toBe(created.pid);
      const exit = await waited;
      expect(exit.exitStatus).toBe(3);
      expect(await output).toBe("hello-direct\n");
      closeSync(outFd);

      const state = await task.state({ id: "d1" });
      expect(state.status).toBe(Status.STOPPED);
      expect(state.exitStatus).toBe(3);
      await expect(task.start({ id: "d1" })).rejects.toThrow("cannot start a stopped process");

      const deleted = await task.delete({ id: "d1" });
      expect(deleted.exitStatus).toBe(3);
      expect(timestampDate(deleted.exitedAt!).getTime()).toBe(timestampDate(exit.exitedAt!).getTime());
      expect(isMounted(join(bundle, "rootfs"))).toBe(false);
      await expect(task.state({ id: "d1" })).rejects.toThrow("not created");
      await task.shutdown({ id: "d1" });
    } finally {
      client.close();
    }
    const socket = address.slice("unix://".length);
    await waitFor("the shim to exit", () => !existsSync(`/proc/${shimPid}`) || readFileSync(`/proc/${shimPid}/stat`, "utf8").includes(") Z "));
    expect(existsSync(socket)).toBe(false);
    shimPid = 0;

    await waitFor("four events", () => events.length >= 4, 10_000);
    expect(events.map((e) => [e.topic, e.typeUrl])).toEqual([
      ["/tasks/create", "containerd.events.TaskCreate"],
      ["/tasks/start", "containerd.events.TaskStart"],
      ["/tasks/exit", "containerd.events.TaskExit"],
      ["/tasks/delete", "containerd.events.TaskDelete"],
    ]);
    const [c, s, x, d] = events;
    expect(fromBinary(TaskCreateSchema, c!.value)).toMatchObject({ containerId: "d1", bundle, pid: s ? fromBinary(TaskStartSchema, s.value).pid : -1 });
    expect(fromBinary(TaskExitSchema, x!.value)).toMatchObject({ containerId: "d1", id: "d1", exitStatus: 3 });
    expect(fromBinary(TaskDeleteSchema, d!.value)).toMatchObject({ containerId: "d1", exitStatus: 3 });
  }, 120_000);
});
