import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NotFoundError, UnknownError } from "../../src/errdefs.ts";
import { describeWith } from "../support/require.ts";
import { isRuncError, lastLogError, parseVersion, Runc, runcError } from "../../src/runc/runc.ts";


describe("runc command lines (go-runc's order)", () => {
  test("global flags", () => {
    const r = new Runc({ root: "/run/containerd/runc/default", log: "/b/log.json", systemdCgroup: true, criu: "/usr/sbin/criu" });
    expect(r.argv("state", "x")).toEqual(["runc", "--root", "/run/containerd/runc/default", "--log", "/b/log.json", "--log-format", "json", "--criu", "/usr/sbin/criu", "--systemd-cgroup", "state", "x"]);
    expect(new Runc({ command: "/usr/sbin/runc", debug: true, rootless: false }).argv("list")).toEqual(["/usr/sbin/runc", "--debug", "--rootless=false", "list"]);
  });

  test("create and exec arguments", () => {
    expect(Runc.createArgs("c1", "/b", { pidFile: "/b/init.pid", consoleSocket: "/tmp/pty.sock", noPivot: true, noNewKeyring: true, detach: true })).toEqual([
      "create", "--bundle", "/b", "--pid-file", "/b/init.pid", "--console-socket", "/tmp/pty.sock", "--no-pivot", "--no-new-keyring", "--detach", "c1",
    ]);
    expect(Runc.createArgs("c1", "/b")).toEqual(["create", "--bundle", "/b", "c1"]);
    expect(Runc.execArgs("c1", "/tmp/p.json", { detach: true, pidFile: "/b/e.pid" })).toEqual(["exec", "--process", "/tmp/p.json", "--detach", "--pid-file", "/b/e.pid", "c1"]);
  });

  test("version parsing", () => {
    expect(parseVersion("runc version 1.1.5+ds1\ncommit: abc\nspec: 1.0.2-dev\ngo: go1.19.8\n")).toEqual({ runc: "1.1.5+ds1", commit: "abc", spec: "1.0.2-dev" });
    expect(parseVersion("something else")).toEqual({ runc: "", commit: "", spec: "" });
  });

  test("lastLogError takes the last error-level line and skips torn lines", () => {
    const log = [
      JSON.stringify({ level: "warning", msg: "w" }),
      JSON.stringify({ level: "error", msg: "first" }),
      '{"level":"error","ms',
      JSON.stringify({ level: "error", msg: "second" }),
      JSON.stringify({ level: "info", msg: "after" }),
    ].join("\n");
    expect(lastLogError(log)).toBe("second");
    expect(lastLogError("")).toBe("");
  });

  test("runcError picks the class from runc's words and keeps the details", () => {
    const f = { argv: ["runc", "state", "x"], exitCode: 1, stdout: "", stderr: "", logMessage: "container does not exist" };
    const e = runcError("state", f);
    expect(e).toBeInstanceOf(NotFoundError);
    expect(e.message).toBe("runc state failed: container does not exist");
    expect(isRuncError(e) && e.runc).toEqual(f);
    const u = runcError("start", { ...f, logMessage: "", stderr: "boom\n" });
    expect(u).toBeInstanceOf(UnknownError);
    expect(u.message).toBe("runc start failed: boom");
    expect(runcError("kill", { ...f, logMessage: "" }).message).toBe("runc kill failed: exit status 1");
  });
});

describeWith(["bin:runc"], "the real runc binary", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "bunker-runc-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test("runc --version", async () => {
    const v = await new Runc().version();
    expect(v.runc).toMatch(/^\d+\.\d+\.\d+/);
    expect(v.spec).toMatch(/^\d+\.\d+/);
  });

  test("features: runc 1.1's document (OCI versions, hooks, mount options), or undefined from a runc without the command", async () => {
    const f = await new Runc().features();
    expect(f?.ociVersionMax).toMatch(/^1\./);
    expect(f?.hooks).toContain("prestart");
    const fake = join(dir, "old-runc");
    writeFileSync(fake, "#!/bin/sh\necho 'No help topic for features' >&2\nexit 1\n", { mode: 0o755 });
    expect(await new Runc({ command: fake }).features()).toBeUndefined();
  });

  test("runc state of a missing container: NotFound with exit code and runc's log message", async () => {
    const log = join(dir, "log.json");
    writeFileSync(log, JSON.stringify({ level: "error", msg: "an older failure" }) + "\n");
    const r = new Runc({ root: join(dir, "root"), log });
    const err = await r.state("nonexist").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    if (!isRuncError(err)) throw new Error("expected a runc error");
    expect(err.runc.exitCode).toBe(1);
    expect(err.runc.logMessage).toBe("container does not exist");
    expect(err.runc.argv).toContain("--log-format");
    expect(err.message).toBe("runc state failed: container does not exist");
  });

  test("without --log runc's complaint comes from stderr", async () => {
    const r = new Runc({ root: join(dir, "root") });
    const err = await r.kill("nonexist", 9).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    if (!isRuncError(err)) throw new Error("expected a runc error");
    expect(err.runc.stderr).toContain("container does not exist");
    expect(err.runc.logMessage).toBe("");
  });

  test("force delete of a missing container succeeds, list of an empty root is empty", async () => {
    const r = new Runc({ root: join(dir, "root"), log: join(dir, "log.json") });
    await r.delete("nonexist", { force: true });
    expect(await r.list()).toEqual([]);
  });

  test("a missing runc binary is a clear error", async () => {
    const r = new Runc({ command: join(dir, "no-such-runc") });
    await expect(r.version()).rejects.toThrow(new NotFoundError(`runc binary ${JSON.stringify(join(dir, "no-such-runc"))} not found`));
  });
});
