// The executor end to end with real runc, for each shim (ours and Debian's Go runc shim) and each
// backend (a `bunker daemon`, and the embedded task manager in this process). Each test owns its
// dirs, its backend and its containers (see executor-harness.ts).
import { afterEach, beforeEach, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { AlreadyExistsError, NotFoundError } from "../../src/errdefs.ts";
import { loadImages } from "../../src/images/archive.ts";
import { ImageStore } from "../../src/images/store.ts";
import { Status } from "../../src/gen/containerd/types/task/task_pb.ts";
import { describeWith, type Need } from "../support/require.ts";
import { BUNKER_RUNTIME, RUNC_RUNTIME, until } from "../support/cli-harness.ts";
import { type BackendKind, collect, ExecutorHarness, waitFor } from "../support/executor-harness.ts";

const T = 90_000;

for (const runtime of [BUNKER_RUNTIME, RUNC_RUNTIME]) {
  for (const kind of ["daemon", "embedded"] as BackendKind[]) {
    const needs: Need[] = runtime === RUNC_RUNTIME ? ["root", "bin:runc", "bin:containerd-shim-runc-v2"] : ["root", "bin:runc"];
    describeWith(needs, `executor (${runtime}, ${kind})`, () => {
      let h: ExecutorHarness;
      beforeEach(async () => {
        h = await ExecutorHarness.create(kind, runtime);
      }, T);
      afterEach(async () => {
        await h?.dispose();
      }, T);

      test("create streams stdout and stderr, they end at exit, and the exit handler runs once after the delete", async () => {
        const exits: string[] = [];
        const ex = h.executor(exits);
        const out = collect();
        const err = collect();
        await ex.create("out1", h.spec("out1", "echo hello; echo oops >&2; exit 3"), out.cb, err.cb);
        await Promise.all([out.done, err.done]);
        expect([out.text(), err.text()]).toEqual(["hello\n", "oops\n"]);
        await until(() => exits.length > 0, 20_000, "the exit handler");
        expect(exits).toEqual(["out1"]);
        // The handler ran after the container (task, bundle, FIFO dir) was deleted.
        await expect(ex.isRunning("out1")).rejects.toThrow(NotFoundError);
        expect(existsSync(join(h.rootDir, "out1"))).toBe(false);
        // A web stream and more output than a pipe holds; its exit, read after out1's, shows out1's was reported once.
        const chunks: string[] = [];
        let closed = false;
        const dec = new TextDecoder();
        const ws = new WritableStream<Uint8Array>({ write: (c) => void chunks.push(dec.decode(c, { stream: true })), close: () => void (closed = true) });
        await ex.create("out2", h.spec("out2", "seq 1 50000"), ws, null);
        await until(() => exits.length === 2, 20_000, "out2's exit");
        expect(exits).toEqual(["out1", "out2"]);
        expect(closed).toBe(true);
        const lines = chunks.join("").split("\n");
        expect([lines.length, lines[0], lines[49_999]]).toEqual([50_001, "1", "50000"]);
      }, T);

      test("createFromImage runs an image's container on its own layer, released with the container", async () => {
        const archive = join(h.env.dir, "busybox.tar");
        const built = Bun.spawnSync([process.execPath, join(import.meta.dir, "../../scripts/busybox-image.ts"), archive], { stderr: "pipe" });
        expect(built.exitCode).toBe(0);
        const store = new ImageStore(h.env.root);
        await loadImages(store, Bun.file(archive).stream());
        const exits: string[] = [];
        const ex = h.executor(exits);
        const out = collect();
        await ex.createFromImage("img1", { image: "busybox", args: ["sh", "-c", "echo from-image; id -u; echo x > /written"], user: "nobody:root" }, out.cb, null);
        await out.done;
        expect(out.text()).toBe("from-image\n65534\n");
        await until(() => exits.length > 0, 20_000, "the exit handler");
        // the container's layer went with it, the image's own snapshot stays
        expect(store.snapshots.list().active).toEqual([]);
        expect(store.snapshots.list().committed.length).toBe(1);
        await expect(ex.createFromImage("img2", { image: "nosuch", pull: "never" }, null, null)).rejects.toThrow("--pull never");
      }, T);

      test("a stale container with the same id (created or stopped) is replaced; a running one is refused and left alone", async () => {
        const exits: string[] = [];
        const ex = h.executor(exits);
        const api = await h.api();
        const ref = { namespace: h.namespace, id: "stale1" };
        const enc = new TextEncoder();
        const direct = (id: string, script: string) =>
          api.create({ namespace: h.namespace, id, runtime, rootfs: h.env.rootfs, spec: enc.encode(JSON.stringify({ ...h.spec(id, script), root: { path: "rootfs" } })) });
        await direct("stale1", "echo old");
        expect((await api.list(ref)).tasks[0]?.status).toBe(Status.CREATED);
        const out1 = collect();
        await ex.create("stale1", h.spec("stale1", "echo new"), out1.cb, null);
        await out1.done;
        expect(out1.text()).toBe("new\n");
        await direct("stale2", "exit 0");
        const waited = api.wait({ namespace: h.namespace, id: "stale2" });
        await api.start({ namespace: h.namespace, id: "stale2" });
        await waited;
        const out2 = collect();
        await ex.create("stale2", h.spec("stale2", "echo replaced"), out2.cb, null);
        await out2.done;
        expect(out2.text()).toBe("replaced\n");
        await until(() => exits.length === 2, 20_000, "both exits");
        expect(exits.sort()).toEqual(["stale1", "stale2"]);

        const live = collect();
        await ex.create("live", h.spec("live", `echo ready; ${waitFor("live")}; echo done`), live.cb, null);
        await until(() => live.text() === "ready\n", 20_000, "live to start");
        const refused = collect();
        await expect(ex.create("live", h.spec("live", "echo intruder"), refused.cb, null)).rejects.toThrow(AlreadyExistsError);
        await refused.done; // a failed create ends its outputs
        expect(await ex.isRunning("live")).toBe(true);
        h.release("live");
        await live.done;
        expect([live.text(), refused.text()]).toEqual(["ready\ndone\n", ""]);
        await until(() => exits.length === 3, 20_000, "live's exit");
        expect(exits[2]).toBe("live");
      }, T);

      test("signal by name and number; isRunning; the exit handler fires exactly once per exit", async () => {
        const exits: string[] = [];
        const ex = h.executor(exits);
        const out = collect();
        await ex.create("sig1", h.spec("sig1", 'trap "echo bye; exit 5" TERM; echo ready; while true; do sleep 0.05; done'), out.cb, null);
        await until(() => out.text() === "ready\n", 20_000, "sig1 to trap TERM");
        expect(await ex.isRunning("sig1")).toBe(true);
        await ex.signal("sig1", "SIGTERM");
        await out.done;
        expect(out.text()).toBe("ready\nbye\n");
        await until(() => exits.length === 1, 20_000, "sig1's exit");
        // PID 1 ignores signals it does not trap, except SIGKILL, sent from outside.
        const out2 = collect();
        await ex.create("sig2", h.spec("sig2", "echo up; sleep 1000"), out2.cb, null);
        await until(() => out2.text() === "up\n", 20_000, "sig2 to start");
        await ex.signal("sig2", 9);
        await out2.done;
        await until(() => exits.length === 2, 20_000, "sig2's exit");
        expect(exits).toEqual(["sig1", "sig2"]);
        await expect(ex.isRunning("sig1")).rejects.toThrow(NotFoundError);
        await expect(ex.signal("sig1", 9)).rejects.toThrow(NotFoundError);
      }, T);

      test("pod annotations in the spec group containers: one shim per sandbox id", async () => {
        const exits: string[] = [];
        const ex = h.executor(exits);
        const pods: [string, string][] = [["pa1", "pod-a"], ["pa2", "pod-a"], ["pb1", "pod-b"]];
        for (const [id, pod] of pods) {
          const spec = { ...h.spec(id, "echo up; sleep 1000"), annotations: { "io.kubernetes.cri.sandbox-id": pod } };
          const out = collect();
          await ex.create(id, spec, out.cb, null);
          await until(() => out.text() === "up\n", 20_000, `${id} to start`);
        }
        const api = await h.api();
        const { tasks } = await api.list({ namespace: h.namespace });
        const address = new Map(tasks.map((t) => [t.id, readFileSync(join(t.bundle, "address"), "utf8").trim()]));
        expect(address.get("pa1")).toBeString();
        expect(address.get("pa2")).toBe(address.get("pa1")!);
        expect(address.get("pb1")).not.toBe(address.get("pa1")!);
        for (const [id] of pods) await ex.signal(id, 9);
        await until(() => exits.length === 3, 20_000, "the three exits");
        expect(exits.sort()).toEqual(["pa1", "pa2", "pb1"]);
      }, T);

      test(`restore after a ${kind === "daemon" ? "daemon killed with SIGKILL" : "restart of the embedding program"}: a running container reattaches, a dead one is deleted`, async () => {
        const exits1: string[] = [];
        const ex1 = h.executor(exits1);
        const alive1 = collect();
        const dead1 = collect();
        await ex1.create("alive", h.spec("alive", `echo one; ${waitFor("alive")}; echo two; exit 4`), alive1.cb, null);
        await ex1.create("dead", h.spec("dead", `echo d1; ${waitFor("dead")}; echo d2`), dead1.cb, null);
        await until(() => alive1.text() === "one\n" && dead1.text() === "d1\n", 20_000, "both to start");
        await h.stopBackend();
        h.release("dead"); // it exits while nobody listens for events
        await dead1.done;
        expect(dead1.text()).toBe("d1\nd2\n");
        await ex1.close();
        expect(alive1.ends()).toBe(1);
        await h.startBackend();
        // Its output ended, but a shim may record the exit a moment after the copy saw EOF.
        const api = await h.api();
        await until(async () => (await api.list({ namespace: h.namespace, id: "dead" })).tasks[0]?.status === Status.STOPPED, 20_000, "dead to be stopped");

        const exits2: string[] = [];
        const ex2 = h.executor(exits2);
        const dead2 = collect();
        expect(await ex2.restore("dead", dead2.cb, null)).toBe(false);
        await dead2.done;
        await expect(ex2.isRunning("dead")).rejects.toThrow(NotFoundError);
        expect(existsSync(join(h.rootDir, "dead"))).toBe(false);
        const none = collect();
        expect(await ex2.restore("never", none.cb, null)).toBe(false);
        await none.done;

        const alive2 = collect();
        expect(await ex2.restore("alive", alive2.cb, null)).toBe(true);
        expect(await ex2.isRunning("alive")).toBe(true);
        h.release("alive");
        await alive2.done;
        expect(alive2.text()).toBe("two\n");
        await until(() => exits2.length === 1, 20_000, "alive's exit after restore");
        expect([exits1, exits2]).toEqual([[], ["alive"]]);
        expect(existsSync(join(h.rootDir, "alive"))).toBe(false);
      }, T);

      if (kind === "daemon") {
        test("an executor outlives a daemon restart: exits during and after the outage are reported once", async () => {
          const exits: string[] = [];
          const ex = h.executor(exits);
          const a = collect();
          const b = collect();
          await ex.create("ra", h.spec("ra", `${waitFor("ra")}; echo a-done`), a.cb, null);
          await ex.create("rb", h.spec("rb", `${waitFor("rb")}; echo b-done`), b.cb, null);
          expect(await ex.isRunning("rb")).toBe(true);
          await h.stopBackend();
          h.release("rb");
          await b.done;
          await h.startBackend();
          // Its exit event went nowhere: the executor finds out when it reconnects.
          await until(() => exits.length === 1, 30_000, "rb's exit after the restart");
          h.release("ra");
          await a.done;
          await until(() => exits.length === 2, 20_000, "ra's exit");
          expect([exits, a.text(), b.text()]).toEqual([["rb", "ra"], "a-done\n", "b-done\n"]);
          await expect(ex.isRunning("rb")).rejects.toThrow(NotFoundError);
        }, T);
      }
    });
  }
}
