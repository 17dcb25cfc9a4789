import { afterEach, describe, expect, test } from "bun:test";
import {
  decodeWaitStatus,
  errnoName,
  errnoOf,
  exitedStatus,
  FakeSyscalls,
  isErrno,
  setSys,
  signaledStatus,
  sys,
  SysError,
} from "../../src/sys/index.ts";

afterEach(() => setSys(undefined));

describe("FakeSyscalls", () => {
  test("records every call with its arguments, in order", () => {
    const fake = new FakeSyscalls();
    fake.setSubreaper(true);
    fake.mount("overlay", "/run/x/rootfs", "overlay", 0, "lowerdir=/a");
    fake.setWinsize(7, 24, 80);
    expect(fake.calls).toEqual([
      { method: "setSubreaper", args: [true] },
      { method: "mount", args: ["overlay", "/run/x/rootfs", "overlay", 0, "lowerdir=/a"] },
      { method: "setWinsize", args: [7, 24, 80] },
    ]);
    expect(fake.callsOf("setWinsize")).toEqual([[7, 24, 80]]);
    expect(fake.isSubreaper()).toBe(true);
  });

  test("keeps a mount table: unmount pops, unmountAll clears, unmounting nothing is EINVAL", () => {
    const fake = new FakeSyscalls();
    for (let i = 0; i < 3; i++) fake.mount("tmpfs", "/m", "tmpfs", 0);
    fake.unmount("/m");
    expect(fake.mounts.get("/m")?.length).toBe(2);
    fake.unmountAll("/m");
    expect(fake.mounts.has("/m")).toBe(false);
    expect(() => fake.unmount("/m")).toThrow("umount2 /m: EINVAL (Invalid argument)");
  });

  test("fail() throws a SysError with errno number, name, syscall and path", () => {
    const fake = new FakeSyscalls().fail("mount", "EPERM");
    let caught: unknown;
    try {
      fake.mount("tmpfs", "/x", "tmpfs", 0);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(SysError);
    const err = caught as SysError;
    expect(err.errno).toBe(1);
    expect(err.code).toBe("EPERM");
    expect(err.syscall).toBe("mount");
    expect(err.path).toBe("/x");
    expect(err.message).toBe("mount /x: EPERM (Operation not permitted)");
    expect(isErrno(err, "ENOENT", "EPERM")).toBe(true);
    expect(isErrno(err, "ENOENT")).toBe(false);
    // The failed call is still recorded; restore() brings the default back.
    expect(fake.callsOf("mount")).toHaveLength(1);
    fake.restore("mount").mount("tmpfs", "/x", "tmpfs", 0);
    expect(fake.mounts.get("/x")).toHaveLength(1);
  });

  test("on() programs a result", () => {
    const fake = new FakeSyscalls().on("peerCred", (fd) => ({ pid: 100 + fd, uid: 1000, gid: 1000 }));
    expect(fake.peerCred(5)).toEqual({ pid: 105, uid: 1000, gid: 1000 });
    const pairs = new FakeSyscalls();
    const [a, b] = pairs.socketpair();
    expect(a).not.toBe(b);
  });

  test("zombies: reap takes one pid, reapSweep takes all but the excluded ones", () => {
    const fake = new FakeSyscalls().exit(10, 7).exit(11, signaledStatus(9)).exit(12, 0);
    expect(fake.reap(99)).toBeNull();
    expect(fake.reap(10)).toEqual({ status: 7, raw: 7 << 8 });
    expect(fake.reap(10)).toBeNull();
    expect(fake.reapSweep(new Set([12]))).toEqual([{ pid: 11, status: 137, signal: 9, raw: 9 }]);
    expect(fake.reapSweep(new Set())).toEqual([{ pid: 12, status: 0, raw: 0 }]);
  });

  test("recvFd returns queued messages, then EAGAIN", () => {
    const fake = new FakeSyscalls();
    fake.received.push({ fd: 42, msg: new Uint8Array([1]) });
    expect(fake.recvFd(3)).toEqual({ fd: 42, msg: new Uint8Array([1]) });
    expect(() => fake.recvFd(3, { dontWait: true })).toThrow(/EAGAIN/);
    expect(fake.callsOf("recvFd")).toEqual([[3], [3, { dontWait: true }]]);
  });

  test("setSys replaces the process-wide implementation", () => {
    const fake = new FakeSyscalls();
    setSys(fake);
    sys().close(9);
    expect(fake.closed).toEqual([9]);
  });
});

describe("wait status and errno names", () => {
  test("decodes exit codes and signals like a shell", () => {
    expect(decodeWaitStatus(7 << 8)).toEqual({ status: 7, raw: 1792 });
    expect(decodeWaitStatus(9)).toEqual({ status: 137, signal: 9, raw: 9 });
    // SIGSEGV with a core dump (0x80) is still 128+11.
    expect(decodeWaitStatus(0x80 | 11)).toEqual({ status: 139, signal: 11, raw: 0x8b });
    expect(exitedStatus(255).status).toBe(255);
    expect(signaledStatus(15)).toEqual({ status: 143, signal: 15, raw: 15 });
  });

  test("errno numbers and names map both ways", () => {
    expect(errnoName(2)).toBe("ENOENT");
    expect(errnoName(11)).toBe("EAGAIN");
    expect(errnoOf("EINVAL")).toBe(22);
    expect(() => errnoOf("ENOTANERRNO")).toThrow(TypeError);
    expect(new SysError("close", 9).message).toBe("close: EBADF (Bad file descriptor)");
    expect(new SysError("x", 4095).code).toMatch(/^E/);
  });
});
