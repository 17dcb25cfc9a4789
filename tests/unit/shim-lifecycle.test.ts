import { describe, expect, test } from "bun:test";
import { UnavailableError } from "../../src/errdefs.ts";
import { Lifecycle, lingerFromEnv } from "../../src/shim/lifecycle.ts";

function settled(p: Promise<unknown>): Promise<boolean> {
  return Promise.race([p.then(() => true), Bun.sleep(30).then(() => false)]);
}

describe("shim lifecycle", () => {
  test("Shutdown is ignored while containers remain, acts when none are left", async () => {
    let n = 1;
    const l = new Lifecycle(() => n);
    expect(l.requestShutdown()).toBe(false);
    expect(await settled(l.done)).toBe(false);
    n = 0;
    expect(l.requestShutdown()).toBe(true);
    expect(l.shuttingDown).toBe(true);
    expect(await settled(l.done)).toBe(true);
  });

  test("a reservation holds the shim; once stopping, reservations are refused", async () => {
    const l = new Lifecycle(() => 0);
    l.reserve("c1");
    expect(l.reserved).toBe(1);
    expect(l.requestShutdown()).toBe(false);
    l.release("c1");
    expect(l.requestShutdown()).toBe(true);
    expect(() => l.reserve("c2")).toThrow(UnavailableError);
    await l.done;
  });

  test("reservations expire", async () => {
    const l = new Lifecycle(() => 0, { reservationMs: 20 });
    l.reserve("c1");
    await Bun.sleep(60);
    expect(l.reserved).toBe(0);
    expect(l.requestShutdown()).toBe(true);
  });

  test("linger: after Shutdown the shim stays briefly and a new reservation keeps it", async () => {
    const l = new Lifecycle(() => 0, { lingerMs: 80 });
    expect(l.requestShutdown()).toBe(true);
    expect(l.shuttingDown).toBe(false);
    await Bun.sleep(20);
    l.reserve("next"); // the group's next container arrived in time
    await Bun.sleep(120);
    expect(l.shuttingDown).toBe(false);
    l.release("next");
    expect(l.requestShutdown()).toBe(true);
    expect(await settled(l.done)).toBe(false);
    await l.done; // ends after the linger
    expect(l.shuttingDown).toBe(true);
  });

  test("an empty shim ends after the idle time even without Shutdown", async () => {
    const l = new Lifecycle(() => 0, { idleMs: 20 });
    l.changed();
    expect(await Promise.race([l.done.then(() => true), Bun.sleep(500).then(() => false)])).toBe(true);
  });

  test("linger from the environment", () => {
    expect(lingerFromEnv({})).toBe(5000);
    expect(lingerFromEnv({ BUNKER_SHIM_LINGER_MS: "0" })).toBe(0);
    expect(lingerFromEnv({ BUNKER_SHIM_LINGER_MS: "x" })).toBe(5000);
  });
});
