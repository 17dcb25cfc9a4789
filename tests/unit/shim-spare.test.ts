// The warm spare's handover (src/shim/spare-wire.ts, spare-handover.ts): the message codec, the
// control socket's name, the opt-in, and `start`'s fallback decision, with a fake Syscalls and a
// plain Bun socket standing in for the spare (no root, no native core).
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { toBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { socketAddress, socketPath } from "../../src/contract/address.ts";
import { InvalidArgumentError } from "../../src/errdefs.ts";
import { OptionsSchema } from "../../src/gen/runtimeoptions/v1/api_pb.ts";
import { handOverOrSpawn, handToSpare } from "../../src/shim/spare-handover.ts";
import { decodeHandover, encodeHandover, SPARE_ACK, spareAddress, spareEnabled, type Handover } from "../../src/shim/spare-wire.ts";
import { spareArgs } from "../../src/shim/spare-spawn.ts";
import { parseFlags } from "../../src/shim/flags.ts";
import { FakeSyscalls } from "../../src/sys/index.ts";
import { packAny } from "../../src/ttrpc/any.ts";

const sample: Handover = { id: "pod-1", socket: "unix:///run/containerd/s/abc", bundle: "/run/containerd/io.containerd.runtime.v2.task/k8s.io/pod-1", debug: true };

describe("handover message", () => {
  test("round trip", () => {
    expect(decodeHandover(encodeHandover(sample))).toEqual(sample);
    expect(decodeHandover(encodeHandover({ ...sample, debug: false, id: "ünï" }))).toEqual({ ...sample, debug: false, id: "ünï" });
  });

  test("malformed messages are refused with a one-line reason", () => {
    const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
    expect(() => decodeHandover(new TextEncoder().encode("{"))).toThrow(InvalidArgumentError);
    expect(() => decodeHandover(new Uint8Array([0xff, 0xfe]))).toThrow("not JSON");
    expect(() => decodeHandover(enc([1]))).toThrow("not an object");
    expect(() => decodeHandover(enc({ ...sample, id: "" }))).toThrow("id must be a non-empty string");
    expect(() => decodeHandover(enc({ ...sample, bundle: 3 }))).toThrow("bundle must be a non-empty string");
    expect(() => decodeHandover(enc({ ...sample, debug: "yes" }))).toThrow("debug must be a boolean");
    expect(() => decodeHandover(enc({ ...sample, socket: "/run/x" }))).toThrow("unix://");
    expect(() => decodeHandover(enc({ ...sample, bundle: "rel/dir" }))).toThrow("absolute");
  });

  test("fits the one recvmsg the spare reads (4 KiB)", () => {
    expect(encodeHandover({ ...sample, id: "x".repeat(200), bundle: `/${"b".repeat(1000)}` }).length).toBeLessThan(4096);
  });
});

describe("spare control socket", () => {
  test("beside the shims' sockets, stable, keyed by namespace, containerd and ttrpc address", () => {
    const a = spareAddress("/run/containerd/containerd.sock", "k8s.io", "/run/containerd/containerd.sock.ttrpc");
    expect(a).toBe(spareAddress("/run/containerd/containerd.sock", "k8s.io", "/run/containerd/containerd.sock.ttrpc"));
    expect(a).toMatch(/^unix:\/\/\/run\/containerd\/s\/[0-9a-f]{64}$/);
    expect(socketPath(a).length).toBeLessThanOrEqual(106);
    expect(spareAddress("/run/containerd/containerd.sock", "default", "/run/containerd/containerd.sock.ttrpc")).not.toBe(a);
    expect(spareAddress("/run/c2.sock", "k8s.io", "/run/containerd/containerd.sock.ttrpc")).not.toBe(a);
    expect(spareAddress("/run/containerd/containerd.sock", "k8s.io", "/other.ttrpc")).not.toBe(a);
    // never a group's shim address
    expect(socketAddress("/run/containerd/containerd.sock", "k8s.io", "bunker-spare")).not.toBe(a);
    expect(() => spareAddress("/a", "", "/b")).toThrow(InvalidArgumentError);
  });

  test("the spare's argv: the key's flags and the spare action, parsed back as Go's flag parses", () => {
    const flags = parseFlags(["-namespace", "k8s.io", "-id", "p1", "-address", "/run/c.sock", "-publish-binary", "/bin/ctd", "-socket", "unix:///x"]);
    const args = spareArgs(flags);
    expect(args).toEqual(["-namespace", "k8s.io", "-address", "/run/c.sock", "-publish-binary", "/bin/ctd", "spare"]);
    const back = parseFlags(args);
    expect([back.namespace, back.address, back.publishBinary, back.action, back.id, back.socket]).toEqual(["k8s.io", "/run/c.sock", "/bin/ctd", "spare", "", ""]);
  });
});

describe("opt-in", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "bunker-spare-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const body = (toml: string) => toBinary(AnySchema, packAny(OptionsSchema, { typeUrl: "", configBody: new TextEncoder().encode(toml) }));

  test("off unless the handler says spare = true or BUNKER_SHIM_SPARE=1", () => {
    expect(spareEnabled(new Uint8Array(), {})).toBe(false);
    expect(spareEnabled(body("group = 'x'\n"), {})).toBe(false);
    expect(spareEnabled(body("spare = false\n"), {})).toBe(false);
    expect(spareEnabled(body("spare = true\n"), {})).toBe(true);
    expect(spareEnabled(new Uint8Array(), { BUNKER_SHIM_SPARE: "1" })).toBe(true);
    expect(spareEnabled(new Uint8Array(), { BUNKER_SHIM_SPARE: "0" })).toBe(false);
    writeFileSync(join(dir, "h.toml"), "SystemdCgroup = false\nspare = true\n");
    expect(spareEnabled(toBinary(AnySchema, packAny(OptionsSchema, { typeUrl: "", configPath: join(dir, "h.toml") })), {})).toBe(true);
    expect(() => spareEnabled(body("spare = 'yes'\n"), {})).toThrow("config_body: spare must be true or false");
  });
});

describe("start's fallback decision", () => {
  test("the spare when it took the listener, a fresh serve process otherwise", async () => {
    let spawned = 0;
    const spawnFresh = () => void spawned++;
    expect(await handOverOrSpawn(async () => true, spawnFresh)).toBe("spare");
    expect(spawned).toBe(0);
    expect(await handOverOrSpawn(async () => false, spawnFresh)).toBe("fresh");
    expect(await handOverOrSpawn(async () => Promise.reject(new Error("ECONNREFUSED")), spawnFresh)).toBe("fresh");
    expect(spawned).toBe(2);
    // a failing fresh spawn is start's own error, as without spares
    await expect(handOverOrSpawn(async () => false, () => { throw new Error("spawn failed"); })).rejects.toThrow("spawn failed");
  });

  describe("handToSpare against a stand-in spare", () => {
    let dir: string;
    let path: string;
    let fake: FakeSyscalls;
    let listener: ReturnType<typeof Bun.listen> | undefined;
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), "bunker-spare-"));
      path = join(dir, "ctl");
      fake = new FakeSyscalls();
      fake.peer = { pid: 1, uid: process.getuid!(), gid: 0 };
    });
    afterEach(() => {
      listener?.stop(true);
      listener = undefined;
      rmSync(dir, { recursive: true, force: true });
    });
    const spare = (open: (s: { write(b: Uint8Array): number; end(): void }) => void) => {
      listener = Bun.listen({ unix: path, socket: { open, data() {} } });
    };

    test("no control socket: false without loading the native core", async () => {
      let loaded = false;
      expect(await handToSpare(`unix://${path}`, 7, sample, () => ((loaded = true), fake))).toBe(false);
      expect(loaded).toBe(false);
    });

    test("an ack: true, after the fd and the message went out by sendmsg", async () => {
      spare((s) => void s.write(new Uint8Array([SPARE_ACK])));
      expect(await handToSpare(`unix://${path}`, 7, sample, () => fake, 2000)).toBe(true);
      const sent = fake.calls.find((c) => c.method === "sendFd");
      expect(sent?.args[1]).toBe(7);
      expect(decodeHandover(sent?.args[2] as Uint8Array)).toEqual(sample);
    });

    test("a spare that hangs up, answers wrong, or never answers: false", async () => {
      spare((s) => s.end());
      expect(await handToSpare(`unix://${path}`, 7, sample, () => fake, 2000)).toBe(false);
      listener!.stop(true);
      spare((s) => void s.write(new Uint8Array([0x15])));
      expect(await handToSpare(`unix://${path}`, 7, sample, () => fake, 2000)).toBe(false);
      listener!.stop(true);
      spare(() => {});
      const t0 = Date.now();
      expect(await handToSpare(`unix://${path}`, 7, sample, () => fake, 100)).toBe(false);
      expect(Date.now() - t0).toBeLessThan(1000);
    });

    test("a spare of another uid is never sent the listener", async () => {
      fake.peer = { pid: 1, uid: 12345, gid: 0 };
      spare((s) => void s.write(new Uint8Array([SPARE_ACK])));
      expect(await handToSpare(`unix://${path}`, 7, sample, () => fake, 500)).toBe(false);
      expect(fake.calls.some((c) => c.method === "sendFd")).toBe(false);
    });

    test("sendmsg failing: false", async () => {
      fake.fail("sendFd", "EPIPE");
      spare(() => {});
      expect(await handToSpare(`unix://${path}`, 7, sample, () => fake, 2000)).toBe(false);
    });
  });
});
