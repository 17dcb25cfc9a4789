// The native core against the real kernel. Reaping needs no privilege (subreaper is per process);
// mounts need root. The bun test process is made subreaper only inside the reaping suite, and
// every orphan a test creates is reaped before it ends.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { bunOwnedPids, spawnTracked, sweepOrphans } from "../../src/sys/children.ts";
import { MNT, MS, type ReapedChild, sys, SysError } from "../../src/sys/index.ts";
import { procInfo } from "../support/procs.ts";
import { describeWith } from "../support/require.ts";

/**
 * Runs `sh -c body` (tracked); body prints one orphan pid per line. Orphans that `read x <&3`
 * block on our stdin pipe until release() closes it, so they outlive the sh that made them: a
 * live shell reaps its own finished background jobs, and only live ones are reparented to us.
 */
async function makeOrphans(body: string): Promise<{ pids: number[]; release(): void }> {
  const sh = spawnTracked(["sh", "-c", `exec 3<&0; ${body}`], { stdin: "pipe", stdout: "pipe" });
  const [code, out] = await Promise.all([sh.exited, new Response(sh.stdout).text()]);
  expect(code).toBe(0);
  const pids = out.split("\n").filter(Boolean).map(Number);
  return { pids, release: () => void sh.stdin.end() };
}

/** Sweeps until every pid in `want` was reaped (or the deadline passes); returns everything swept. */
async function sweepFor(want: number[], into = new Map<number, ReapedChild>(), timeoutMs = 10_000): Promise<Map<number, ReapedChild>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const c of sweepOrphans()) into.set(c.pid, c);
    if (want.every((pid) => into.has(pid)) || Date.now() > deadline) return into;
    await Bun.sleep(5);
  }
}

function errorOf(fn: () => unknown): SysError {
  try {
    fn();
  } catch (err) {
    if (err instanceof SysError) return err;
    throw err;
  }
  throw new Error("expected a SysError, got none");
}

describeWith([], "native reaping (subreaper)", () => {
  beforeAll(() => {
    sys().setSubreaper(true);
  });
  afterAll(() => {
    sys().setSubreaper(false);
  });

  test("subreaper can be set and read back", () => {
    expect(sys().isSubreaper()).toBe(true);
  });

  test("an orphaned grandchild becomes our child and is swept with its exit status", async () => {
    const { pids: [orphan], release } = await makeOrphans("(read x <&3; exit 7) >/dev/null & echo $!");
    expect(procInfo(orphan!)?.ppid).toBe(process.pid);
    release();
    const swept = await sweepFor([orphan!]);
    expect(swept.get(orphan!)).toEqual({ pid: orphan!, status: 7, raw: 7 << 8 });
  });

  test("a SIGKILLed orphan reports 137", async () => {
    const { pids: [orphan] } = await makeOrphans("sleep 30 >/dev/null & echo $!");
    expect(sweepOrphans().map((c) => c.pid)).not.toContain(orphan!); // still running
    process.kill(orphan!, "SIGKILL");
    const swept = await sweepFor([orphan!]);
    expect(swept.get(orphan!)).toEqual({ pid: orphan!, status: 137, signal: 9, raw: 9 });
  });

  test("reap(pid): null while running, the status once exited, ECHILD for a stranger", async () => {
    const { pids: [orphan] } = await makeOrphans("sleep 30 >/dev/null & echo $!");
    expect(sys().reap(orphan!)).toBeNull();
    process.kill(orphan!, "SIGTERM");
    let st = sys().reap(orphan!);
    for (const deadline = Date.now() + 5000; st === null && Date.now() < deadline; st = sys().reap(orphan!)) await Bun.sleep(5);
    expect(st).toEqual({ status: 143, signal: 15, raw: 15 });
    const err = errorOf(() => sys().reap(1));
    expect(err.code).toBe("ECHILD");
    expect(err.message).toBe("waitpid 1: ECHILD (No child processes)");
  });

  test("a sweep returns more zombies than one native batch (300)", async () => {
    const { pids, release } = await makeOrphans("for i in $(seq 300); do (read x <&3; exit 3) >/dev/null & echo $!; done");
    expect(pids).toHaveLength(300);
    release();
    // Wait until all are zombies so that one sweep call has to loop over native batches.
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; await Bun.sleep(5)) {
      if (pids.every((p) => procInfo(p)?.state === "Z")) break;
    }
    const once = sweepOrphans();
    expect(once.length).toBeGreaterThanOrEqual(300);
    const swept = await sweepFor(pids, new Map(once.map((c) => [c.pid, c])));
    expect(pids.filter((p) => swept.get(p)?.status !== 3)).toEqual([]);
  });

  test("200 Bun.spawn children keep their exit codes while orphans are swept", async () => {
    const swept = new Map<number, ReapedChild>();
    const timer = setInterval(() => {
      for (const c of sweepOrphans()) swept.set(c.pid, c);
    }, 1);
    const bunPids = new Set<number>();
    const results: Promise<{ want: number; got: number }>[] = [];
    const orphanMakers: Promise<number[]>[] = [];
    try {
      for (let i = 0; i < 200; i++) {
        const want = i % 50;
        const proc = spawnTracked(["sh", "-c", `exit ${want}`]);
        bunPids.add(proc.pid);
        results.push(proc.exited.then((got) => ({ want, got })));
        if (i % 10 === 0) {
          const made = makeOrphans(`(read x <&3; exit ${want + 1}) >/dev/null & echo $!`);
          // Released as soon as they are ours: they exit while the Bun.spawn children still run.
          orphanMakers.push(made.then(({ pids, release }) => (release(), pids)));
        }
      }
      const outcomes = await Promise.all(results);
      expect(outcomes.filter((o) => o.got !== o.want)).toEqual([]);
      const orphans = (await Promise.all(orphanMakers)).flat();
      expect(orphans).toHaveLength(20);
      await sweepFor(orphans, swept);
      for (const pid of orphans) expect(swept.get(pid)?.status).toBeGreaterThan(0);
      expect([...swept.keys()].filter((pid) => bunPids.has(pid))).toEqual([]);
      // Bun reaped each of its children itself, and each left the tracked set when it did.
      expect([...bunPids].filter((pid) => bunOwnedPids().has(pid))).toEqual([]);
    } finally {
      clearInterval(timer);
    }
  });
});

describeWith([], "native fds and errors", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync("/tmp/bunker-native-");
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  test("an open file passed over a socketpair is readable on the other side", () => {
    const path = join(dir, "passed");
    writeFileSync(path, "through SCM_RIGHTS");
    const file = openSync(path, "r");
    const [a, b] = sys().socketpair();
    try {
      sys().sendFd(a, file, new TextEncoder().encode("pty"));
      sys().close(file);
      const { fd, msg } = sys().recvFd(b);
      const buf = Buffer.alloc(64);
      const n = readSync(fd, buf, 0, buf.length, 0);
      sys().close(fd);
      expect(buf.subarray(0, n).toString()).toBe("through SCM_RIGHTS");
      expect(new TextDecoder().decode(msg)).toBe("pty");
      // Nothing more queued: a non-blocking receive says so instead of blocking the event loop.
      expect(errorOf(() => sys().recvFd(b, { dontWait: true })).code).toBe("EAGAIN");
    } finally {
      sys().close(a);
      sys().close(b);
    }
  });

  test("a message without an fd is EBADMSG, and peerCred names the peer", () => {
    const [a, b] = sys().socketpair();
    try {
      expect(sys().peerCred(a)).toEqual({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
      sys().close(a);
      expect(errorOf(() => sys().recvFd(b)).code).toBe("EBADMSG"); // EOF
    } finally {
      sys().close(b);
    }
  });

  test("mkfifo and dup2", () => {
    const fifo = join(dir, "fifo");
    sys().mkfifo(fifo, 0o600);
    const st = statSync(fifo);
    expect(st.isFIFO()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    expect(errorOf(() => sys().mkfifo(fifo, 0o600)).code).toBe("EEXIST");

    const path = join(dir, "dup");
    writeFileSync(path, "dup2");
    const file = openSync(path, "r");
    const [a, b] = sys().socketpair(); // b is just a free fd number to overwrite
    sys().close(a);
    sys().dup2(file, b);
    const buf = Buffer.alloc(8);
    expect(buf.subarray(0, readSync(b, buf, 0, 8, 0)).toString()).toBe("dup2");
    sys().dup2(b, b); // same fd: a no-op, as dup2 defines it
    closeSync(file);
    sys().close(b);
    expect(errorOf(() => sys().close(b)).code).toBe("EBADF");
  });

  test("setWinsize sets a pty's size, getWinsize reads it", async () => {
    const master = openSync("/dev/ptmx", "r+");
    try {
      sys().setWinsize(master, 33, 77);
      const stty = Bun.spawn(["stty", "size"], { stdin: master, stdout: "pipe" });
      expect(await new Response(stty.stdout).text()).toBe("33 77\n");
      expect(await stty.exited).toBe(0);
      // and getWinsize reads it back (what the CLI sends with ResizePty)
      expect(sys().getWinsize(master)).toEqual({ rows: 33, cols: 77 });
      const resize = Bun.spawn(["stty", "rows", "41", "cols", "101"], { stdin: master });
      expect(await resize.exited).toBe(0);
      expect(sys().getWinsize(master)).toEqual({ rows: 41, cols: 101 });
      const file = openSync(join(dir, "notatty"), "w");
      expect(errorOf(() => sys().setWinsize(file, 1, 1)).code).toBe("ENOTTY");
      expect(errorOf(() => sys().getWinsize(file)).code).toBe("ENOTTY");
      expect(errorOf(() => sys().getWinsize(file)).syscall).toBe("ioctl(TIOCGWINSZ)");
      closeSync(file);
    } finally {
      closeSync(master);
    }
  });

  test("errors carry the errno name, the syscall and the path", () => {
    const missing = errorOf(() => sys().mkfifo(join(dir, "no", "such"), 0o600));
    expect(missing.code).toBe("ENOENT");
    expect(missing.errno).toBe(2);
    expect(missing.syscall).toBe("mkfifo");
    expect(missing.path).toBe(join(dir, "no", "such"));
    expect(missing.message).toBe(`mkfifo ${join(dir, "no", "such")}: ENOENT (No such file or directory)`);
    expect(errorOf(() => sys().mkfifo("a\0b", 0o600)).code).toBe("EINVAL");
  });
});

describeWith(["root"], "native mounts", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync("/tmp/bunker-native-mnt-");
  });
  afterAll(() => {
    sys().unmountAll(dir);
    rmSync(dir, { recursive: true, force: true });
  });

  const mountsAt = (target: string) => readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter((l) => l.split(" ")[4] === target).length;

  test("a stack of three tmpfs mounts on one target is fully unmounted by unmountAll", () => {
    const target = join(dir, "stack");
    mkdirSync(target);
    for (let i = 1; i <= 3; i++) {
      sys().mount("tmpfs", target, "tmpfs", MS.NOSUID | MS.NODEV, `size=1m,mode=0755`);
      writeFileSync(join(target, "layer"), String(i));
    }
    expect(mountsAt(target)).toBe(3);
    expect(readFileSync(join(target, "layer"), "utf8")).toBe("3");
    sys().unmount(target, MNT.DETACH); // one layer off: the one below shows through
    expect(readFileSync(join(target, "layer"), "utf8")).toBe("2");
    sys().unmountAll(target);
    expect(mountsAt(target)).toBe(0);
    sys().unmountAll(target); // nothing mounted: fine
    sys().unmountAll(join(dir, "missing")); // no such target: fine, like containerd's UnmountAll
  });

  test("mount flags may be a bigint; errors name the target", () => {
    const target = join(dir, "flags");
    mkdirSync(target);
    sys().mount("tmpfs", target, "tmpfs", BigInt(MS.RDONLY), "size=1m");
    expect(() => writeFileSync(join(target, "x"), "")).toThrow(/EROFS/);
    sys().unmountAll(target);
    const notMounted = errorOf(() => sys().unmount(target));
    expect(notMounted.code).toBe("EINVAL");
    expect(notMounted.message).toBe(`umount2 ${target}: EINVAL (Invalid argument)`);
    expect(errorOf(() => sys().mount("none", target, "no-such-fs", 0)).code).toBe("ENODEV");
    expect(errorOf(() => sys().mount("tmpfs", join(dir, "absent"), "tmpfs", 0)).code).toBe("ENOENT");
  });
});

describeWith(["root"], "native files: mknod, xattrs, flock", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync("/tmp/bunker-native-files-");
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("mknod makes a char device and a FIFO with the asked numbers", () => {
    const dev = join(dir, "null");
    sys().mknod(dev, 0o20666, 1, 3);
    const st = statSync(dev);
    expect(st.isCharacterDevice()).toBe(true);
    expect(st.rdev).toBe((1 << 8) | 3);
    sys().mknod(join(dir, "fifo"), 0o10644);
    expect(statSync(join(dir, "fifo")).isFIFO()).toBe(true);
    expect(errorOf(() => sys().mknod(dev, 0o20666, 1, 3)).message).toBe(`mknod ${dev}: EEXIST (File already exists)`);
  });

  test("binary xattrs round-trip byte for byte on the entry itself; a missing one is null", () => {
    const f = join(dir, "x");
    writeFileSync(f, "");
    const cap = Uint8Array.from([1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    sys().lsetxattr(f, "security.capability", cap);
    sys().lsetxattr(f, "user.empty", new Uint8Array(0));
    expect([...sys().lgetxattr(f, "security.capability")!]).toEqual([...cap]);
    expect(sys().lgetxattr(f, "user.empty")!.length).toBe(0);
    expect(sys().lgetxattr(f, "user.none")).toBeNull();
    expect(sys().llistxattr(f).sort()).toEqual(["security.capability", "user.empty"]);
    expect(errorOf(() => sys().lgetxattr(join(dir, "absent"), "user.a")).code).toBe("ENOENT");
  });

  test("flock: a second open file description is refused while the first holds it", () => {
    const f = join(dir, "lock");
    writeFileSync(f, "");
    const a = openSync(f, "r");
    const b = openSync(f, "r");
    try {
      expect(sys().flock(a, "exclusive")).toBe(true);
      expect(sys().flock(b, "exclusive")).toBe(false);
      expect(sys().flock(b, "shared")).toBe(false);
      sys().flock(a, "unlock");
      expect(sys().flock(b, "shared")).toBe(true);
      expect(sys().flock(a, "shared")).toBe(true);
    } finally {
      closeSync(a);
      closeSync(b);
    }
  });
});
