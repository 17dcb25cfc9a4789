// The native calls behind console sockets, OOM eventfds and logging-binary pipes, against the kernel.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { closeSync, mkdtempSync, readSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { EFD, sys, SysError } from "../../src/sys/index.ts";
import { describeWith } from "../support/require.ts";

function errorOf(fn: () => unknown): SysError {
  try {
    fn();
  } catch (err) {
    if (err instanceof SysError) return err;
    throw err;
  }
  throw new Error("expected a SysError, got none");
}

async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await Bun.sleep(2);
  }
}

describeWith([], "native fds (pipe, eventfd, non-blocking, unix listener)", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync("/tmp/bunker-native-fds-");
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("pipe carries bytes; setNonblock turns an empty read into EAGAIN and back", () => {
    const [r, w] = sys().pipe();
    try {
      writeSync(w, "pipe");
      const buf = Buffer.alloc(8);
      expect(buf.subarray(0, readSync(r, buf)).toString()).toBe("pipe");
      sys().setNonblock(r, true);
      sys().setNonblock(r, true); // already set: no change
      expect(() => readSync(r, buf)).toThrow(/EAGAIN/);
      sys().setNonblock(r, false);
      writeSync(w, "x");
      expect(readSync(r, buf)).toBe(1);
    } finally {
      closeSync(r);
      closeSync(w);
    }
    expect(errorOf(() => sys().setNonblock(r, true)).code).toBe("EBADF");
  });

  test("eventfd counts writes until read; a non-blocking one is EAGAIN when zero", () => {
    const fd = sys().eventfd(0, EFD.NONBLOCK);
    try {
      const one = Buffer.alloc(8);
      one.writeBigUInt64LE(1n);
      writeSync(fd, one);
      writeSync(fd, one);
      const got = Buffer.alloc(8);
      expect(readSync(fd, got)).toBe(8);
      expect(got.readBigUInt64LE()).toBe(2n);
      expect(() => readSync(fd, got)).toThrow(/EAGAIN/);
    } finally {
      closeSync(fd);
    }
    expect(errorOf(() => sys().eventfd(-1)).code).toBe("EINVAL");
  });

  test("a Bun stream over a non-blocking eventfd delivers each signal as it happens", async () => {
    const fd = sys().eventfd(0, EFD.NONBLOCK);
    const reader = Bun.file(fd).stream().getReader();
    try {
      const one = Buffer.alloc(8);
      one.writeBigUInt64LE(3n);
      setTimeout(() => writeSync(fd, one), 20);
      const { value } = await reader.read();
      expect(Buffer.from(value!).readBigUInt64LE()).toBe(3n);
    } finally {
      await reader.cancel();
      closeSync(fd);
    }
  });

  test("listenUnix + accept: null while nobody connects, then the peer's connection", async () => {
    const path = join(dir, "l.sock");
    const l = sys().listenUnix(path);
    try {
      expect(sys().accept(l)).toBeNull();
      const client = await Bun.connect({ unix: path, socket: { data() {} } });
      let conn: number | null = null;
      await until(() => (conn = sys().accept(l, { nonblock: true })) !== null);
      expect(sys().peerCred(conn!).pid).toBe(process.pid);
      client.end();
      closeSync(conn!);
      expect(errorOf(() => sys().listenUnix(path)).code).toBe("EADDRINUSE");
    } finally {
      closeSync(l);
    }
    expect(errorOf(() => sys().listenUnix(join(dir, "x".repeat(120)))).code).toBe("ENAMETOOLONG");
    expect(errorOf(() => sys().listenUnix("")).code).toBe("EINVAL");
  });
});
