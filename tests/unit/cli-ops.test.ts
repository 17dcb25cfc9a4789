// The pure parts of the container operations (pause/unpause, top, stats, cp, events, the systemd
// unit): parsing, docker's stats figures from a Metrics message a real shim returned, top's row
// filter, cp's landing rules and its containment of symlinks, time parsing for events.
import { create, toBinary } from "@bufbuild/protobuf";
import { describe, expect, test } from "bun:test";
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { copyTarget, copyTree, hostWriter, rootWriter } from "../../src/archive/container-copy.ts";
import { parseArgs, usageOf } from "../../src/cli/args.ts";
import { isMountPoint, parseCopyEndpoint } from "../../src/cli/cp.ts";
import { EVENT_TOPICS, parseEventFilters } from "../../src/cli/events.ts";
import { parseEventTime, parseGoDuration } from "../../src/cli/ops-args.ts";
import { bytesSize, hostMemory, humanSize, sampleOf, statsRow, STATS_HEADER, table } from "../../src/cli/stats.ts";
import { systemdUnit, unitPath } from "../../src/cli/systemd-unit.ts";
import { filterPsOutput } from "../../src/cli/top.ts";
import { MetricsSchema as V2MetricsSchema } from "../../src/gen/cgroups/v2/metrics_pb.ts";
import { InvalidArgumentError, NotFoundError } from "../../src/errdefs.ts";

/**
 * What bunker's shim returned for a busybox shell loop on this cgroup v1 host (readStats of the
 * container's cgroup, base64 of the Any's value): cpu total 268241886 ns, memory usage 684032 with
 * total_inactive_file 4096, no limit (9223372036854771712), 2 pids.
 */
const CAPTURED_V1 = {
  typeUrl: "io.containerd.cgroups.v1.Metrics",
  value: Buffer.from(
    "EgIIAhodChkI3pf0fxCAi9ZtGICHpw4iCNbS1TKIxZ5NEgAingEIgCAQgOAGOKcgQIsgSMBcWICgBmCAQGiAIIABgOD///////9/iAGA4P///////3+QAYAgmAGA4AbAAacgyAGLINABwFzgAYCgBugBgEDwAYAgigISCIDg////////fxCA4CkYgKB6kgISCIDg////////fxCA4CkYgKB6mgISCIDg////////fxCAwBIYgMAfogIKCIDg////////fyoASgA=",
    "base64",
  ),
};

describe("stats", () => {
  test("a captured cgroups v1 Metrics: usage less inactive file, no limit, pids, CPU time", () => {
    const s = sampleOf({ $typeName: "google.protobuf.Any", ...CAPTURED_V1 });
    expect(s).toEqual({ cpuNs: 268241886n, memoryUsage: 684032n - 4096n, memoryLimit: 0n, blockRead: 0n, blockWrite: 0n, pids: 2n });
  });

  test("a cgroups v2 Metrics: usage less inactive_file, its limit, io summed over devices", () => {
    const m = create(V2MetricsSchema, {
      pids: { current: 3n, limit: 100n },
      cpu: { usageUsec: 1_500_000n },
      memory: { usage: 10n << 20n, inactiveFile: 2n << 20n, usageLimit: 64n << 20n },
      io: { usage: [{ major: 8n, minor: 0n, rbytes: 1000n, wbytes: 2000n }, { major: 8n, minor: 16n, rbytes: 500n, wbytes: 0n }] },
    });
    const s = sampleOf({ $typeName: "google.protobuf.Any", typeUrl: "io.containerd.cgroups.v2.Metrics", value: toBinary(V2MetricsSchema, m) });
    expect(s).toEqual({ cpuNs: 1_500_000_000n, memoryUsage: 8n << 20n, memoryLimit: 64n << 20n, blockRead: 1500n, blockWrite: 2000n, pids: 3n });
    // "max" (MaxUint64) is no limit
    const unlimited = create(V2MetricsSchema, { memory: { usage: 1n, usageLimit: 0xffff_ffff_ffff_ffffn } });
    expect(sampleOf({ $typeName: "google.protobuf.Any", typeUrl: "io.containerd.cgroups.v2.Metrics", value: toBinary(V2MetricsSchema, unlimited) }).memoryLimit).toBe(0n);
  });

  test("an unknown type is an error, not zeros", () => {
    expect(() => sampleOf({ $typeName: "google.protobuf.Any", typeUrl: "x.Metrics", value: new Uint8Array() })).toThrow("unknown type");
  });

  test("docker's units: binary for memory, decimal for I/O", () => {
    expect(bytesSize(0)).toBe("0B");
    expect(bytesSize(679936)).toBe("664KiB");
    expect(bytesSize(1.5 * 1024 * 1024)).toBe("1.5MiB");
    expect(bytesSize(1023)).toBe("1023B");
    expect(humanSize(0)).toBe("0B");
    expect(humanSize(12_345)).toBe("12.3kB");
    expect(humanSize(999)).toBe("999B");
  });

  test("the row: CPU % from two samples over the wall time, memory against the host without a limit", () => {
    const base = sampleOf({ $typeName: "google.protobuf.Any", ...CAPTURED_V1 });
    const later = { ...base, cpuNs: base.cpuNs + 250_000_000n };
    const host = 8n << 30n;
    expect(statsRow("c1", later, base, 1000, host)).toEqual(["c1", "25.00%", "664KiB / 8GiB", "0.01%", "--", "0B / 0B", "2"]);
    // one sample: no CPU figure yet; no sample: the container could not answer
    expect(statsRow("c1", base, undefined, 0, host)[1]).toBe("--");
    expect(statsRow("c2", undefined, undefined, 0, host)).toEqual(["c2", "--", "-- / --", "--", "--", "--", "--"]);
    expect(table([STATS_HEADER, statsRow("c1", later, base, 1000, host)])[0]).toBe("CONTAINER ID   CPU %    MEM USAGE / LIMIT   MEM %   NET I/O   BLOCK I/O   PIDS");
  });

  test("the host's memory from /proc/meminfo", () => {
    expect(hostMemory()).toBeGreaterThan(0n);
    expect(hostMemory("/nonexistent")).toBe(0n);
  });
});

describe("top", () => {
  const PS = `UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 /sbin/init
root         973     952  0 15:43 ?        00:00:00 /bin/sh -c while true; do sleep 1; done
root        1206     973  0 15:43 ?        00:00:00 sleep 1
`;
  test("the header and the container's rows, by the PID column", () => {
    const lines = PS.split("\n");
    expect(filterPsOutput(PS, new Set([973, 1206]))).toEqual([lines[0]!, lines[2]!, lines[3]!]);
    expect(filterPsOutput("  PID COMMAND\n  973 sh\n   12 bash\n", new Set([973]))).toEqual(["  PID COMMAND", "  973 sh"]);
  });
  test("ps options without a PID column are refused", () => {
    expect(() => filterPsOutput("COMMAND\nsh\n", new Set([1]))).toThrow(InvalidArgumentError);
  });
});

describe("parsing", () => {
  test("the commands and their flags", () => {
    expect(parseArgs(["pause", "a", "b"]).command).toEqual({ name: "pause", ids: ["a", "b"] });
    expect(parseArgs(["unpause", "a"]).command).toEqual({ name: "unpause", ids: ["a"] });
    expect(parseArgs(["top", "c1", "-o", "pid,comm"]).command).toEqual({ name: "top", id: "c1", psArgs: ["-o", "pid,comm"] });
    expect(parseArgs(["stats", "--no-stream"]).command).toEqual({ name: "stats", noStream: true, ids: [] });
    expect(parseArgs(["cp", "-a", "c1:/etc", "out"]).command).toEqual({ name: "cp", source: "c1:/etc", destination: "out", archive: true, followLink: false });
    expect(parseArgs(["events"]).command).toEqual({ name: "events", filters: [] });
    expect(() => parseArgs(["pause"])).toThrow("a container id is required");
    expect(() => parseArgs(["cp", "a"])).toThrow("a destination");
    expect(() => parseArgs(["events", "--since", "yesterday"])).toThrow("--since");
    expect(() => parseArgs(["events", "-f", "event"])).toThrow("KEY=VALUE");
  });

  test("every command has its own --help", () => {
    for (const name of ["pause", "unpause", "top", "stats", "cp", "events"]) {
      expect(parseArgs([name, "--help"]).command).toEqual({ name: "help", topic: name });
      expect(usageOf(name)).toStartWith(`usage: bunker [global flags] ${name} `);
    }
  });

  test("events' times: Unix seconds, RFC 3339, durations back from now", () => {
    const now = new Date("2026-11-27T12:00:00Z");
    expect(parseEventTime("1700000000", "--since", now).getTime()).toBe(1_700_000_000_000);
    expect(parseEventTime("1700000000.5", "--since", now).getTime()).toBe(1_700_000_000_500);
    expect(parseEventTime("2026-11-27T11:00:00Z", "--since", now).toISOString()).toBe("2026-11-27T11:00:00.000Z");
    expect(parseEventTime("2026-11-27T11:00:00.123456789+01:00", "--since", now).toISOString()).toBe("2026-11-27T10:00:00.123Z");
    expect(parseEventTime("10m", "--since", now).toISOString()).toBe("2026-11-27T11:50:00.000Z");
    expect(parseEventTime("1h30m", "--since", now).toISOString()).toBe("2026-11-27T10:30:00.000Z");
    expect(parseGoDuration("1.5s")).toBe(1500);
    expect(parseGoDuration("10")).toBeUndefined();
    expect(() => parseEventTime("10 minutes", "--since", now)).toThrow(InvalidArgumentError);
    expect(() => parseEventTime("2026-13-45T99:00:00Z", "--until", now)).toThrow("--until");
  });

  test("events' filters: docker names to topics, unknown keys and events refused, other types match nothing", () => {
    expect(parseEventFilters(["event=die", "event=start", "container=c1"])).toEqual({ topics: [EVENT_TOPICS.die!, EVENT_TOPICS.start!], containers: new Set(["c1"]) });
    expect(parseEventFilters(["type=container"]).topics).toEqual([]);
    expect(parseEventFilters(["type=image"]).topics).toBeUndefined();
    expect(parseEventFilters(["event=/tasks/oom"]).topics).toEqual(["/tasks/oom"]);
    expect(() => parseEventFilters(["event=explode"])).toThrow("unknown event");
    expect(() => parseEventFilters(["label=a"])).toThrow("filters are");
  });
});

describe("cp", () => {
  test("which side is the container's (docker's splitCpArg)", () => {
    expect(parseCopyEndpoint("c1:/etc/passwd")).toEqual({ container: "c1", path: "/etc/passwd" });
    expect(parseCopyEndpoint("c1:etc")).toEqual({ container: "c1", path: "etc" });
    expect(parseCopyEndpoint("/abs/a:b")).toEqual({ host: "/abs/a:b" });
    expect(parseCopyEndpoint("./a:b")).toEqual({ host: "./a:b" });
    expect(parseCopyEndpoint("file")).toEqual({ host: "file" });
    expect(() => parseCopyEndpoint(":x")).toThrow("container name");
  });

  test("where the copy lands (docker cp's table)", () => {
    const none = { exists: false, isDirectory: false };
    const file = { exists: true, isDirectory: false };
    const dir = { exists: true, isDirectory: true };
    expect(copyTarget("/a/f", false, "/d/new", none)).toBe("/d/new");
    expect(() => copyTarget("/a/f", false, "/d/new/", none)).toThrow(NotFoundError);
    expect(copyTarget("/a/f", false, "/d/old", file)).toBe("/d/old");
    expect(copyTarget("/a/f", false, "/d", dir)).toBe("/d/f");
    expect(() => copyTarget("/a/f/", false, "/d", dir)).toThrow("not a directory");
    expect(copyTarget("/a/dir", true, "/d/new", none)).toBe("/d/new");
    expect(() => copyTarget("/a/dir", true, "/d/old", file)).toThrow("cannot copy a directory to a file");
    expect(copyTarget("/a/dir", true, "/d", dir)).toBe("/d/dir");
    expect(copyTarget("/a/dir/", true, "/d", dir)).toBe("/d/dir");
    expect(copyTarget("/a/dir/.", true, "/d", dir)).toBe("/d");
  });

  test("a mount point is found in mountinfo, its escapes decoded", () => {
    const info = "36 35 98:0 / /run/x\\040y rw,noatime master:1 - ext3 /dev/root rw\n";
    expect(isMountPoint("/run/x y", info)).toBe(true);
    expect(isMountPoint("/run/x", info)).toBe(false);
  });

  test("a tree keeps modes, links and times; symlinks inside the root never lead out of it", () => {
    const dir = mkdtempSync("/tmp/bunker-cp-unit-");
    try {
      const root = join(dir, "root");
      const outside = join(dir, "outside");
      mkdirSync(join(root, "etc"), { recursive: true });
      mkdirSync(outside);
      // the links' targets inside the root (cp requires a destination's parent to exist)
      mkdirSync(join(root, outside), { recursive: true });
      // hostile: an absolute link and a climbing one, both meaning the host's `outside` if followed on the host
      symlinkSync(outside, join(root, "abs"));
      symlinkSync(`../../../../..${outside}`, join(root, "climb"));
      const src = join(dir, "src");
      mkdirSync(join(src, "sub"), { recursive: true });
      writeFileSync(join(src, "sub", "f"), "data", { mode: 0o640 });
      symlinkSync("sub/f", join(src, "l"));
      copyTree(src, rootWriter(root, "/abs/tree"), { owner: { uid: 0, gid: 0 } });
      copyTree(join(src, "sub", "f"), rootWriter(root, "/climb/f2"), {});
      // both landed inside the root (the links resolved as the container would), nothing outside
      expect(readFileSync(join(root, outside, "tree/sub/f"), "utf8")).toBe("data");
      expect(statSync(join(root, outside, "tree/sub/f")).mode & 0o777).toBe(0o640);
      expect(readlinkSync(join(root, outside, "tree/l"))).toBe("sub/f");
      expect(readFileSync(join(root, outside, "f2"), "utf8")).toBe("data");
      expect(Math.abs(statSync(join(root, outside, "f2")).mtimeMs - statSync(join(src, "sub", "f")).mtimeMs)).toBeLessThan(1);
      expect(lstatSync(join(root, "abs")).isSymbolicLink()).toBe(true);
      expect(Bun.spawnSync(["ls", "-A", outside]).stdout.toString()).toBe("");
      // a link where a file is written is replaced, not written through
      symlinkSync(outside + "/victim", join(root, "etc", "passwd"));
      copyTree(join(src, "sub", "f"), rootWriter(root, "/etc/passwd"), {});
      expect(lstatSync(join(root, "etc", "passwd")).isFile()).toBe(true);
      expect(Bun.spawnSync(["ls", "-A", outside]).stdout.toString()).toBe("");
      // out of the root: links are copied as links, never read through
      const out = join(dir, "out");
      copyTree(join(root, "abs"), hostWriter(out), {});
      expect(readlinkSync(out)).toBe(outside);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("systemd unit", () => {
  test("containerd's service settings, with the daemon's dirs, under <prefix>/lib/systemd/system", () => {
    const unit = systemdUnit({ binary: "/usr/local/bin/bunker", root: "/var/lib/bunker", state: "/run/bunker", address: "/run/bunker/bunker.sock" });
    expect(unit).toContain("\nExecStart=/usr/local/bin/bunker --root /var/lib/bunker --state /run/bunker --address /run/bunker/bunker.sock daemon\n");
    for (const line of ["Type=simple", "Delegate=yes", "KillMode=process", "Restart=always", "WantedBy=multi-user.target", "OOMScoreAdjust=-999", "TasksMax=infinity", "Environment=BUN_GC_TIMER_DISABLE=1", "Environment=BUN_JSC_thresholdForJITAfterWarmUp=20000", "Environment=BUN_JSC_thresholdForJITSoon=5000"]) expect(unit).toContain(`\n${line}\n`);
    expect(unit).toStartWith("[Unit]\n");
    expect(unitPath("/usr/local")).toBe("/usr/local/lib/systemd/system/bunker.service");
    // a path with a space is quoted as systemd reads it
    expect(systemdUnit({ binary: "/opt/my dir/bunker", root: "/r", state: "/s", address: "/a" })).toContain('ExecStart="/opt/my dir/bunker" --root /r');
  });
});
