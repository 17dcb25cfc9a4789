// Integration tests declare what they need. Missing needs skip the test with a reason, except
// under BUNKER_REQUIRE_ALL=1 (set by .ci/run), where a missing need is a failure: CI must prove
// that the integration tier really ran.
import { describe, test } from "bun:test";

export type Need = "root" | `bin:${string}`;

export function missingNeeds(needs: Need[]): string[] {
  const missing: string[] = [];
  for (const need of needs) {
    if (need === "root") {
      if (process.getuid?.() !== 0) missing.push("root");
    } else {
      const bin = need.slice(4);
      if (!Bun.which(bin, { PATH: `${process.env.PATH ?? ""}:/usr/sbin:/sbin` })) missing.push(bin);
    }
  }
  return missing;
}

/** describe() that runs only when every need is met; otherwise skips with a reason (or fails under CI). */
export function describeWith(needs: Need[], name: string, body: () => void): void {
  const missing = missingNeeds(needs);
  if (missing.length === 0) {
    describe(name, body);
    return;
  }
  const reason = `needs ${missing.join(", ")}`;
  if (process.env.BUNKER_REQUIRE_ALL === "1") {
    // A failing test, not a throw in the describe body: Bun counts the latter as an "error between
    // tests", which the closing summary does not show as a failure.
    describe(name, () => {
      test(`has what it needs (${reason})`, () => {
        throw new Error(`${name}: ${reason}, and BUNKER_REQUIRE_ALL=1 forbids skipping`);
      });
    });
    return;
  }
  console.warn(`skipped: ${name}: ${reason}`);
  describe.skipIf(true)(name, body);
}
