// `bunker logs`' pieces without a container: docker's time arguments (--since/--until/--tail), the
// json-file decoder and line joiner (byte vectors), reading across rotated files, raw --tail; and
// the log driver plan (which URI the shim gets, the raw fallback for other shims) with the URI
// parsed back by the shim's parser, so the two ends of the json-file:// contract agree.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { appendFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileCursor, JsonLogDecoder, LineJoiner, rotatedLogFiles, tailRaw } from "../../src/cli/log-reader.ts";
import { formatTimestamp, parseGoDuration, parseRfc3339, parseTail, parseTimeArg } from "../../src/cli/log-time.ts";
import { jsonFileUri, logOptionsFromList, parseByteSize, parseLogOptions } from "../../src/contract/log-uri.ts";
import { InvalidArgumentError } from "../../src/errdefs.ts";
import { planContainerLog } from "../../src/runtime/container-log.ts";
import { parseStdioUri, planProcessIO } from "../../src/stdio/stdio-uri.ts";

const S = 1_000_000_000n;
const T0 = 1714557600n * S; // 2024-05-01T10:00:00Z

describe("time arguments", () => {
  test("Go durations: units, sums, fractions", () => {
    expect(parseGoDuration("10m")).toBe(600n * S);
    expect(parseGoDuration("1h30m")).toBe(5400n * S);
    expect(parseGoDuration("1.5h")).toBe(5400n * S);
    expect(parseGoDuration("250ms")).toBe(250_000_000n);
    expect(parseGoDuration("2s500us")).toBe(2n * S + 500_000n);
    expect(parseGoDuration("10")).toBeUndefined();
    expect(parseGoDuration("10x")).toBeUndefined();
  });

  test("RFC3339 with and without a fraction or a zone", () => {
    expect(parseRfc3339("2024-05-01T10:00:00Z")).toBe(T0);
    expect(parseRfc3339("2024-05-01T10:00:00.000000001Z")).toBe(T0 + 1n);
    expect(parseRfc3339("2024-05-01T10:00:00.5Z")).toBe(T0 + S / 2n);
    expect(parseRfc3339("2024-05-01T12:00:00+02:00")).toBe(T0);
    expect(parseRfc3339("2024-05-01T09:30:00-00:30")).toBe(T0);
    // no zone: local time, as docker
    expect(parseRfc3339("2024-05-01T10:00:00")).toBe(BigInt(new Date(2024, 4, 1, 10).getTime()) * 1_000_000n);
    expect(parseRfc3339("2024-05-01")).toBe(BigInt(new Date(2024, 4, 1).getTime()) * 1_000_000n);
    expect(parseRfc3339("May 1st")).toBeUndefined();
  });

  test("--since/--until: Unix seconds (with a fraction), a duration before now, or RFC3339; anything else is one clear error", () => {
    const now = T0 + 3600n * S;
    expect(parseTimeArg("1714557600", now, "--since")).toBe(T0);
    expect(parseTimeArg("1714557600.25", now, "--since")).toBe(T0 + S / 4n);
    expect(parseTimeArg("1h", now, "--since")).toBe(T0);
    expect(parseTimeArg("2024-05-01T10:00:00Z", now, "--until")).toBe(T0);
    expect(() => parseTimeArg("yesterday", now, "--since")).toThrow(InvalidArgumentError);
    expect(() => parseTimeArg("yesterday", now, "--since")).toThrow('--since "yesterday": not a time');
  });

  test("--tail: a count, or all (a negative count is all, as docker)", () => {
    expect(parseTail("3")).toBe(3);
    expect(parseTail("0")).toBe(0);
    expect(parseTail("all")).toBeUndefined();
    expect(parseTail("-1")).toBeUndefined();
    expect(() => parseTail("three")).toThrow(InvalidArgumentError);
  });

  test("--timestamps prints docker's fixed nine-digit fraction", () => {
    expect(formatTimestamp(T0)).toBe("2024-05-01T10:00:00.000000000Z");
    expect(formatTimestamp(T0 + 120_000_000n)).toBe("2024-05-01T10:00:00.120000000Z");
  });
});

const line = (log: string, stream: string, time: string): string => `${JSON.stringify({ log, stream, time })}\n`;

describe("json-file decoding", () => {
  test("entries from byte vectors; half a line waits for its rest; damaged lines are skipped", () => {
    const d = new JsonLogDecoder();
    const bytes = Buffer.from(line("a\n", "stdout", "2024-05-01T10:00:00Z") + "not json\n" + line("b\n", "stderr", "2024-05-01T10:00:00.5Z"));
    const cut = bytes.length - 10;
    expect(d.push(bytes.subarray(0, cut))).toEqual([{ stream: "stdout", log: "a\n", timeNs: T0 }]);
    expect(d.push(bytes.subarray(cut))).toEqual([{ stream: "stderr", log: "b\n", timeNs: T0 + S / 2n }]);
  });

  test("partials are joined per stream into whole lines with the first piece's time", () => {
    const j = new LineJoiner();
    const e = (log: string, stream: "stdout" | "stderr", t: bigint) => ({ log, stream, timeNs: t });
    expect(j.push([e("ab", "stdout", T0), e("x\n", "stderr", T0 + 1n), e("c\n", "stdout", T0 + 2n), e("tail", "stderr", T0 + 3n)])).toEqual([
      { stream: "stderr", text: "x\n", timeNs: T0 + 1n },
      { stream: "stdout", text: "abc\n", timeNs: T0 },
    ]);
    expect(j.flush()).toEqual([{ stream: "stderr", text: "tail", timeNs: T0 + 3n }]);
  });
});

describe("rotated files", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "bunker-logread-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test("oldest first: <file>.2, <file>.1, <file>; a cursor reads on where it stopped and sees a rotation by inode", () => {
    const p = join(dir, "c-json.log");
    expect(rotatedLogFiles(p)).toEqual([]);
    writeFileSync(`${p}.2`, line("1\n", "stdout", "2024-05-01T10:00:01Z"));
    writeFileSync(`${p}.1`, line("2\n", "stdout", "2024-05-01T10:00:02Z"));
    writeFileSync(p, line("3\n", "stdout", "2024-05-01T10:00:03Z"));
    expect(rotatedLogFiles(p)).toEqual([`${p}.2`, `${p}.1`, p]);
    const c = FileCursor.open(p)!;
    expect(c.readNew().toString()).toBe(line("3\n", "stdout", "2024-05-01T10:00:03Z"));
    appendFileSync(p, "more");
    expect(c.readNew().toString()).toBe("more");
    expect(c.readNew().length).toBe(0);
    renameSync(p, `${p}.1`);
    writeFileSync(p, "");
    expect(FileCursor.open(p)!.ino).not.toBe(c.ino);
    c.close();
  });

  test("raw --tail counts lines from the end; a last line without newline counts", () => {
    const b = Buffer.from("a\nb\nc\n");
    expect(tailRaw(b, 1).toString()).toBe("c\n");
    expect(tailRaw(b, 2).toString()).toBe("b\nc\n");
    expect(tailRaw(b, 9).toString()).toBe("a\nb\nc\n");
    expect(tailRaw(b, 0).toString()).toBe("");
    expect(tailRaw(Buffer.from("a\nb"), 1).toString()).toBe("b");
  });
});

describe("log drivers and the json-file:// contract", () => {
  test("docker's size units and options; unknown keys and bad values are refused", () => {
    expect(parseByteSize("10m")).toBe(10 * 1024 * 1024);
    expect(parseByteSize("512k")).toBe(512 * 1024);
    expect(parseByteSize("1GiB")).toBe(1024 ** 3);
    expect(parseByteSize("100")).toBe(100);
    expect(parseByteSize("-1")).toBe(0);
    expect(() => parseByteSize("lots")).toThrow(InvalidArgumentError);
    expect(() => parseByteSize("0")).toThrow(InvalidArgumentError);
    expect(parseLogOptions("json-file", {})).toEqual({ maxSize: 10 * 1024 * 1024, maxFile: 3 });
    expect(parseLogOptions("json-file", { "max-size": "1k", "max-file": "5" })).toEqual({ maxSize: 1024, maxFile: 5 });
    expect(() => parseLogOptions("json-file", { "max-file": "0" })).toThrow(InvalidArgumentError);
    expect(() => parseLogOptions("json-file", { compress: "true" })).toThrow('unknown log-opt "compress"');
    expect(() => parseLogOptions("none", { "max-size": "1k" })).toThrow("not valid for the none log driver");
    expect(logOptionsFromList(["max-size=1k", "max-size=2k"])).toEqual({ "max-size": "2k" });
    expect(() => logOptionsFromList(["max-size"])).toThrow(InvalidArgumentError);
  });

  test("the URI the manager builds is what the shim's parser reads back, odd paths included", () => {
    const path = "/var/lib/bunker dir/containers/default/c%1/c-json.log";
    const uri = jsonFileUri(path, { maxSize: 2048, maxFile: 4 });
    expect(uri.startsWith("json-file:///var/lib/bunker%20dir/")).toBe(true);
    expect(parseStdioUri(uri)).toEqual({ scheme: "json-file", path, maxSize: 2048, maxFile: 4 });
    expect(planProcessIO({ stdin: "", stdout: uri, stderr: uri })).toEqual({ kind: "json-file", path, maxSize: 2048, maxFile: 4, stdin: "" });
    expect(() => parseStdioUri("json-file:///x?max-size=big")).toThrow(InvalidArgumentError);
    expect(() => parseStdioUri("json-file:///x?colour=1")).toThrow(InvalidArgumentError);
  });

  test("the plan: json-file in the record dir for bunker's shim, the raw file for any other, none, explicit --log", () => {
    const c = { recordDir: "/r/containers/ns/c1", id: "c1", shimBinary: "/usr/local/bin/containerd-shim-bunker-v1" };
    expect(planContainerLog({ driver: "", options: {} }, c)).toEqual({
      driver: "json-file",
      path: "/r/containers/ns/c1/c1-json.log",
      stdio: `json-file:///r/containers/ns/c1/c1-json.log?max-size=${10 * 1024 * 1024}&max-file=3`,
    });
    const runc = { ...c, shimBinary: "/usr/bin/containerd-shim-runc-v2" };
    expect(planContainerLog({ driver: "json-file", options: { "max-size": "1k" } }, runc)).toEqual({ driver: "file", path: "/r/containers/ns/c1/c1.log", stdio: "file:///r/containers/ns/c1/c1.log" });
    expect(planContainerLog({ driver: "", options: {}, path: "/tmp/x.log" }, c)).toEqual({ driver: "file", path: "/tmp/x.log", stdio: "file:///tmp/x.log" });
    expect(planContainerLog({ driver: "none", options: {} }, c)).toBeUndefined();
    expect(() => planContainerLog({ driver: "none", options: {}, path: "/tmp/x" }, c)).toThrow(InvalidArgumentError);
    expect(() => planContainerLog({ driver: "syslog", options: {} }, c)).toThrow('log driver "syslog" is not supported');
  });
});
