// Checkpoint and restore through our shim, driven over ttrpc as containerd drives it (start action,
// Task calls, events to our own Events service), with real runc and CRIU. Where `criu check`
// passes, a counter is checkpointed, deleted, restored under the same id and counts on. Where it
// does not (CRIU 3.17 on Linux >= 6.13: "vdso: Unexpected rt vDSO area bounds"), Checkpoint must
// fail with CRIU's reason and leave the container running and usable. In both worlds a restore
// from a directory with no image, or an image CRIU cannot read, fails at Start with runc's or
// CRIU's reason and leaves no runc state, mount or cgroup behind, and the id can be used again.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { fromBinary } from "@bufbuild/protobuf";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TaskCreateSchema } from "../../src/gen/containerd/events/task_pb.ts";
import { Task } from "../../src/gen/containerd/task/v2/shim_pb.ts";
import { Status } from "../../src/gen/containerd/types/task/task_pb.ts";
import { type Cgroup, cgroupExists, cgroupFromPath } from "../../src/linux/cgroup.ts";
import { sys } from "../../src/sys/index.ts";
import { Server } from "../../src/ttrpc/server.ts";
import type { Client, ServiceClient } from "../../src/ttrpc/client.ts";
import { dial, listenUnix, type UnixListener } from "../../src/ttrpc/unix.ts";
import { busyboxRootfs } from "../support/rootfs.ts";
import { type ForwardedEvent, recordForwardedEvents } from "../support/events.ts";
import { describeWith } from "../support/require.ts";
import { mountsUnder, SHIM_BINARY, shimBinDir, waitFor } from "../support/shim-env.ts";
import { FifoLines } from "../support/fifo-reader.ts";

const NS = `bkcr${process.pid}`;
const RUNC_ROOT = `/run/containerd/runc/${NS}`;
const CGROUP_PARENT = `/bunker-restore-${process.pid}`;
const COUNTER = ["/bin/sh", "-c", "i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done"];

/** What `criu check` says on this machine: whether CRIU works, and its error lines if not. */
function criuCheck(): { works: boolean; reasons: string[] } {
  const r = Bun.spawnSync(["criu", "check"], { stdout: "pipe", stderr: "pipe" });
  const text = `${r.stdout.toString()}\n${r.stderr.toString()}`;
  // the reasons CRIU also writes to dump.log/restore.log (not check's own closing line, nor a child's exit)
  const reasons = text
    .split("\n")
    .filter((l) => l.includes("Error (") && !l.includes("crtools.c") && !l.includes("exited, status="))
    .map((l) => l.replace(/^.*?Error \([^)]*\):\s*/, "").trim());
  return { works: r.exitCode === 0, reasons };
}

describeWith(["root", "bin:runc", "bin:criu"], "checkpoint and restore through the bunker shim", () => {
  let dir: string;
  let events: ForwardedEvent[];
  let server: Server;
  let listener: UnixListener;
  let client: Client;
  let task: ServiceClient<typeof Task>;
  let shimPid = 0;
  let rootfs: string;
  const criu = criuCheck();
  const readers: FifoLines[] = [];

  /** A bundle whose spec runs `args`, with its own cgroup under CGROUP_PARENT. */
  const makeBundle = (id: string, args: string[]): string => {
    const bundle = join(dir, id);
    mkdirSync(join(bundle, "rootfs"), { recursive: true });
    const spec = Bun.spawnSync(["runc", "spec", "--bundle", bundle], { stderr: "pipe" });
    expect(spec.exitCode).toBe(0);
    const config = JSON.parse(readFileSync(join(bundle, "config.json"), "utf8"));
    config.process.terminal = false;
    config.process.args = args;
    config.root = { path: "rootfs", readonly: true };
    config.linux.cgroupsPath = `${CGROUP_PARENT}/${id}`;
    writeFileSync(join(bundle, "config.json"), JSON.stringify(config));
    return bundle;
  };
  const cgroupOf = (id: string): Cgroup => cgroupFromPath(`${CGROUP_PARENT}/${id}`, id);
  const runcState = (id: string) => Bun.spawnSync(["runc", "--root", RUNC_ROOT, "state", id], { stdout: "pipe", stderr: "pipe" });
  const stdout = (name: string): { path: string; lines: FifoLines } => {
    const path = join(dir, `${name}.stdout`);
    const lines = new FifoLines(path);
    readers.push(lines);
    return { path, lines };
  };
  const create = (id: string, bundle: string, out: string, checkpoint = "") =>
    task.create({ id, bundle, rootfs: [{ type: "bind", source: rootfs, options: ["rbind", "ro"] }], stdout: out, checkpoint });
  const topicsOf = (id: string) =>
    events.filter((e) => !e.topic.startsWith("/tasks/exec") && e.value.length > 0 && new TextDecoder().decode(e.value).includes(id)).map((e) => e.topic);
  const stop = async (id: string) => {
    await task.kill({ id, signal: 9 });
    const exit = await task.wait({ id });
    expect(exit.exitStatus).toBe(137);
    await task.delete({ id });
  };

  beforeAll(async () => {
    dir = mkdtempSync("/tmp/bunker-restore-");
    rootfs = await busyboxRootfs();
    events = [];
    server = new Server();
    recordForwardedEvents(server, events);
    listener = await listenUnix(server, join(dir, "events.sock"));
    const first = makeBundle("cr1", COUNTER);
    const shim = join(await shimBinDir(), SHIM_BINARY);
    const start = Bun.spawn([shim, "-namespace", NS, "-address", join(dir, "containerd.sock"), "-publish-binary", "/usr/bin/containerd", "-id", "cr1", "start"], {
      cwd: first,
      env: { ...process.env, TTRPC_ADDRESS: join(dir, "events.sock"), BUNKER_SHIM_LINGER_MS: "0" },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [code, address, stderr] = await Promise.all([start.exited, new Response(start.stdout).text(), new Response(start.stderr).text()]);
    expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
    client = await dial(address, { namespace: NS, timeoutMs: 60_000 });
    task = client.service(Task);
    shimPid = (await task.connect({ id: "cr1" })).shimPid;
  }, 120_000);

  afterAll(async () => {
    for (const r of readers) r.close();
    if (client) {
      await client.service(Task).shutdown({ id: "cr1" }).catch(() => undefined);
      client.close();
    }
    if (shimPid > 0) {
      await waitFor("the shim to exit", () => !existsSync(`/proc/${shimPid}`) || readFileSync(`/proc/${shimPid}/stat`, "utf8").includes(") Z "), 10_000).catch(() => {
        process.kill(shimPid, "SIGKILL"); // only if a failed test left containers in it
      });
    }
    // only what a failed test left: our namespace's runc root, our bundles' mounts, our cgroups
    for (const id of ["cr1", "rs1", "rs2"]) Bun.spawnSync(["runc", "--root", RUNC_ROOT, "delete", "--force", id], { stderr: "ignore" });
    for (const m of mountsUnder(dir).reverse()) sys().unmountAll(m);
    listener?.close();
    server?.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(RUNC_ROOT, { recursive: true, force: true });
    // the parent cgroup, in every hierarchy (v1: also the named ones runc joins, e.g. systemd)
    for (const h of ["", ...readdirSync("/sys/fs/cgroup")]) {
      try {
        rmdirSync(join("/sys/fs/cgroup", h, CGROUP_PARENT));
      } catch {}
    }
  }, 60_000);

  test(
    criu.works
      ? "a counter is checkpointed, deleted, restored under its id, and counts on"
      : "CRIU cannot work here: Checkpoint fails with CRIU's reason and the container runs on, usable",
    async () => {
      const out = stdout("cr1-a");
      const created = await create("cr1", join(dir, "cr1"), out.path);
      expect((await task.start({ id: "cr1" })).pid).toBe(created.pid);
      await out.lines.waitFor("the counter at 3", (ls) => ls.length >= 3);
      const image = join(dir, "cr1-image");
      const beforeCheckpoint = Number(out.lines.lines.at(-1));
      const attempt = task.checkpoint({ id: "cr1", path: image }, { timeoutMs: 120_000 }).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      const err = await attempt;
      if (criu.works) {
        expect(err).toBeUndefined();
        expect(existsSync(join(image, "inventory.img"))).toBe(true);
        await waitFor("TaskCheckpointed", () => events.some((e) => e.topic === "/tasks/checkpointed"));
        await stop("cr1");
        const out2 = stdout("cr1-b");
        const restoring = await create("cr1", join(dir, "cr1"), out2.path, image);
        expect(restoring.pid).toBe(0); // containerd's shim: nothing runs before Start
        expect((await task.state({ id: "cr1" })).status).toBe(Status.CREATED);
        const started = await task.start({ id: "cr1" });
        expect(started.pid).toBeGreaterThan(0);
        expect((await task.state({ id: "cr1" })).status).toBe(Status.RUNNING);
        // the restored counter goes on from where it was, on the new stdout
        await out2.lines.waitFor("the restored counter", (ls) => ls.length >= 2);
        // (from the value at the dump, not from 1: the image holds the shell's variable)
        expect(Number(out2.lines.lines[0])).toBeGreaterThanOrEqual(beforeCheckpoint);
        expect(Number(out2.lines.lines[1])).toBe(Number(out2.lines.lines[0]) + 1);
        const creates = events.filter((e) => e.topic === "/tasks/create").map((e) => fromBinary(TaskCreateSchema, e.value));
        expect(creates.at(-1)).toMatchObject({ containerId: "cr1", checkpoint: image, pid: 0 });
        await stop("cr1");
        return;
      }
      // the reason is CRIU's own, as `criu check` states it (here: the vDSO layout of Linux >= 6.13)
      console.log(JSON.stringify({ checkpoint: err?.message }));
      expect(err?.message).toContain("criu failed: type DUMP");
      expect(err?.message).toContain("(criu: Error (");
      expect(criu.reasons.length).toBeGreaterThan(0);
      expect(criu.reasons.some((r) => err!.message.includes(r))).toBe(true);
      if (criu.reasons.some((r) => r.includes("vdso"))) expect(err?.message).toContain("vdso: Unexpected rt vDSO area bounds");
      expect(events.map((e) => e.topic)).not.toContain("/tasks/checkpointed");
      // --leave-running: the same process counts on, and the container still takes requests
      const state = await task.state({ id: "cr1" });
      expect({ status: state.status, pid: state.pid }).toEqual({ status: Status.RUNNING, pid: created.pid });
      const seen = out.lines.lines.length;
      await out.lines.waitFor("the counter going on", (ls) => ls.length >= seen + 3);
      await task.pause({ id: "cr1" });
      expect((await task.state({ id: "cr1" })).status).toBe(Status.PAUSED);
      await task.resume({ id: "cr1" });
      const resumed = out.lines.lines.length;
      await out.lines.waitFor("the counter after resume", (ls) => ls.length >= resumed + 2);
      await stop("cr1");
      expect(runcState("cr1").exitCode).not.toBe(0);
    },
    180_000,
  );

  test("a restore from a directory with no image fails at Start with runc's reason, leaves nothing, and the id is reusable", async () => {
    const empty = join(dir, "empty-image");
    mkdirSync(empty);
    const bundle = makeBundle("rs1", COUNTER);
    const out = stdout("rs1-a");
    expect((await create("rs1", bundle, out.path, empty)).pid).toBe(0);
    expect(mountsUnder(bundle)).toEqual([join(bundle, "rootfs")]);
    const err = await task.start({ id: "rs1" }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    console.log(JSON.stringify({ restoreEmpty: err?.message }));
    expect(err?.message).toBe(`runc restore failed: open ${empty}/descriptors.json: no such file or directory`);
    expect(runcState("rs1").stderr.toString()).toContain("does not exist");
    expect(mountsUnder(bundle)).toEqual([]);
    expect(cgroupExists(cgroupOf("rs1"))).toBe(false);
    expect((await task.state({ id: "rs1" })).status).toBe(Status.CREATED);
    await expect(task.start({ id: "rs1" })).rejects.toThrow("restore from the checkpoint failed: delete the task");
    await task.delete({ id: "rs1" });
    // Events are forwarded after the answer: wait for TaskDelete before checking the whole sequence.
    await waitFor("rs1's TaskDelete", () => topicsOf("rs1").includes("/tasks/delete"));
    expect(topicsOf("rs1")).toEqual(["/tasks/create", "/tasks/delete"]);
    const creates = events.filter((e) => e.topic === "/tasks/create").map((e) => fromBinary(TaskCreateSchema, e.value));
    expect(creates.find((c) => c.containerId === "rs1")).toMatchObject({ checkpoint: empty, pid: 0, bundle });

    // the same id and bundle, created plainly, run
    const again = stdout("rs1-b");
    const pid = (await create("rs1", bundle, again.path)).pid;
    expect(pid).toBeGreaterThan(0);
    expect((await task.start({ id: "rs1" })).pid).toBe(pid);
    await again.lines.waitFor("the counter in the reused id", (ls) => ls.length >= 2);
    await stop("rs1");
    expect(mountsUnder(bundle)).toEqual([]);
  }, 120_000);

  test("a restore from an image CRIU cannot restore fails at Start with CRIU's reason and leaves nothing", async () => {
    // runc's own part passes (descriptors.json is there); CRIU then fails: on the kernel, or on the image
    const image = join(dir, "bad-image");
    mkdirSync(image);
    writeFileSync(join(image, "descriptors.json"), JSON.stringify(["/dev/null", "pipe:[1]", "pipe:[2]"]));
    writeFileSync(join(image, "inventory.img"), "not a CRIU image");
    const bundle = makeBundle("rs2", COUNTER);
    const out = stdout("rs2-a");
    expect((await create("rs2", bundle, out.path, image)).pid).toBe(0);
    const err = await task.start({ id: "rs2" }, { timeoutMs: 120_000 }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    console.log(JSON.stringify({ restoreBad: err?.message }));
    expect(err?.message).toStartWith("runc restore failed: criu failed: type RESTORE");
    expect(err?.message).toContain(`log file: ${join(bundle, "work", "restore.log")}`);
    expect(err?.message).toContain("(criu: Error (");
    if (!criu.works) expect(criu.reasons.some((r) => err!.message.includes(r))).toBe(true);
    expect(runcState("rs2").stderr.toString()).toContain("does not exist");
    expect(mountsUnder(bundle)).toEqual([]);
    expect(cgroupExists(cgroupOf("rs2"))).toBe(false);
    await task.delete({ id: "rs2" });
    // Events are forwarded after the answer: wait for TaskDelete before checking the whole sequence.
    await waitFor("rs2's TaskDelete", () => topicsOf("rs2").includes("/tasks/delete"));
    expect(topicsOf("rs2")).toEqual(["/tasks/create", "/tasks/delete"]);
  }, 180_000);
});
