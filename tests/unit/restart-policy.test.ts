// docker's restart policies as data: parse, decision, back-off (moby's restartmanager rules).
import { describe, expect, test } from "bun:test";
import { BACKOFF_MAX_MS, BACKOFF_START_MS, formatRestartPolicy, nextBackoff, parseRestartPolicy, shouldRestart } from "../../src/containers/restart-policy.ts";

describe("restart policy", () => {
  test("parses docker's forms and refuses the rest with one line", () => {
    expect(parseRestartPolicy("")).toEqual({ name: "no", maxRetries: 0 });
    expect(parseRestartPolicy("no")).toEqual({ name: "no", maxRetries: 0 });
    expect(parseRestartPolicy("always")).toEqual({ name: "always", maxRetries: 0 });
    expect(parseRestartPolicy("unless-stopped")).toEqual({ name: "unless-stopped", maxRetries: 0 });
    expect(parseRestartPolicy("on-failure")).toEqual({ name: "on-failure", maxRetries: 0 });
    expect(parseRestartPolicy("on-failure:5")).toEqual({ name: "on-failure", maxRetries: 5 });
    expect(() => parseRestartPolicy("always:3")).toThrow("takes no maximum retry count");
    expect(() => parseRestartPolicy("on-failure:x")).toThrow("whole number");
    expect(() => parseRestartPolicy("on-failure:1:2")).toThrow("invalid restart policy");
    expect(() => parseRestartPolicy("sometimes")).toThrow("use no, always, unless-stopped or on-failure[:N]");
    expect(formatRestartPolicy(parseRestartPolicy("on-failure:5"))).toBe("on-failure:5");
    expect(formatRestartPolicy(parseRestartPolicy("on-failure"))).toBe("on-failure");
  });

  const facts = { exitStatus: 1, manuallyStopped: false, restartCount: 0, atDaemonStart: false };
  test("decides as moby's restartmanager", () => {
    const always = parseRestartPolicy("always");
    const unless = parseRestartPolicy("unless-stopped");
    const onFailure3 = parseRestartPolicy("on-failure:3");
    expect(shouldRestart(parseRestartPolicy("no"), facts)).toBe(false);
    expect(shouldRestart(always, { ...facts, exitStatus: 0 })).toBe(true);
    // a user's stop holds always until the daemon's next start, unless-stopped until a start
    expect(shouldRestart(always, { ...facts, manuallyStopped: true })).toBe(false);
    expect(shouldRestart(always, { ...facts, manuallyStopped: true, atDaemonStart: true })).toBe(true);
    expect(shouldRestart(unless, { ...facts, manuallyStopped: true, atDaemonStart: true })).toBe(false);
    expect(shouldRestart(unless, { ...facts, atDaemonStart: true })).toBe(true);
    // on-failure: non-zero exits only, at most N restarts
    expect(shouldRestart(onFailure3, { ...facts, exitStatus: 0 })).toBe(false);
    expect(shouldRestart(onFailure3, { ...facts, restartCount: 2 })).toBe(true);
    expect(shouldRestart(onFailure3, { ...facts, restartCount: 3 })).toBe(false);
    expect(shouldRestart(parseRestartPolicy("on-failure"), { ...facts, restartCount: 1000 })).toBe(true);
  });

  test("backs off from 100 ms, doubling to a minute, reset by a 10 s run", () => {
    const waits: number[] = [];
    let w = 0;
    for (let i = 0; i < 12; i++) waits.push((w = nextBackoff(w, 5)));
    expect(waits.slice(0, 5)).toEqual([100, 200, 400, 800, 1600]);
    expect(waits.at(-1)).toBe(BACKOFF_MAX_MS);
    expect(nextBackoff(BACKOFF_MAX_MS, 10_000)).toBe(BACKOFF_START_MS);
    // a crash loop's restarts in its first minute: about ten
    let elapsed = 0;
    let n = 0;
    for (w = 0; elapsed < 60_000; n++) elapsed += w = nextBackoff(w, 5);
    expect(n).toBeLessThanOrEqual(11);
  });
});
