// docker's json-file log as bunker's shim writes it: framing (byte vectors), whole lines across
// writes and 16 KiB partials, rotation by max-size/max-file, and the writer fed through the shim's
// own pipe copy (PipeIO) from a real process.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatRfc3339Nano, frameEntry, JsonLogWriter, LineFramer, PARTIAL_LINE_BYTES } from "../../src/stdio/json-log.ts";
import { PipeIO } from "../../src/stdio/io.ts";
import { ProcIO } from "../../src/stdio/procio.ts";
import { sys } from "../../src/sys/index.ts";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
// 2024-05-01T10:00:00Z plus a fraction
const T0 = 1714557600n * 1_000_000_000n;

describe("json-file framing", () => {
  test("Go's RFC3339Nano: UTC, the fraction's trailing zeros dropped, none for a whole second", () => {
    expect(formatRfc3339Nano(T0)).toBe("2024-05-01T10:00:00Z");
    expect(formatRfc3339Nano(T0 + 123_456_789n)).toBe("2024-05-01T10:00:00.123456789Z");
    expect(formatRfc3339Nano(T0 + 120_000_000n)).toBe("2024-05-01T10:00:00.12Z");
    expect(formatRfc3339Nano(T0 + 1n)).toBe("2024-05-01T10:00:00.000000001Z");
  });

  test("one entry is exactly docker's line: log, stream, time; escapes as JSON; invalid UTF-8 becomes U+FFFD", () => {
    expect(frameEntry(enc("hello\n"), "stdout", T0 + 5n)).toBe('{"log":"hello\\n","stream":"stdout","time":"2024-05-01T10:00:00.000000005Z"}\n');
    expect(frameEntry(enc('a"b\\c\t\u0001\n'), "stderr", T0)).toBe('{"log":"a\\"b\\\\c\\t\\u0001\\n","stream":"stderr","time":"2024-05-01T10:00:00Z"}\n');
    expect(frameEntry(new Uint8Array([0xff, 0x0a]), "stdout", T0)).toBe('{"log":"\uFFFD\\n","stream":"stdout","time":"2024-05-01T10:00:00Z"}\n');
  });

  test("lines are kept whole across writes, per stream; the rest waits for its newline", () => {
    const f = new LineFramer();
    expect(f.push("stdout", enc("ab"), T0)).toEqual([]);
    expect(f.push("stderr", enc("x\ny"), T0)).toEqual([frameEntry(enc("x\n"), "stderr", T0)]);
    expect(f.push("stdout", enc("c\nd\n"), T0 + 1n)).toEqual([frameEntry(enc("abc\n"), "stdout", T0 + 1n), frameEntry(enc("d\n"), "stdout", T0 + 1n)]);
    // EOF: the unfinished line is written as a partial entry (no newline)
    expect(f.flush("stderr", T0 + 2n)).toEqual([frameEntry(enc("y"), "stderr", T0 + 2n)]);
    expect(f.flush("stdout", T0 + 2n)).toEqual([]);
  });

  test("a line longer than 16 KiB goes out in 16 KiB partial entries, as moby's copier splits it", () => {
    const f = new LineFramer();
    const long = "x".repeat(PARTIAL_LINE_BYTES * 2 + 10);
    const out = f.push("stdout", enc(long.slice(0, 20_000)), T0);
    expect(out).toEqual([frameEntry(enc("x".repeat(PARTIAL_LINE_BYTES)), "stdout", T0)]);
    const rest = f.push("stdout", enc(long.slice(20_000) + "\n"), T0);
    expect(rest.map((e) => (JSON.parse(e) as { log: string }).log.length)).toEqual([PARTIAL_LINE_BYTES, 11]);
  });

  test("a reused read buffer does not change what waits for its newline", () => {
    const f = new LineFramer();
    const buf = enc("abc");
    f.push("stdout", buf, T0);
    buf.set(enc("zzz"));
    expect(f.push("stdout", enc("\n"), T0)).toEqual([frameEntry(enc("abc\n"), "stdout", T0)]);
  });
});

describe("JsonLogWriter", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "bunker-jsonlog-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const clock = (): bigint => T0;
  const entries = (path: string): { log: string; stream: string }[] =>
    readFileSync(path, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as { log: string; stream: string });

  test("both streams into one file, in the order written; appends to what is there; close flushes partial lines", () => {
    const path = join(dir, "c-json.log");
    writeFileSync(path, frameEntry(enc("old\n"), "stdout", T0));
    const w = new JsonLogWriter(path, 0, 1, clock);
    w.write("stdout", enc("out\npart"));
    w.write("stderr", enc("err\n"));
    w.close();
    expect(entries(path)).toEqual([
      { log: "old\n", stream: "stdout", time: "2024-05-01T10:00:00Z" },
      { log: "out\n", stream: "stdout", time: "2024-05-01T10:00:00Z" },
      { log: "err\n", stream: "stderr", time: "2024-05-01T10:00:00Z" },
      { log: "part", stream: "stdout", time: "2024-05-01T10:00:00Z" },
    ] as never);
  });

  test("rotates before the entry that finds the file at max-size, keeping max-file files (<file>, .1, .2)", () => {
    const path = join(dir, "c-json.log");
    const line = frameEntry(enc("0000\n"), "stdout", T0).length; // every entry is the same size
    const w = new JsonLogWriter(path, line * 3, 3, clock);
    // 10 lines in one read: rotation happens inside the batch, every 3 entries
    w.write("stdout", enc(Array.from({ length: 10 }, (_, i) => `${String(i).padStart(4, "0")}\n`).join("")));
    w.close();
    expect(readdirSync(dir).sort()).toEqual(["c-json.log", "c-json.log.1", "c-json.log.2"]);
    expect(entries(`${path}.2`).map((e) => e.log)).toEqual(["0003\n", "0004\n", "0005\n"]);
    expect(entries(`${path}.1`).map((e) => e.log)).toEqual(["0006\n", "0007\n", "0008\n"]);
    expect(entries(path).map((e) => e.log)).toEqual(["0009\n"]);
  });

  test("max-file 1 truncates in place; max-size 0 never rotates", () => {
    const one = join(dir, "one.log");
    const w1 = new JsonLogWriter(one, 10, 1, clock);
    w1.write("stdout", enc("a\nb\nc\n"));
    w1.close();
    expect(entries(one).map((e) => e.log)).toEqual(["c\n"]);
    const never = join(dir, "never.log");
    const w2 = new JsonLogWriter(never, 0, 3, clock);
    w2.write("stdout", enc("a\n".repeat(1000)));
    w2.close();
    expect(entries(never)).toHaveLength(1000);
    expect(readdirSync(dir).sort()).toEqual(["never.log", "one.log"]);
  });

  test("once its directory is removed (rm), rotation does not recreate it and writes are dropped", () => {
    const sub = join(dir, "rec");
    mkdirSync(sub);
    const w = new JsonLogWriter(join(sub, "x.log"), 10, 2, clock);
    rmSync(sub, { recursive: true });
    w.write("stdout", enc("a\nb\nc\n"));
    w.close();
    expect(readdirSync(dir)).toEqual([]);
  });

  test("the directory must exist: the writer makes none", () => {
    expect(() => new JsonLogWriter(join(dir, "no", "x.log"), 0, 1)).toThrow();
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe("the shim's stdio writing json-file from a real process", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "bunker-jsonlog-io-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test("PipeIO with a json-file sink: stdout and stderr through real pipes, kept apart, lines whole", async () => {
    const path = join(dir, "c-json.log");
    const writer = new JsonLogWriter(path, 0, 1);
    const io = new PipeIO({ stdin: "", stdout: "", stderr: "", terminal: false }, sys(), dir, writer);
    const r = io.runcIO();
    const proc = Bun.spawn(["sh", "-c", "echo out; echo err >&2; printf 'pa'; sleep 0.1; printf 'rt\\n'; printf last"], { stdin: "ignore", stdout: r.stdout, stderr: r.stderr });
    io.attach();
    expect(await proc.exited).toBe(0);
    await io.drain();
    io.close();
    writer.close();
    const got = readFileSync(path, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as { log: string; stream: string; time: string });
    expect(got.filter((e) => e.stream === "stdout").map((e) => e.log)).toEqual(["out\n", "part\n", "last"]);
    expect(got.filter((e) => e.stream === "stderr").map((e) => e.log)).toEqual(["err\n"]);
    for (const e of got) expect(Math.abs(Date.parse(e.time) - Date.now())).toBeLessThan(60_000);
    // the pipes were unnamed FIFOs in dir: nothing but the log is left
    expect(readdirSync(dir)).toEqual(["c-json.log"]);
  });

  test("ProcIO from a json-file:// URI: the plan the shim's Create takes", async () => {
    const path = join(dir, "p-json.log");
    const uri = `json-file://${path}?max-size=100&max-file=2`;
    const io = await ProcIO.open({ stdin: "", stdout: uri, stderr: uri, terminal: false }, sys(), dir, { containerId: "p", namespace: "default" });
    const { io: r } = io.runcOptions();
    const proc = Bun.spawn(["sh", "-c", "i=0; while [ $i -lt 20 ]; do echo line-$i; i=$((i+1)); done"], { stdin: "ignore", stdout: r.stdout as number, stderr: r.stderr as number });
    await io.launch(async () => undefined);
    expect(await proc.exited).toBe(0);
    await io.drain();
    io.close();
    expect(readdirSync(dir).sort()).toEqual(["p-json.log", "p-json.log.1"]);
    const all = [`${path}.1`, path].flatMap((f) => readFileSync(f, "utf8").split("\n").filter(Boolean)).map((l) => JSON.parse(l) as { log: string; stream: string });
    // the newest lines survive rotation, contiguous and in order
    const logs = all.map((e) => e.log);
    const first = Number(logs[0]!.slice(5));
    expect(logs).toEqual(Array.from({ length: 20 - first }, (_, i) => `line-${first + i}\n`));
    expect(first).toBeGreaterThan(0);
  });
});
