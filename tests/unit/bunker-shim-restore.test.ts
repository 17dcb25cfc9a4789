// Restore's command line (go-runc's RestoreOpts order, byte for byte), how a restoring Create
// request maps to it, and how CRIU's log reaches the error. Real restores are in
// tests/integration/shim-checkpoint.test.ts.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InvalidArgumentError, UnknownError } from "../../src/errdefs.ts";
import { CheckpointOptionsSchema, OptionsSchema } from "../../src/gen/containerd/runc/v1/options_pb.ts";
import { CheckpointTaskRequestSchema, CreateTaskRequestSchema } from "../../src/gen/containerd/task/v2/shim_pb.ts";
import { checkpointPlan, criuLogTail, withCriuLog } from "../../src/shims/bunker/checkpoint.ts";
import { restorePlan, startRestoreOptions } from "../../src/shims/bunker/restore.ts";
import { checkpointArgs, restoreArgs } from "../../src/runc/criu.ts";
import { packAny } from "../../src/ttrpc/any.ts";

describe("runc restore arguments", () => {
  test("every option, in go-runc's order: checkpoint options, restore options, --bundle, id", () => {
    expect(
      restoreArgs("c1", {
        bundle: "/b",
        imagePath: "/cp",
        workPath: "/w",
        parentPath: "/parent",
        openTcp: true,
        externalUnixSockets: true,
        terminal: true,
        pageServer: "10.0.0.1:27",
        fileLocks: true,
        cgroupsMode: "soft",
        emptyNamespaces: ["network", "ipc"],
        lazyPages: true,
        detach: true,
        pidFile: "/b/init.pid",
        consoleSocket: "/tmp/pty.sock",
        noPivot: true,
        noSubreaper: true,
      }),
    ).toEqual([
      "restore",
      "--image-path", "/cp",
      "--work-path", "/w",
      "--parent-path", "/parent",
      "--tcp-established",
      "--ext-unix-sk",
      "--shell-job",
      "--page-server", "10.0.0.1:27",
      "--file-locks",
      "--manage-cgroups-mode", "soft",
      "--empty-ns", "network", "--empty-ns", "ipc",
      "--lazy-pages",
      "--detach",
      "--pid-file", "/b/init.pid",
      "--console-socket", "/tmp/pty.sock",
      "--no-pivot",
      "-no-subreaper",
      "--bundle", "/b", "c1",
    ]);
  });

  test("only the image: nothing else is said", () => {
    expect(restoreArgs("c1", { bundle: "/b", imagePath: "/cp" })).toEqual(["restore", "--image-path", "/cp", "--bundle", "/b", "c1"]);
  });

  test("what containerd's shim passes at Start (createCheckpointedState): detached, no subreaper, absolute pid file", () => {
    const plan = { imagePath: "/cp", workPath: "/b/work", parentPath: "" };
    expect(restoreArgs("c1", startRestoreOptions("/b", plan, { pidFile: "/b/init.pid", noPivot: false }))).toEqual([
      "restore", "--image-path", "/cp", "--work-path", "/b/work", "--detach", "--pid-file", "/b/init.pid", "-no-subreaper", "--bundle", "/b", "c1",
    ]);
    const withAll = restoreArgs("c1", startRestoreOptions("/b", { ...plan, parentPath: "/p" }, { pidFile: "/b/init.pid", noPivot: true, consoleSocket: "/s.sock" }));
    expect(withAll).toEqual([
      "restore", "--image-path", "/cp", "--work-path", "/b/work", "--parent-path", "/p", "--detach", "--pid-file", "/b/init.pid",
      "--console-socket", "/s.sock", "--no-pivot", "-no-subreaper", "--bundle", "/b", "c1",
    ]);
  });
});

describe("restorePlan: a restoring Create, checked before anything is mounted", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "bunker-restore-"));
    mkdirSync(join(dir, "cp"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const req = (fields: Record<string, unknown>) => create(CreateTaskRequestSchema, { id: "r1", bundle: join(dir, "bundle"), ...fields });

  test("the image dir, the bundle's work dir (go: p.WorkDir) and the parent", () => {
    expect(restorePlan(req({ checkpoint: join(dir, "cp") }))).toEqual({ imagePath: join(dir, "cp"), workPath: join(dir, "bundle", "work"), parentPath: "" });
    expect(restorePlan(req({ checkpoint: join(dir, "cp"), parentCheckpoint: "/parent" })).parentPath).toBe("/parent");
  });

  test("runc Options' criu_work_path is CRIU's work dir (go: options.CriuWorkPath)", () => {
    const options = packAny(OptionsSchema, { criuWorkPath: "/var/criu/work", criuPath: "/usr/sbin/criu" });
    expect(restorePlan(req({ checkpoint: join(dir, "cp"), options })).workPath).toBe("/var/criu/work");
  });

  test("bad paths are InvalidArgument, with the path", () => {
    expect(() => restorePlan(req({ checkpoint: "cp" }))).toThrow(new InvalidArgumentError('checkpoint path "cp" must be absolute'));
    expect(() => restorePlan(req({ checkpoint: join(dir, "none") }))).toThrow(new InvalidArgumentError(`checkpoint ${join(dir, "none")} is not a directory`));
    writeFileSync(join(dir, "file"), "");
    expect(() => restorePlan(req({ checkpoint: join(dir, "file") }))).toThrow(InvalidArgumentError);
    expect(() => restorePlan(req({ checkpoint: join(dir, "cp"), parentCheckpoint: "rel" }))).toThrow('parent checkpoint path "rel" must be absolute');
    const options = packAny(OptionsSchema, { criuWorkPath: "work" });
    expect(() => restorePlan(req({ checkpoint: join(dir, "cp"), options }))).toThrow('criu work path "work" must be absolute');
  });
});

describe("CRIU's log in the error", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "bunker-criulog-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  // the end of a real restore.log of CRIU 3.17.1 on Linux 6.18
  const LOG = [
    "(00.001050) Error (criu/util.c:642): exited, status=1",
    "(00.012250) Found mmap_min_addr 0x10000",
    "(00.012254) Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds",
    "(00.012257) Error (criu/vdso.c:613): vdso: Failed to fill self vdso symtable",
    "(00.012259) Error (criu/kerndat.c:1615): kerndat_vdso_fill_symtable failed when initializing kerndat.",
    "(00.012294) Adjust mmap_min_addr 0x1000 -> 0x10000",
    "",
  ].join("\n");

  test("the last three error lines, without timestamps", () => {
    writeFileSync(join(dir, "restore.log"), LOG);
    expect(criuLogTail(join(dir, "restore.log"))).toBe(
      "Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds; Error (criu/vdso.c:613): vdso: Failed to fill self vdso symtable; " +
        "Error (criu/kerndat.c:1615): kerndat_vdso_fill_symtable failed when initializing kerndat.",
    );
  });

  test("no log, or one an earlier run left: nothing is added", () => {
    expect(criuLogTail(join(dir, "missing.log"))).toBe("");
    writeFileSync(join(dir, "old.log"), LOG);
    utimesSync(join(dir, "old.log"), new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    expect(criuLogTail(join(dir, "old.log"), Date.now())).toBe("");
    const err = new UnknownError("runc restore failed: open /cp/descriptors.json: no such file or directory");
    expect(withCriuLog(err, join(dir, "old.log"), Date.now())).toBe(err);
    expect(err.message).toBe("runc restore failed: open /cp/descriptors.json: no such file or directory");
  });

  test("appended to the same error object: its class (and so its code) is kept", () => {
    writeFileSync(join(dir, "restore.log"), LOG);
    const err = new UnknownError("runc restore failed: criu failed: type RESTORE errno 0");
    const out = withCriuLog(err, join(dir, "restore.log"), Date.now() - 1000);
    expect(out).toBe(err);
    expect(err).toBeInstanceOf(UnknownError);
    expect(err.message).toStartWith("runc restore failed: criu failed: type RESTORE errno 0 (criu: Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds;");
  });
});

describe("checkpoint's command line shares restore's CRIU flags (go-runc CheckpointOpts.args, then actions)", () => {
  test("every CheckpointOptions field", () => {
    const options = packAny(CheckpointOptionsSchema, {
      openTcp: true,
      externalUnixSockets: true,
      terminal: true,
      fileLocks: true,
      emptyNamespaces: ["network"],
      cgroupsMode: "soft",
      workPath: "/w",
    });
    const plan = checkpointPlan(create(CheckpointTaskRequestSchema, { id: "c1", path: "/cp", options }), "/b");
    expect({ ...plan, options: undefined }).toEqual({ imagePath: "/cp", workPath: "/w", exit: false, options: undefined });
    expect(checkpointArgs("c1", plan.options)).toEqual([
        "checkpoint",
        "--image-path", "/cp",
        "--work-path", "/w",
        "--tcp-established",
        "--ext-unix-sk",
        "--shell-job",
        "--file-locks",
        "--manage-cgroups-mode", "soft",
        "--empty-ns", "network",
        "--leave-running",
        "c1",
    ]);
  });

  test("no options: the request's path, the bundle's work dir, left running; exit stops it", () => {
    expect(checkpointArgs("c1", checkpointPlan(create(CheckpointTaskRequestSchema, { id: "c1", path: "/cp" }), "/b").options)).toEqual([
      "checkpoint", "--image-path", "/cp", "--work-path", "/b/criu-work", "--leave-running", "c1",
    ]);
    const exit = packAny(CheckpointOptionsSchema, { exit: true, imagePath: "/img" });
    const exitPlan = checkpointPlan(create(CheckpointTaskRequestSchema, { id: "c1", path: "/cp", options: exit }), "/b");
    expect([exitPlan.imagePath, exitPlan.workPath, exitPlan.exit]).toEqual(["/img", "/b/criu-work", true]);
    expect(checkpointArgs("c1", exitPlan.options)).toEqual(["checkpoint", "--image-path", "/img", "--work-path", "/b/criu-work", "c1"]);
    expect(() => checkpointPlan(create(CheckpointTaskRequestSchema, { id: "c1", path: "rel" }), "/b")).toThrow(InvalidArgumentError);
  });
});
