// Stdio URIs: parsing and planning as containerd's createIO, file:// appending, binary:// loggers.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, closeSync, mkdtempSync, readFileSync, readSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { InvalidArgumentError, UnavailableError } from "../../src/errdefs.ts";
import { LoggingBinary, openOutputFd, openStdinFifo, parseStdioUri, planProcessIO, prepareLogFile } from "../../src/stdio/stdio-uri.ts";
import { spawnTracked } from "../../src/sys/children.ts";
import { sys } from "../../src/sys/index.ts";

describe("parseStdioUri", () => {
  test("empty is null; a bare path or fifo:// is a FIFO", () => {
    expect(parseStdioUri("")).toEqual({ scheme: "null" });
    expect(parseStdioUri("/run/containerd/fifo/x-stdout")).toEqual({ scheme: "fifo", path: "/run/containerd/fifo/x-stdout" });
    expect(parseStdioUri("fifo:///run/x")).toEqual({ scheme: "fifo", path: "/run/x" });
    expect(parseStdioUri("relative/odd?name")).toEqual({ scheme: "fifo", path: "relative/odd?name" });
  });

  test("file:// and binary:// with percent-escapes; binary args are key, value per query pair", () => {
    expect(parseStdioUri("file:///var/log/my%20app.log")).toEqual({ scheme: "file", path: "/var/log/my app.log" });
    expect(parseStdioUri("FILE:///x")).toEqual({ scheme: "file", path: "/x" });
    expect(parseStdioUri("binary:///usr/bin/logger?id=abc&flag&max+size=1%2C5&id=dup")).toEqual({
      scheme: "binary",
      path: "/usr/bin/logger",
      args: ["id", "abc", "flag", "", "max size", "1,5"],
    });
    expect(parseStdioUri("binary:///bin/l")).toEqual({ scheme: "binary", path: "/bin/l", args: [] });
  });

  test("bad URIs are InvalidArgument with the reason", () => {
    expect(() => parseStdioUri("tcp://host:1/x")).toThrow("unknown STDIO scheme tcp");
    expect(() => parseStdioUri("binary://usr/bin/logger")).toThrow("has a host");
    expect(() => parseStdioUri("file://")).toThrow("needs an absolute path");
    expect(() => parseStdioUri("file:///a%zz")).toThrow("bad escape");
    expect(() => parseStdioUri("file:///a?x=1")).toThrow(InvalidArgumentError);
  });
});

describe("planProcessIO", () => {
  test("stdout's scheme decides for the process, as containerd's createIO", () => {
    expect(planProcessIO({ stdin: "", stdout: "", stderr: "" })).toEqual({ kind: "null" });
    expect(planProcessIO({ stdin: "/f/in", stdout: "/f/out", stderr: "" })).toEqual({ kind: "fifo", stdin: "/f/in", stdout: "/f/out", stderr: "" });
    expect(planProcessIO({ stdin: "/f/in", stdout: "file:///l/x.log", stderr: "file:///l/x.log" })).toEqual({ kind: "file", path: "/l/x.log", stdin: "/f/in" });
    expect(planProcessIO({ stdin: "", stdout: "binary:///b?a=1", stderr: "binary:///b?a=1" })).toEqual({ kind: "binary", path: "/b", args: ["a", "1"] });
    expect(() => planProcessIO({ stdin: "file:///x", stdout: "/f/out", stderr: "" })).toThrow("only valid for stdout");
  });
});

describe("stdio destinations on the filesystem", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync("/tmp/bunker-stdio-");
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("file:// appends stdout and stderr to one file, creating its directories, never truncating", async () => {
    const plan = planProcessIO({ stdin: "", stdout: `file://${dir}/logs/a/app.log`, stderr: `file://${dir}/logs/a/app.log` });
    if (plan.kind !== "file") throw new Error("file plan expected");
    prepareLogFile(plan.path);
    writeFileSync(plan.path, "before\n", { flag: "a" });
    prepareLogFile(plan.path); // again: must not truncate
    for (const word of ["one", "two"]) {
      const fd = openOutputFd(plan.path);
      const p = spawnTracked(["sh", "-c", `echo ${word}-out; echo ${word}-err >&2`], { stdout: fd, stderr: fd });
      expect(await p.exited).toBe(0);
      closeSync(fd);
    }
    expect(readFileSync(plan.path, "utf8")).toBe("before\none-out\none-err\ntwo-out\ntwo-err\n");
  });

  test("openOutputFd opens a FIFO without a reader; openStdinFifo holds a writer so EOF waits", () => {
    const fifo = join(dir, "fifo");
    sys().mkfifo(fifo, 0o600);
    const out = openOutputFd(fifo); // would block forever with O_WRONLY and no reader
    const { fd, hold } = openStdinFifo(fifo);
    const buf = Buffer.alloc(4);
    expect(() => readSync(fd, buf)).toThrow(/EAGAIN/); // no data, but not EOF: writers exist
    for (const f of [out, fd, hold]) closeSync(f);
  });

  let logger: string;
  beforeAll(() => {
    logger = join(dir, "logger.sh");
    // A logging binary as containerd documents them: fd 3 stdout, fd 4 stderr, fd 5 closed when ready.
    writeFileSync(
      logger,
      `#!/bin/sh
out="$2"
echo "$#" > "$out/argc"
/usr/bin/env > "$out/env"
exec 5>&-
/bin/cat <&3 4<&- > "$out/stdout" &
/bin/cat <&4 3<&- > "$out/stderr" &
exec 3<&- 4<&-
wait
`,
    );
    chmodSync(logger, 0o755);
  });

  test("binary:// starts the logger with containerd's fds and env, and it receives the output", async () => {
    const out = mkdtempSync(join(dir, "bin-"));
    const uri = parseStdioUri(`binary://${logger}?dir=${encodeURIComponent(out)}`);
    if (uri.scheme !== "binary") throw new Error("binary uri expected");
    const l = await LoggingBinary.start({ path: uri.path, args: uri.args, id: "c1", namespace: "ns1" });
    // what runc does with the pipes: they become the process's stdout and stderr
    const p = spawnTracked(["sh", "-c", "echo to-stdout; echo to-stderr >&2; echo more"], { stdout: l.stdout, stderr: l.stderr });
    l.closeAfterStart();
    expect(await p.exited).toBe(0);
    expect(await l.exited).toBe(0); // EOF on both pipes ends the cats and the script
    expect(readFileSync(join(out, "stdout"), "utf8")).toBe("to-stdout\nmore\n");
    expect(readFileSync(join(out, "stderr"), "utf8")).toBe("to-stderr\n");
    expect(readFileSync(join(out, "argc"), "utf8")).toBe("2\n");
    // only these two (PWD is exported by sh itself): nothing of the shim's environment leaks
    expect(readFileSync(join(out, "env"), "utf8").split("\n").filter((l) => l && !l.startsWith("PWD=")).sort()).toEqual(["CONTAINER_ID=c1", "CONTAINER_NAMESPACE=ns1"]);
    await l.close(); // already gone: nothing to signal
  });

  test("close() of a logger that ignores EOF: SIGTERM, then SIGKILL after the grace period", async () => {
    const stubborn = join(dir, "stubborn.sh");
    writeFileSync(stubborn, `#!/bin/sh\ntrap '' TERM\nexec 5>&-\nwhile :; do sleep 1; done\n`);
    chmodSync(stubborn, 0o755);
    const l = await LoggingBinary.start({ path: stubborn, id: "c2", namespace: "default" });
    const t0 = Date.now();
    await l.close(300);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    expect(await l.exited).toBe(137);
  });

  test("a logger that never gets ready times out when asked to; a missing one is InvalidArgument", async () => {
    const slow = join(dir, "slow.sh");
    writeFileSync(slow, `#!/bin/sh\nexec sleep 30\n`);
    chmodSync(slow, 0o755);
    await expect(LoggingBinary.start({ path: slow, id: "c3", namespace: "default", readyTimeoutMs: 100 })).rejects.toThrow(UnavailableError);
    await expect(LoggingBinary.start({ path: join(dir, "nope"), id: "c4", namespace: "default" })).rejects.toThrow(InvalidArgumentError);
  });
});
