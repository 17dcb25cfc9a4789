import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { closeSync, constants, existsSync, mkdtempSync, openSync, readdirSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InvalidArgumentError, NotImplementedError } from "../../src/errdefs.ts";
import { PipeIO, stdioPath } from "../../src/stdio/io.ts";
import { sys } from "../../src/sys/index.ts";

describe("stdio paths", () => {
  test("bare paths and fifo:// are FIFOs; file:// and binary:// are not yet; others are refused", () => {
    expect(stdioPath("/run/x/stdout")).toBe("/run/x/stdout");
    expect(stdioPath("fifo:///run/x/o")).toBe("/run/x/o");
    expect(stdioPath("")).toBe("");
    expect(() => stdioPath("binary:///usr/bin/logger")).toThrow(NotImplementedError);
    expect(() => stdioPath("gopher://x")).toThrow(InvalidArgumentError);
  });
});

describe("PipeIO with real FIFOs and a real process", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "bunker-io-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  async function collect(path: string): Promise<{ text: Promise<string>; close: () => void }> {
    // the reader containerd would be: open non-blocking, read through Bun
    const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    const chunks: Uint8Array[] = [];
    const reader = Bun.file(fd).stream().getReader();
    const text = (async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value);
      }
      return Buffer.concat(chunks).toString();
    })();
    return { text, close: () => closeSync(fd) };
  }

  test("copies stdout and stderr of a process whole, through real pipes, and drains before exit", async () => {
    for (const n of ["out", "err", "in"]) sys().mkfifo(join(dir, n), 0o600);
    const out = await collect(join(dir, "out"));
    const err = await collect(join(dir, "err"));
    const io = new PipeIO({ stdin: join(dir, "in"), stdout: join(dir, "out"), stderr: join(dir, "err"), terminal: false }, sys(), dir);
    const r = io.runcIO();
    expect(typeof r.stdout).toBe("number");
    const proc = Bun.spawn(["sh", "-c", "test -p /proc/self/fd/1 && echo is-a-pipe >&2; echo reopened > /proc/self/fd/2; seq 1 200000; echo done >&2; cat"], { stdin: r.stdin, stdout: r.stdout, stderr: r.stderr });
    io.attach();
    // stdin: the client writes, then closes; CloseIO drops our hold; cat then ends
    const w = openSync(join(dir, "in"), constants.O_WRONLY);
    closeSync(w);
    io.closeStdin();
    expect(await proc.exited).toBe(0);
    await io.drain();
    io.close();
    const expected = Array.from({ length: 200000 }, (_, i) => `${i + 1}\n`).join("");
    // the FIFO readers see EOF once our ends are closed
    expect(await out.text).toBe(expected);
    const e = await err.text;
    // a pipe, not a socket: reopening /dev/stderr works (it fails with ENXIO on a socketpair)
    expect(e).toBe("is-a-pipe\nreopened\ndone\n");
    out.close();
    err.close();
    expect(readdirSync(dir).sort()).toEqual(["err", "in", "out"]);
  });

  test("a plain file is appended to; empty paths mean /dev/null", async () => {
    writeFileSync(join(dir, "log"), "before\n");
    const io = new PipeIO({ stdin: "", stdout: join(dir, "log"), stderr: "", terminal: false }, sys(), dir);
    const r = io.runcIO();
    expect(r.stdin).toBe("ignore");
    expect(r.stderr).toBe("ignore");
    const proc = Bun.spawn(["echo", "after"], { stdin: r.stdin, stdout: r.stdout, stderr: r.stderr });
    io.attach();
    await proc.exited;
    await io.drain();
    io.close();
    expect(readFileSync(join(dir, "log"), "utf8")).toBe("before\nafter\n");
  });

  test("a bad path fails before any process exists, leaving nothing open", () => {
    const before = readdirSync("/proc/self/fd").length;
    expect(() => new PipeIO({ stdin: "", stdout: join(dir, "missing", "x"), stderr: "", terminal: false }, sys(), dir)).toThrow();
    expect(readdirSync("/proc/self/fd").length).toBe(before);
    expect(existsSync(join(dir, "missing"))).toBe(false);
  });
});
