// What a test run must remove or end when the whole run is over. `bun test` does not fire
// process "exit" handlers (each run left its compiled bunker, ~110 MB, in /tmp), so the preload
// (tests/support/preload.ts) runs these from a global afterAll; a bench or script that imports the
// harness outside `bun test` still gets them on exit.
import { rmSync } from "node:fs";

const tasks: (() => void)[] = [];
let hooked = false;

/** Runs `fn` once at the end of the test run (or at exit outside bun test). */
export function atEnd(fn: () => void): void {
  tasks.push(fn);
  if (!hooked) {
    hooked = true;
    process.once("exit", runAtEnd);
  }
}

/** Removes `path` (recursively) at the end of the run. */
export function removeAtEnd(path: string): void {
  atEnd(() => rmSync(path, { recursive: true, force: true }));
}

/** Runs and forgets every registered task (the preload's afterAll, and exit). */
export function runAtEnd(): void {
  for (const fn of tasks.splice(0)) {
    try {
      fn();
    } catch {
      // one failed clean-up must not keep the others from running
    }
  }
}
