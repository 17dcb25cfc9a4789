// Readiness: many fds watched through one epoll set and one token stream (src/sys/readiness.ts).
// With the recording fake: the epoll calls and the token framing; with the real core: a pipe
// becomes readable, is re-armed, and reports EOF.
import { expect, test } from "bun:test";
import { closeSync, readSync, writeSync } from "node:fs";
import { Readiness } from "../../src/sys/readiness.ts";
import { EPOLL } from "../../src/sys/constants.ts";
import { FakeSyscalls } from "../../src/sys/fake.ts";
import { sys } from "../../src/sys/index.ts";

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(2);
  }
}

function tokenBytes(...tokens: bigint[]): Uint8Array {
  const buf = new Uint8Array(8 * tokens.length);
  const view = new DataView(buf.buffer);
  tokens.forEach((t, i) => view.setBigUint64(8 * i, t, true));
  return buf;
}

test("one epoll registration per fd, armed one event at a time; tokens split across reads still dispatch", async () => {
  const fake = new FakeSyscalls();
  // a real pipe carries the tokens; the poller thread is the test itself
  let notifyWrite = -1;
  fake.on("pipe", () => {
    const [r, w] = sys().pipe();
    notifyWrite = w;
    return [r, w];
  });
  fake.on("setNonblock", (fd, on) => sys().setNonblock(fd, on));
  const ready = new Readiness(fake);
  const seen: string[] = [];
  const a = ready.watch(7, () => seen.push("a"));
  const b = ready.watch(8, () => seen.push("b"));
  const epfd = fake.calls.find((c) => c.method === "startPoller")!.args[0] as number;
  const armed = EPOLL.IN | EPOLL.ONESHOT;
  expect(fake.calls.filter((c) => c.method === "epollCtl").map((c) => c.args)).toEqual([
    [epfd, EPOLL.CTL_ADD, 7, armed, 1n],
    [epfd, EPOLL.CTL_ADD, 8, armed, 2n],
  ]);
  const bytes = tokenBytes(2n, 1n, 2n);
  writeSync(notifyWrite, bytes.subarray(0, 3));
  await Bun.sleep(20);
  expect(seen).toEqual([]);
  writeSync(notifyWrite, bytes.subarray(3, 13)); // the first token whole, 5 bytes of the second
  await until(() => seen.length === 1, "the first callback");
  await Bun.sleep(20);
  expect(seen).toEqual(["b"]);
  writeSync(notifyWrite, bytes.subarray(13));
  await until(() => seen.length === 3, "the other two callbacks");
  expect(seen).toEqual(["b", "a", "b"]);
  a.rearm();
  b.remove();
  b.rearm(); // after remove: nothing
  expect(fake.calls.filter((c) => c.method === "epollCtl").slice(2).map((c) => c.args)).toEqual([
    [epfd, EPOLL.CTL_MOD, 7, armed, 1n],
    [epfd, EPOLL.CTL_DEL, 8, 0, 2n],
  ]);
  writeSync(notifyWrite, tokenBytes(2n, 1n, 99n));
  await until(() => seen.length === 4, "a's callback");
  await Bun.sleep(20);
  expect(seen).toEqual(["b", "a", "b", "a"]); // b's and the unknown token are ignored
  expect(ready.watching).toBe(1);
  a.remove();
  expect(ready.watching).toBe(0);
});

test("with the native poller: a pipe is reported readable, re-armed, then reported at EOF", async () => {
  const ready = new Readiness(sys());
  const [r, w] = sys().pipe();
  sys().setNonblock(r, true);
  let calls = 0;
  const watch = ready.watch(r, () => calls++);
  await Bun.sleep(20);
  expect(calls).toBe(0); // nothing to read yet
  writeSync(w, "one");
  await until(() => calls === 1, "readable");
  const buf = Buffer.alloc(16);
  expect(readSync(r, buf, 0, 16, null)).toBe(3);
  writeSync(w, "two");
  await Bun.sleep(20);
  expect(calls).toBe(1); // one event per arming
  watch.rearm();
  await until(() => calls === 2, "readable again after rearm");
  expect(buf.subarray(0, readSync(r, buf, 0, 16, null)).toString()).toBe("two");
  watch.rearm();
  closeSync(w);
  await until(() => calls === 3, "EOF");
  expect(readSync(r, buf, 0, 16, null)).toBe(0);
  watch.remove();
  closeSync(r);
});
