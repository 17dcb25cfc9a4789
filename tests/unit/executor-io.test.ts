// Output destinations and the FIFO attachment, over real FIFOs in a temp dir (no root needed).
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { closeSync, constants, existsSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { Attachment, fifoPaths, makeFifos } from "../../src/executor/io.ts";
import { toOutput } from "../../src/executor/streams.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const mkfifo = (path: string, mode: number): void => {
  const r = Bun.spawnSync(["mkfifo", "-m", mode.toString(8), path]);
  if (!r.success) throw new Error(`mkfifo ${path}: ${r.stderr.toString()}`);
};

/** A callback output that records chunks and its end. */
function recorder() {
  const chunks: string[] = [];
  let ended = 0;
  const { promise: done, resolve } = Promise.withResolvers<void>();
  const cb = (c: Uint8Array | null): void => {
    if (c === null) {
      ended++;
      resolve();
    } else chunks.push(dec.decode(c));
  };
  return { cb, chunks, done, ends: () => ended, text: () => chunks.join("") };
}

describe("toOutput", () => {
  test("a callback gets the chunks, then null exactly once", async () => {
    const r = recorder();
    const out = toOutput(r.cb);
    await out.write(enc.encode("a"));
    await out.write(enc.encode("b"));
    await out.end();
    await out.end();
    expect(r.chunks).toEqual(["a", "b"]);
    expect(r.ends()).toBe(1);
    expect(out.ended).toBe(true);
  });

  test("a web WritableStream is written and closed", async () => {
    const got: string[] = [];
    let closed = false;
    const ws = new WritableStream<Uint8Array>({ write: (c) => void got.push(dec.decode(c)), close: () => void (closed = true) });
    const out = toOutput(ws);
    await out.write(enc.encode("x"));
    await out.end();
    expect(got).toEqual(["x"]);
    expect(closed).toBe(true);
  });

  test("a Node writable is written and ended", async () => {
    const pt = new PassThrough();
    const text = new Response(pt as unknown as ReadableStream).text();
    const out = toOutput(pt);
    await out.write(enc.encode("hello "));
    await out.write(enc.encode("node"));
    await out.end();
    expect(await text).toBe("hello node");
  });

  test("a failing destination is dropped after one report; null discards", async () => {
    const errors: unknown[] = [];
    let calls = 0;
    const out = toOutput(() => {
      calls++;
      throw new Error("disk full");
    }, (e) => errors.push(e));
    await out.write(enc.encode("1"));
    await out.write(enc.encode("2"));
    await out.end();
    expect(calls).toBe(1);
    expect(errors.map((e) => (e as Error).message)).toEqual(["disk full"]);
    const none = toOutput(null);
    await none.write(enc.encode("gone"));
    await none.end();
    expect(none.ended).toBe(true);
    expect(() => toOutput(42 as never)).toThrow(TypeError);
  });
});

describe("Attachment", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync("/tmp/bunker-executor-io-");
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const writer = (path: string): number => openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);

  test("copies both FIFOs and ends the outputs at EOF, after start()", async () => {
    const p = fifoPaths(dir, "c1", false);
    makeFifos(mkfifo, p);
    expect([p.stdout, p.stderr]).toEqual([join(dir, "c1", "init-stdout"), join(dir, "c1", "init-stderr")]);
    const out = recorder();
    const err = recorder();
    const a = new Attachment(p, toOutput(out.cb), toOutput(err.cb));
    const w1 = writer(p.stdout);
    const w2 = writer(p.stderr);
    a.start();
    writeSync(w1, "out line\n");
    writeSync(w2, "err line\n");
    closeSync(w1);
    closeSync(w2);
    await a.done;
    expect([out.text(), err.text(), out.ends(), err.ends()]).toEqual(["out line\n", "err line\n", 1, 1]);
  });

  test("makeFifos replaces stale FIFOs; with a terminal there is no stderr and it ends with stdout", async () => {
    const p = fifoPaths(dir, "t1", true);
    expect(p.stderr).toBe("");
    makeFifos(mkfifo, p);
    makeFifos(mkfifo, p);
    const out = recorder();
    const err = recorder();
    const a = new Attachment(p, toOutput(out.cb), toOutput(err.cb));
    const w = writer(p.stdout);
    a.start();
    writeSync(w, "tty");
    expect(err.ends()).toBe(0);
    closeSync(w);
    await a.done;
    expect([out.text(), out.ends(), err.ends()]).toEqual(["tty", 1, 1]);
  });

  test("missing FIFOs (a container made elsewhere) end at once", async () => {
    const out = recorder();
    const err = recorder();
    const a = new Attachment(fifoPaths(dir, "none", false), toOutput(out.cb), toOutput(err.cb));
    await a.done;
    expect([out.ends(), err.ends()]).toEqual([1, 1]);
  });

  test("abandon() leaves the outputs open for another attempt; detach() ends them while a writer is open", async () => {
    const p = fifoPaths(dir, "c2", false);
    makeFifos(mkfifo, p);
    const out = recorder();
    const err = recorder();
    const o = toOutput(out.cb);
    const e = toOutput(err.cb);
    new Attachment(p, o, e).abandon();
    await Bun.sleep(0);
    expect([out.ends(), err.ends()]).toEqual([0, 0]);
    const a = new Attachment(p, o, e);
    const w = writer(p.stdout);
    a.start();
    writeSync(w, "before detach");
    await until(() => out.text() === "before detach");
    a.detach();
    await a.done;
    closeSync(w);
    expect([out.ends(), err.ends(), existsSync(p.stdout)]).toEqual([1, 1, true]);
  });
});

async function until(cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await Bun.sleep(5);
  }
}
