// stdio URIs besides FIFOs under real containerd 1.6 (`--log-uri`): file:// appends stdout and
// stderr to a file; binary:// hands them to a logging binary (fd 3, fd 4, readiness on fd 5).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TestContainerd } from "../support/containerd.ts";
import { describeEachContainerd } from "../support/containerd-versions.ts";
import { RUNTIME, startEnv, stopEnv, waitFor } from "../support/shim-env.ts";


describeEachContainerd(["root", "bin:runc", "bin:containerd", "bin:ctr"], "bunker shim stdio URIs under containerd", (build) => {
  const NS = `bku${process.pid}v${build.line.replace(".", "")}`;
  let ctd: TestContainerd;
  let rootfs: string;
  const run = (args: string[]) => ctd.ctr(["-n", NS, ...args], { timeoutMs: 60_000 });

  beforeAll(async () => {
    ({ ctd, rootfs } = await startEnv(build));
  }, 120_000);
  afterAll(async () => {
    await stopEnv(ctd);
  }, 120_000);

  test("file:// appends stdout and stderr to a file, across containers", async () => {
    const log = join(ctd.dir, "logs", "file1.log");
    const r = await run(["run", "--rm", "--runtime", RUNTIME, "--log-uri", `file://${log}`, "--rootfs", rootfs, "file1", "/bin/sh", "-c", "echo to-out; echo to-err >&2; exit 2"]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(readFileSync(log, "utf8")).toBe("to-out\nto-err\n");
    // a second container appends to the same file
    expect((await run(["run", "--rm", "--runtime", RUNTIME, "--log-uri", `file://${log}`, "--rootfs", rootfs, "file2", "/bin/echo", "again"])).code).toBe(0);
    expect(readFileSync(log, "utf8")).toBe("to-out\nto-err\nagain\n");
  }, 90_000);

  test("binary:// runs the logging binary with the query as arguments and the container's identity", async () => {
    const logger = join(ctd.dir, "logger.sh");
    const out = join(ctd.dir, "binary.log");
    writeFileSync(
      logger,
      ['#!/bin/sh', `echo "$CONTAINER_NAMESPACE/$CONTAINER_ID $1" > "$2.who"`, 'cat <&3 >>"$2" 5>&- &', 'cat <&4 >>"$2" 5>&- &', "exec 5>&-", "wait", ""].join("\n"),
    );
    chmodSync(logger, 0o755);
    const r = await run(["run", "--rm", "--runtime", RUNTIME, "--log-uri", `binary://${logger}?path=${out}`, "--rootfs", rootfs, "bin1", "/bin/sh", "-c", "echo b-out; echo b-err >&2"]);
    expect(r.code).toBe(0);
    await waitFor("the logger's output", () => existsSync(out) && readFileSync(out, "utf8").split("\n").length >= 3);
    expect(readFileSync(out, "utf8").split("\n").sort()).toEqual(["", "b-err", "b-out"]);
    expect(readFileSync(`${out}.who`, "utf8")).toBe(`${NS}/bin1 path\n`);
  }, 90_000);
});
