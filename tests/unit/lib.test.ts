// The library's pure parts (src/lib): waits composed and polled against a fake probe (Timeout and
// ContainerExitError with the last log lines), port requests and free-port choice, the mapping of
// internal errors to the exported names, options over the environment, run options to run flags,
// and the json-file reader behind logs().
import { describe, expect, test } from "bun:test";
import { mkdtempSync, renameSync, rmSync, writeFileSync, appendFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AlreadyExistsError, FailedPreconditionError, fromCode, Code, InvalidArgumentError, NotFoundError } from "../../src/errdefs.ts";
import { AlreadyExists, ContainerExitError, ImagePullError, InvalidArgument, NotFound, Timeout, Wait, LIB_LABELS, SESSION_ID } from "../../src/lib/index.ts";
import { resolveOptions } from "../../src/lib/client.ts";
import { envList, numericUser } from "../../src/lib/exec.ts";
import { JsonLogLines, LogCursor } from "../../src/lib/logs.ts";
import { choosePorts, freePort, isPortClash, parsePorts, publishSpecs, releaseChosen, withPortRetry } from "../../src/lib/ports.ts";
import { networkMode, parseVolume, runSpecFlags } from "../../src/lib/run.ts";
import { libLabels } from "../../src/lib/tracking.ts";
import { healthcheckCommand, type ReadyProbe, waitUntilReady } from "../../src/lib/wait.ts";

/** A container whose state the test scripts: lines appear, ports open, execs answer, it may exit. */
function fakeProbe(o: { lines?: string[]; open?: Set<number>; execCodes?: number[]; exit?: number; health?: string[] } = {}) {
  const calls: string[][] = [];
  const probe: ReadyProbe & { lines: string[]; open: Set<number>; exit: number | undefined } = {
    id: "c1",
    lines: o.lines ?? [],
    open: o.open ?? new Set(),
    exit: o.exit,
    connects: async (p) => probe.open.has(p),
    logLines: async () => [...probe.lines],
    exec: async (argv) => {
      calls.push(argv);
      return o.execCodes?.shift() ?? 0;
    },
    healthcheck: () => o.health,
    exitCode: async () => probe.exit,
  };
  return { probe, calls };
}

describe("waits", () => {
  test("port, log, exec each pass when their condition holds", async () => {
    const { probe, calls } = fakeProbe({ lines: ["starting", "Ready to accept"], open: new Set([80]), execCodes: [1, 0] });
    expect(await Wait.port(80).ready(probe)).toBe(true);
    expect(await Wait.port(81).ready(probe)).toBe(false);
    expect(await Wait.log(/ready/i).ready(probe)).toBe(true);
    expect(await Wait.log("nope").ready(probe)).toBe(false);
    expect(await Wait.log(/a/, 3).ready(probe)).toBe(false); // two lines match
    expect(await Wait.log(/a/g, 2).ready(probe)).toBe(true); // a global regex's lastIndex does not skip lines
    expect(await Wait.exec(["pg_isready"]).ready(probe)).toBe(false);
    expect(await Wait.exec(["pg_isready"]).ready(probe)).toBe(true);
    expect(calls).toEqual([["pg_isready"], ["pg_isready"]]);
  });

  test("healthcheck runs the image's test; an image without one is a clear error", async () => {
    const { probe, calls } = fakeProbe({ health: ["/bin/sh", "-c", "true"] });
    expect(await Wait.healthcheck().ready(probe)).toBe(true);
    expect(calls).toEqual([["/bin/sh", "-c", "true"]]);
    await expect(Wait.healthcheck().ready(fakeProbe().probe)).rejects.toThrow(/has no HEALTHCHECK/);
    expect(healthcheckCommand(["CMD-SHELL", "curl -f localhost"])).toEqual(["/bin/sh", "-c", "curl -f localhost"]);
    expect(healthcheckCommand(["CMD", "pg_isready", "-q"])).toEqual(["pg_isready", "-q"]);
    expect(healthcheckCommand(["NONE"])).toBeUndefined();
    expect(healthcheckCommand(undefined)).toBeUndefined();
  });

  test("all keeps what passed; any needs one; an array means all", async () => {
    const { probe } = fakeProbe();
    const both = Wait.all(Wait.port(80), Wait.log("up"));
    probe.open.add(80);
    expect(await both.ready(probe)).toBe(false);
    probe.open.delete(80); // passed once: not asked again
    probe.lines.push("up");
    expect(await both.ready(probe)).toBe(true);
    expect(both.description).toBe('port 80 and log "up"');
    expect(await Wait.any(Wait.port(1), Wait.log("up")).ready(probe)).toBe(true);
    expect(() => Wait.any()).toThrow(InvalidArgument);
    const later = fakeProbe();
    setTimeout(() => later.probe.lines.push("a", "b"), 30);
    await waitUntilReady([Wait.log("a"), Wait.log("b")], later.probe, { intervalMs: 5, timeoutMs: 2_000 });
  });

  test("a wait that runs out is a Timeout carrying the last log lines", async () => {
    const lines = Array.from({ length: 30 }, (_, i) => `line ${i}`);
    const { probe } = fakeProbe({ lines });
    const err = await waitUntilReady(Wait.port(5432), probe, { timeoutMs: 50, intervalMs: 10 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Timeout);
    expect((err as Timeout).message).toBe("container c1 was not ready after 50 ms (waiting for port 5432)");
    expect((err as Timeout).logs).toEqual(lines.slice(-20));
  });

  test("a container that exits while waited for is a ContainerExitError with its code and lines", async () => {
    const { probe } = fakeProbe({ lines: ["fatal: no config"] });
    setTimeout(() => (probe.exit = 2), 20);
    const err = await waitUntilReady(Wait.port(80), probe, { timeoutMs: 5_000, intervalMs: 5 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ContainerExitError);
    expect(err).toMatchObject({ exitCode: 2, logs: ["fatal: no config"], message: "container c1 exited with code 2 before it was ready" });
  });

  test("bad strategies are refused at once", () => {
    expect(() => Wait.port(0)).toThrow(InvalidArgument);
    expect(() => Wait.port(70000)).toThrow(/not 1-65535/);
    expect(() => Wait.exec([])).toThrow(/needs a command/);
    expect(() => Wait.log("x", 0)).toThrow(InvalidArgument);
  });
});

describe("ports", () => {
  test("requests parse to plans; 0 is chosen, protocols kept, bad ones refused", () => {
    expect(parsePorts({ 80: 0, "53/udp": 5353 })).toEqual([
      { containerPort: 80, protocol: "tcp", hostPort: 0, chosen: true },
      { containerPort: 53, protocol: "udp", hostPort: 5353, chosen: false },
    ]);
    expect(parsePorts(undefined)).toEqual([]);
    expect(() => parsePorts({ http: 0 })).toThrow(/is not a container port/);
    expect(() => parsePorts({ 80: 70000 })).toThrow(InvalidArgument);
    expect(() => parsePorts({ 0: 80 })).toThrow(/container port 0/);
    expect(publishSpecs([{ containerPort: 80, protocol: "tcp", hostPort: 8080, chosen: false }])).toEqual(["8080:80/tcp"]);
  });

  test("free ports are free, distinct while held, and given back", async () => {
    const plans = parsePorts(Object.fromEntries(Array.from({ length: 20 }, (_, i) => [1000 + i, 0])));
    const chosen = await choosePorts(plans);
    const ports = chosen.map((p) => p.hostPort);
    expect(new Set(ports).size).toBe(20);
    for (const p of ports) expect(p).toBeGreaterThan(0);
    // a chosen port can really be bound
    const server = Bun.listen({ hostname: "0.0.0.0", port: ports[0]!, socket: { data() {} } });
    server.stop(true);
    releaseChosen(chosen);
    const udp = await freePort("udp");
    expect(udp).toBeGreaterThan(0);
  });

  test("a clash on a chosen port is retried with fresh ones; a fixed port's clash and other errors are final", async () => {
    const seen: number[][] = [];
    const { result, plans } = await withPortRetry(parsePorts({ 80: 0, 443: 8443 }), async (p) => {
      seen.push(p.map((x) => x.hostPort));
      if (seen.length < 3) throw new FailedPreconditionError(`host port ${p[0]!.hostPort}/tcp is already published by container other`);
      return "made";
    });
    expect(result).toBe("made");
    expect(seen).toHaveLength(3);
    expect(new Set(seen.map((s) => s[0])).size).toBe(3); // a fresh choice each time
    expect(seen.every((s) => s[1] === 8443)).toBe(true); // the fixed one kept
    expect(plans.map((p) => p.hostPort)).toEqual(seen[2]!);
    releaseChosen(plans);

    let calls = 0;
    const fixed = await withPortRetry(parsePorts({ 80: 8080 }), async () => {
      calls++;
      throw new FailedPreconditionError("host port 8080/tcp is already in use on this host");
    }).catch((e: unknown) => e);
    expect(fixed).toBeInstanceOf(FailedPreconditionError);
    expect(calls).toBe(1);
    let tries = 0;
    await expect(withPortRetry(parsePorts({ 80: 0 }), async (p) => {
      tries++;
      throw new FailedPreconditionError(`host port ${p[0]!.hostPort}/tcp is already in use on this host`);
    }, 4)).rejects.toThrow(/already in use/);
    expect(tries).toBe(4);
  });

  test("only the network code's clash messages count as a clash (daemon or embedded: the same class)", () => {
    expect(isPortClash(new FailedPreconditionError("host port 8080/tcp is already in use on this host"))).toBe(true);
    expect(isPortClash(fromCode(Code.FailedPrecondition, "host port 8080/tcp is already published by container web"))).toBe(true);
    expect(isPortClash(new FailedPreconditionError("network \"x\" is in use"))).toBe(false);
    expect(isPortClash(new InvalidArgumentError("host port 8080/tcp is published twice"))).toBe(false);
  });
});

describe("errors", () => {
  test("the exported names are the internal classes, so instanceof holds for daemon and embedded errors", () => {
    expect(fromCode(Code.NotFound, "container x not found")).toBeInstanceOf(NotFound);
    expect(new NotFoundError("x")).toBeInstanceOf(NotFound);
    expect(new AlreadyExistsError("x")).toBeInstanceOf(AlreadyExists);
    expect(fromCode(Code.AlreadyExists, "x")).toBeInstanceOf(AlreadyExists);
  });

  test("ImagePullError: one line, the image named once, the cause's code kept", () => {
    const e = new ImagePullError("redis:7", new NotFoundError("image redis:7 not found, and --pull never forbids pulling it"));
    expect(e.message).toBe("image redis:7 not found, and --pull never forbids pulling it");
    expect(e.code).toBe(Code.NotFound);
    expect(e.notFound).toBe(true);
    const net = new ImagePullError("redis:7", new Error("connect ECONNREFUSED\n  at stack"));
    expect(net.message).toBe("image redis:7: connect ECONNREFUSED (…)");
    expect(net.message).not.toContain("\n");
    expect(new Timeout("t", ["a"]).code).toBe(Code.DeadlineExceeded);
  });
});

describe("options and run flags", () => {
  test("options over the environment over the CLI's defaults", () => {
    expect(resolveOptions({}, {})).toEqual({ mode: "auto", address: "/run/bunker/bunker.sock", root: "/var/lib/bunker", state: "/run/bunker", namespace: "default", shimDir: undefined, insecureRegistries: [] });
    const env = { BUNKER_ROOT: "/r", BUNKER_STATE: "/s", BUNKER_ADDRESS: "/a.sock", BUNKER_NAMESPACE: "ci", BUNKER_INSECURE_REGISTRIES: "a:5000, b" };
    expect(resolveOptions({}, env)).toMatchObject({ root: "/r", state: "/s", address: "/a.sock", namespace: "ci", insecureRegistries: ["a:5000", "b"] });
    expect(resolveOptions({ root: "/mine", namespace: "t1" }, env)).toMatchObject({ root: "/mine", namespace: "t1" });
    expect(() => resolveOptions({ namespace: "runc" }, {})).toThrow(InvalidArgument);
    expect(() => resolveOptions({ mode: "remote" as "auto" }, {})).toThrow(/mode "remote"/);
  });

  test("network: ports imply a bridge; ports without one are refused; the env is the default", () => {
    expect(networkMode({ ports: { 80: 0 } }, "none")).toBe("bridge");
    expect(networkMode({}, "none")).toBe("none");
    expect(networkMode({}, undefined)).toBe("bridge");
    expect(networkMode({ network: "lab" }, "none")).toBe("lab");
    expect(() => networkMode({ network: "none", ports: { 80: 0 } }, undefined)).toThrow(/ports need a bridge network/);
  });

  test("volumes and mounts become run flags; nothing asked, nothing to resolve", () => {
    expect(runSpecFlags({})).toBeUndefined();
    expect(parseVolume("/data:/var/lib/db:ro")).toEqual({ type: "bind", source: "/data", target: "/var/lib/db", readonly: true, propagation: "rprivate", createSource: true });
    expect(() => parseVolume("/data")).toThrow(/HOST:CONTAINER/);
    expect(() => parseVolume("/a:rel")).toThrow(/must be absolute/);
    expect(runSpecFlags({ mounts: [{ source: "/src", target: "/app" }, { type: "tmpfs", target: "/tmp", options: ["size=1m"] }], privileged: true })).toEqual({
      mounts: [
        { type: "bind", source: "/src", target: "/app", readonly: false, propagation: "rprivate", createSource: false },
        { type: "tmpfs", target: "/tmp", options: ["size=1m"] },
      ],
      privileged: true,
    });
    expect(() => runSpecFlags({ mounts: [{ source: "/src", target: "app" }] })).toThrow(/absolute/);
  });

  test("env in either form; exec users are numeric", () => {
    expect(envList({ A: "1", B: "x=y" })).toEqual(["A=1", "B=x=y"]);
    expect(envList(["A=1"])).toEqual(["A=1"]);
    expect(() => envList({ "A=B": "1" })).toThrow(InvalidArgument);
    expect(numericUser("1000")).toEqual({ uid: 1000, gid: 1000 });
    expect(numericUser("1000:50")).toEqual({ uid: 1000, gid: 50 });
    expect(() => numericUser("nobody")).toThrow(/must be numeric/);
  });

  test("labels mark the library's containers with this process's session", () => {
    const l = libLabels({ app: "db" });
    expect(l).toEqual({ app: "db", [LIB_LABELS.lib]: "1", [LIB_LABELS.session]: SESSION_ID, [LIB_LABELS.pid]: String(process.pid), [LIB_LABELS.pidStart]: expect.stringMatching(/^\d+$/) });
    // the library's labels win over a user's of the same name: the reaper selects by them
    expect(libLabels({ [LIB_LABELS.session]: "mine" })[LIB_LABELS.session]).toBe(SESSION_ID);
    expect(SESSION_ID).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("json-file logs", () => {
  const entry = (log: string, stream = "stdout") => `${JSON.stringify({ log, stream, time: "2026-01-01T00:00:00Z" })}\n`;

  test("lines split across entries and reads are joined per stream; damaged lines skipped", () => {
    const d = new JsonLogLines();
    const text = entry("hel") + entry("oops\n", "stderr") + entry("lo\n") + "not json\n" + entry("tail");
    const bytes = new TextEncoder().encode(text);
    const got = [...d.push(bytes.subarray(0, 17)), ...d.push(bytes.subarray(17))];
    expect(got).toEqual([{ stream: "stderr", text: "oops" }, { stream: "stdout", text: "hello" }]);
    expect(d.flush()).toEqual([{ stream: "stdout", text: "tail" }]);
  });

  test("the cursor reads from the start, then what is added, across a rotation", () => {
    const dir = mkdtempSync(join(tmpdir(), "lib-logs-"));
    try {
      const path = join(dir, "c-json.log");
      const cur = new LogCursor(path);
      expect(cur.read()).toEqual([]); // not there yet
      writeFileSync(path, entry("one\n"));
      expect(cur.read().map((l) => l.text)).toEqual(["one"]);
      appendFileSync(path, entry("two\n"));
      renameSync(path, `${path}.1`); // the shim rotates
      appendFileSync(`${path}.1`, entry("three\n"));
      writeFileSync(path, entry("four\n"));
      expect(cur.read().map((l) => l.text)).toEqual(["two", "three", "four"]);
      cur.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
