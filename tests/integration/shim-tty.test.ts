// Terminals under real containerd 1.6: `ctr run -t` and `ctr task exec -t` inside a pty made by
// script(1) get a pty of their own (runc's --console-socket), output copied back, exit codes kept.
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { TestContainerd } from "../support/containerd.ts";
import { describeEachContainerd } from "../support/containerd-versions.ts";
import { Task } from "../../src/gen/containerd/task/v2/shim_pb.ts";
import { dial } from "../../src/ttrpc/unix.ts";
import { groupSocket, RUNTIME, startEnv, stopEnv, waitFor } from "../support/shim-env.ts";


describeEachContainerd(["root", "bin:runc", "bin:containerd", "bin:ctr", "bin:script"], "bunker shim terminals under containerd", (build) => {
  const NS = `bkt${process.pid}v${build.line.replace(".", "")}`;
  let ctd: TestContainerd;
  let rootfs: string;
  /** Runs a ctr command line inside a pty (script -qec), returns its exit code and output. */
  const inPty = async (args: string[], input = "") => {
    const cmd = [ctd.ctrBin, "-a", ctd.address, "-n", NS, ...args].map((a) => `'${a}'`).join(" ");
    const p = Bun.spawn(["script", "-qec", cmd, "/dev/null"], { stdin: new Blob([input]), stdout: "pipe", stderr: "pipe" });
    const timer = setTimeout(() => p.kill("SIGKILL"), 60_000);
    const [code, out] = await Promise.all([p.exited, new Response(p.stdout).text()]);
    clearTimeout(timer);
    return { code, out: out.replace(/\r/g, "") };
  };

  beforeAll(async () => {
    ({ ctd, rootfs } = await startEnv(build));
  }, 120_000);
  afterAll(async () => {
    await stopEnv(ctd);
  }, 120_000);

  test("ctr run -t shows /dev/pts/0 and keeps the exit code", async () => {
    const r = await inPty(["run", "-t", "--rm", "--runtime", RUNTIME, "--rootfs", rootfs, "tty1", "/bin/sh", "-c", "tty; exit 5"]);
    expect(r.out).toContain("/dev/pts/0");
    expect(r.code).toBe(5);
  }, 90_000);

  test("ctr task exec -t gets its own terminal", async () => {
    expect((await ctd.ctr(["-n", NS, "run", "-d", "--runtime", RUNTIME, "--rootfs", rootfs, "tty2", "/bin/sleep", "300"])).code).toBe(0);
    const r = await inPty(["task", "exec", "-t", "--exec-id", "t1", "tty2", "/bin/sh", "-c", "tty; exit 4"]);
    expect(r.out).toMatch(/\/dev\/pts\/\d+/);
    expect(r.code).toBe(4);
    await ctd.ctr(["-n", NS, "task", "kill", "-s", "SIGKILL", "tty2"]);
    await ctd.ctr(["-n", NS, "task", "delete", "tty2"]);
    await ctd.ctr(["-n", NS, "container", "rm", "tty2"]);
  }, 90_000);

  test("ResizePty sets the terminal's size (TIOCSWINSZ)", async () => {
    const script = 'while [ "$(stty size)" != "45 123" ]; do sleep 0.1; done; echo resized';
    const running = inPty(["run", "-t", "--rm", "--runtime", RUNTIME, "--rootfs", rootfs, "tty3", "/bin/sh", "-c", script]);
    await waitFor("tty3 running", async () => /tty3\s+\d+\s+RUNNING/.test((await ctd.ctr(["-n", NS, "task", "ls"])).stdout));
    // ctr run -t sends its own terminal's size once the task started, which can land after ours
    // and undo it: ours is sent again until the container saw it
    const c = await dial(`unix://${groupSocket(ctd, NS)}`, { timeoutMs: 5000, namespace: NS });
    let done = false;
    void running.finally(() => (done = true));
    try {
      while (!done) {
        // once the container saw the size it exits, and a late resize finds no task: the output decides
        const sent = await c.service(Task).resizePty({ id: "tty3", width: 123, height: 45 }).then(() => true, () => false);
        if (!sent) break;
        await Bun.sleep(300);
      }
    } finally {
      c.close();
    }
    const r = await running;
    expect(r.out).toContain("resized");
    expect(r.code).toBe(0);
  }, 90_000);
});
