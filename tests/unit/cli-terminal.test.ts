// The CLI's attach pieces without a terminal: raw mode on and off (once, also at exit), the window
// size followed through SIGWINCH (FakeSyscalls' getWinsize is the terminal), the signal proxy's
// set (SIGQUIT included: it used to kill the CLI and strand a --rm container), docker's `-it`
// flag clusters, and ResizePty through the service onto each Task kind.
import { describe, expect, test } from "bun:test";
import { EventEmitter } from "node:events";
import { PROXIED_SIGNALS, withSignalProxy } from "../../src/cli/attach.ts";
import { parseArgs } from "../../src/cli/args.ts";
import { enterRawMode, followWindowSize, readWindowSize, type WindowSize } from "../../src/cli/terminal.ts";
import { bunkerService } from "../../src/api/service.ts";
import { FailedPreconditionError, InvalidArgumentError, UnavailableError } from "../../src/errdefs.ts";
import { ForegroundTask, OrphanTask, type Task } from "../../src/runtime/task.ts";
import type { TaskManager } from "../../src/runtime/manager.ts";
import { FakeSyscalls } from "../../src/sys/fake.ts";
import { SysError } from "../../src/sys/errors.ts";

const events = () => new EventEmitter() as EventEmitter & { on(e: string, l: () => void): unknown; off(e: string, l: () => void): unknown };

describe("raw mode", () => {
  test("a terminal goes raw, and back exactly once (by the caller or at exit)", () => {
    const modes: boolean[] = [];
    const ev = events();
    const restore = enterRawMode({ isTTY: true, setRawMode: (raw: boolean) => modes.push(raw) }, ev);
    expect(modes).toEqual([true]);
    expect(ev.listenerCount("exit")).toBe(1);
    restore();
    restore();
    ev.emit("exit");
    expect(modes).toEqual([true, false]);
    expect(ev.listenerCount("exit")).toBe(0);
  });

  test("exit restores a terminal the caller never restored", () => {
    const modes: boolean[] = [];
    const ev = events();
    enterRawMode({ isTTY: true, setRawMode: (raw: boolean) => modes.push(raw) }, ev);
    ev.emit("exit");
    expect(modes).toEqual([true, false]);
  });

  test("piped input is left alone", () => {
    const modes: boolean[] = [];
    const ev = events();
    enterRawMode({ isTTY: false, setRawMode: (raw: boolean) => modes.push(raw) }, ev)();
    expect(modes).toEqual([]);
    expect(ev.listenerCount("exit")).toBe(0);
  });

  test("a hung-up terminal that cannot be restored is not an error", () => {
    let calls = 0;
    const restore = enterRawMode({ isTTY: true, setRawMode: (raw: boolean) => { calls++; if (!raw) throw new Error("EIO"); } }, events());
    expect(() => restore()).not.toThrow();
    expect(calls).toBe(2);
  });
});

describe("window size", () => {
  test("readWindowSize: the first fd that is a terminal, in ResizePty's terms (width = columns)", () => {
    const fake = new FakeSyscalls();
    fake.on("getWinsize", (fd: number) => {
      if (fd === 1) throw new SysError("ioctl(TIOCGWINSZ)", 25);
      return { rows: 40, cols: 120 };
    });
    expect(readWindowSize(fake, [1, 0])).toEqual({ width: 120, height: 40 });
    fake.on("getWinsize", () => ({ rows: 0, cols: 0 }));
    expect(readWindowSize(fake, [1, 0])).toBeUndefined();
    expect(readWindowSize(fake, [])).toBeUndefined();
  });

  test("sent at once and after each SIGWINCH that changed it; nothing after stop", async () => {
    const fake = new FakeSyscalls();
    const ev = events();
    const sent: WindowSize[] = [];
    const follow = followWindowSize(fake, [1], async (s) => void sent.push(s), ev);
    await follow.settled();
    expect(sent).toEqual([{ width: 80, height: 24 }]);
    fake.winsize = { rows: 30, cols: 90 };
    ev.emit("SIGWINCH");
    await follow.settled();
    ev.emit("SIGWINCH"); // same size: not sent again
    await follow.settled();
    expect(sent).toEqual([{ width: 80, height: 24 }, { width: 90, height: 30 }]);
    follow.stop();
    fake.winsize = { rows: 10, cols: 10 };
    ev.emit("SIGWINCH");
    await follow.settled();
    expect(sent.length).toBe(2);
    expect(ev.listenerCount("SIGWINCH")).toBe(0);
  });

  test("a burst of SIGWINCH sends one call at a time, ending with the latest size", async () => {
    const fake = new FakeSyscalls();
    const ev = events();
    const sent: WindowSize[] = [];
    let inFlight = 0;
    let most = 0;
    const follow = followWindowSize(fake, [1], async (s) => {
      inFlight++;
      most = Math.max(most, inFlight);
      await Bun.sleep(5);
      sent.push(s);
      inFlight--;
    }, ev);
    for (let i = 1; i <= 20; i++) {
      fake.winsize = { rows: 10 + i, cols: 50 + i };
      ev.emit("SIGWINCH");
    }
    await follow.settled();
    expect(most).toBe(1);
    expect(sent.at(-1)).toEqual({ width: 70, height: 30 });
    expect(sent.length).toBeLessThanOrEqual(3);
  });

  test("a failed resize (the process just exited) is dropped, and later ones still go", async () => {
    const fake = new FakeSyscalls();
    const ev = events();
    let calls = 0;
    const follow = followWindowSize(fake, [1], async () => {
      calls++;
      if (calls === 1) throw new Error("not found");
    }, ev);
    await follow.settled();
    fake.winsize = { rows: 5, cols: 6 };
    ev.emit("SIGWINCH");
    await follow.settled();
    expect(calls).toBe(2);
  });
});

describe("signal proxy", () => {
  test("INT, TERM, HUP, QUIT, USR1, USR2 are forwarded by number while attached, then let go", async () => {
    expect(PROXIED_SIGNALS.map(([n]) => n)).toEqual(["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"]);
    const ev = events();
    const got: number[] = [];
    const r = await withSignalProxy(async (n) => void got.push(n), async () => {
      for (const s of ["SIGQUIT", "SIGINT", "SIGHUP", "SIGTERM", "SIGUSR1", "SIGUSR2"]) ev.emit(s);
      return 7;
    }, ev);
    expect(r).toBe(7);
    expect(got).toEqual([3, 2, 1, 15, 10, 12]);
    for (const [s] of PROXIED_SIGNALS) expect(ev.listenerCount(s)).toBe(0);
  });

  test("a failed forward does not throw, and the handlers go when the body throws", async () => {
    const ev = events();
    await expect(withSignalProxy(async () => { throw new Error("gone"); }, async () => {
      ev.emit("SIGQUIT");
      throw new Error("body");
    }, ev)).rejects.toThrow("body");
    for (const [s] of PROXIED_SIGNALS) expect(ev.listenerCount(s)).toBe(0);
  });
});

describe("-i and -t flags", () => {
  test("docker's clusters: -it, -dit, -ti; exec takes -i", () => {
    const run = parseArgs(["run", "--rm", "-it", "--rootfs", "/r", "c1", "sh"]).command;
    expect(run.name === "run" && [run.opts.tty, run.opts.interactive]).toEqual([true, true]);
    const d = parseArgs(["run", "-dit", "--rootfs", "/r", "c1", "sh"]).command;
    expect(d.name === "run" && [d.opts.detach, d.opts.tty, d.opts.interactive]).toEqual([true, true, true]);
    const ex = parseArgs(["exec", "-ti", "c1", "sh"]).command;
    expect(ex).toMatchObject({ name: "exec", tty: true, interactive: true, id: "c1", args: ["sh"] });
    const plain = parseArgs(["exec", "c1", "sh"]).command;
    expect(plain.name === "exec" && plain.interactive).toBeFalsy();
  });

  test("a cluster with an unknown or value-taking letter is refused as the flag it is", () => {
    expect(() => parseArgs(["run", "-itx", "--rootfs", "/r", "c1", "sh"])).toThrow("unknown flag -itx");
    expect(() => parseArgs(["run", "-ie", "--rootfs", "/r", "c1", "sh"])).toThrow("unknown flag -ie");
  });

  test("the container's command keeps its own clusters", () => {
    const run = parseArgs(["run", "--rootfs", "/r", "c1", "ls", "-la"]).command;
    expect(run.name === "run" && run.opts.args).toEqual(["ls", "-la"]);
  });
});

describe("ResizePty through the service", () => {
  function serviceWith(task: Partial<Task>) {
    const m = { task: async () => task } as unknown as TaskManager;
    return bunkerService(m, { embedded: true });
  }
  const call = (svc: ReturnType<typeof serviceWith>, req: { execId?: string; width: number; height: number }) =>
    (svc.resizePty as (r: unknown, ctx: unknown) => Promise<unknown>)({ namespace: "default", id: "c1", execId: "", ...req }, {});

  test("passes columns and rows to the task, for the init or an exec", async () => {
    const got: unknown[] = [];
    const svc = serviceWith({ resizePty: async (...a: unknown[]) => void got.push(a) });
    await call(svc, { width: 120, height: 40 });
    await call(svc, { execId: "e1", width: 90, height: 30 });
    expect(got).toEqual([["", 120, 40], ["e1", 90, 30]]);
  });

  test("a zero or out-of-range size is refused before the task is asked", async () => {
    const svc = serviceWith({ resizePty: async () => { throw new Error("must not be called"); } });
    await expect(call(svc, { width: 0, height: 40 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(call(svc, { width: 70000, height: 40 })).rejects.toThrow("out of range");
  });

  test("a foreground run refuses with the reason; an orphan says its shim cannot be reached", async () => {
    const fg = new ForegroundTask({ namespace: "default", id: "c1", bundlePath: "/x", pid: 0, record: { owner: 4242, ownerStart: "", runc: "runc", runcRoot: "/r" } }, undefined, () => true);
    await expect(call(serviceWith(fg), { width: 80, height: 24 })).rejects.toBeInstanceOf(FailedPreconditionError);
    await expect(call(serviceWith(fg), { width: 80, height: 24 })).rejects.toThrow("runs in the foreground of bunker pid 4242");
    const orphan = new OrphanTask("default", "c1", "/x", undefined, "connection refused", async () => ({ pid: 0, exitStatus: 0, exitedAt: new Date() }));
    await expect(call(serviceWith(orphan), { width: 80, height: 24 })).rejects.toBeInstanceOf(UnavailableError);
  });
});
