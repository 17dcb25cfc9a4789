// A second process for the snapshot store's cross-process tests (tests/integration/snapshots.test.ts):
// unpacks a stack of synthetic layers into a store, logging every apply it runs so the test can
// count extractions across processes. Usage:
//   bun snapshots-child.ts <root> <kind> <log file> <mode: write|hang> <diff ID>...
// "hang" writes a file into the layer, logs "started <pid>" and then never returns, for the test to
// SIGKILL mid-apply.
import * as fs from "node:fs";
import { chainIds, openSnapshotter, type SnapshotterKind } from "../../src/snapshots/index.ts";

const [root, kind, log, mode, ...diffIds] = process.argv.slice(2) as [string, SnapshotterKind, string, "write" | "hang", ...string[]];
const snapshotter = openSnapshotter(root, kind);
const ids = chainIds(diffIds);
for (const [i, chain] of ids.entries()) {
  await snapshotter.unpack(chain, ids[i - 1], async (dir) => {
    fs.writeFileSync(`${dir}/layer-${i}`, `${process.pid}\n`);
    if (mode === "hang") {
      fs.appendFileSync(log, `started ${process.pid}\n`);
      await new Promise(() => undefined);
    }
    await Bun.sleep(50); // long enough that the other process finds the lock taken
    fs.appendFileSync(log, `applied ${i} ${process.pid}\n`);
  });
}
console.log("done");
