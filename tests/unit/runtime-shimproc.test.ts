import { afterAll, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DeadlineExceededError, FailedPreconditionError, UnknownError } from "../../src/errdefs.ts";
import { DeleteResponseSchema } from "../../src/gen/containerd/task/v2/shim_pb.ts";
import { parseStartReply, shimDelete, shimStart, type ShimCommandConfig } from "../../src/runtime/shimproc.ts";

const dir = mkdtempSync(join(tmpdir(), "bunker-shimproc-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const bundlePath = join(dir, "bundle");
mkdirSync(bundlePath);

function fakeShim(name: string, body: string): ShimCommandConfig {
  const binary = join(dir, name);
  writeFileSync(binary, `#!/bin/sh\n${body}\n`);
  chmodSync(binary, 0o755);
  return {
    binary,
    bundle: { id: "c1", namespace: "ns", path: bundlePath },
    address: "/run/bunker/bunker.sock",
    ttrpcAddress: "/run/bunker/events.sock",
    publishBinary: "/usr/bin/bunker",
  };
}

test("parseStartReply: plain and JSON forms", () => {
  expect(parseStartReply("unix:///run/containerd/s/abc\n")).toBe("unix:///run/containerd/s/abc");
  expect(parseStartReply('{"version":2,"address":"unix:///run/x.sock","protocol":"ttrpc"}')).toBe("unix:///run/x.sock");
  for (const bad of ["hello world", "unix:///a\nunix:///b", "{not json", '{"version":3,"address":"unix:///x"}', '{"version":2,"address":"unix:///x","protocol":"grpc"}', '{"version":2}', "tcp://1.2.3.4:5"]) {
    expect(() => parseStartReply(bad)).toThrow(UnknownError);
  }
});


test("start: flags, cwd, env and options on stdin", async () => {
  const c = fakeShim("containerd-shim-args-v1", `printf '%s\\n' "$@" > "${dir}/args"; pwd > "${dir}/cwd"; echo "$TTRPC_ADDRESS" > "${dir}/env"; cat > "${dir}/stdin"; echo unix:///run/test.sock`);
  expect(await shimStart({ ...c, debug: true }, new Uint8Array([1, 2, 3]))).toBe("unix:///run/test.sock");
  expect(readFileSync(join(dir, "args"), "utf8").trim().split("\n")).toEqual([
    "-namespace", "ns", "-address", "/run/bunker/bunker.sock", "-publish-binary", "/usr/bin/bunker", "-id", "c1", "-debug", "start",
  ]);
  expect(readFileSync(join(dir, "cwd"), "utf8").trim()).toBe(bundlePath);
  expect(readFileSync(join(dir, "env"), "utf8").trim()).toBe("/run/bunker/events.sock");
  expect([...readFileSync(join(dir, "stdin"))]).toEqual([1, 2, 3]);
});

test("start: garbage, silence, failure and hangs are clear errors", async () => {
  await expect(shimStart(fakeShim("g1", "echo 'this is not an address'"))).rejects.toThrow(/did not print a unix socket address: "this is not an address"/);
  await expect(shimStart(fakeShim("g2", "true"))).rejects.toThrow(/printed no address/);
  await expect(shimStart(fakeShim("g3", "echo 'boom: no runc' >&2; exit 1"))).rejects.toThrow(/shim start failed .*boom: no runc/);
  await expect(shimStart(fakeShim("g4", "exec sleep 30"), undefined, 200)).rejects.toThrow(DeadlineExceededError);
  // A serve child that keeps stdout open must not hang the start.
  const t0 = performance.now();
  expect(await shimStart(fakeShim("g5", `echo unix:///run/leak.sock; sleep 5 & echo $! > "${dir}/leak.pid"; exit 0`))).toBe("unix:///run/leak.sock");
  expect(performance.now() - t0).toBeLessThan(3000);
  process.kill(Number(readFileSync(join(dir, "leak.pid"), "utf8")), "SIGKILL");
  await expect(shimStart({ ...fakeShim("g6", ""), binary: join(dir, "missing") })).rejects.toThrow(FailedPreconditionError);
});

test("delete: parses the DeleteResponse it prints", async () => {
  const at = new Date(1_700_000_000_123);
  writeFileSync(join(dir, "delete.bin"), toBinary(DeleteResponseSchema, create(DeleteResponseSchema, { pid: 77, exitStatus: 137, exitedAt: timestampFromDate(at) })));
  const c = fakeShim("d1", `printf '%s\\n' "$@" > "${dir}/dargs"; cat "${dir}/delete.bin"`);
  expect(await shimDelete(c)).toEqual({ pid: 77, exitStatus: 137, exitedAt: at });
  expect(readFileSync(join(dir, "dargs"), "utf8").trim().split("\n").slice(-5)).toEqual(["-id", "c1", "-bundle", bundlePath, "delete"]);
  await expect(shimDelete(fakeShim("d2", "echo 'no such container' >&2; exit 1"))).rejects.toThrow(/shim delete failed .*no such container/);
  await expect(shimDelete(fakeShim("d3", "printf '\\377\\377\\377'"))).rejects.toThrow(/no DeleteResponse/);
});
