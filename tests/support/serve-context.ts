// A ServeContext for unit tests of bunker's task service: no socket, no containerd, silent logs,
// the reaper fed by a FakeSyscalls (a test exits a process by giving the fake a zombie).
import { Lifecycle } from "../../src/shim/lifecycle.ts";
import { silentLogger } from "../../src/shim/logger.ts";
import type { Publisher } from "../../src/shim/publisher.ts";
import { Monitor } from "../../src/shim/reaper.ts";
import type { ServeContext } from "../../src/shim/types.ts";
import type { FakeSyscalls } from "../../src/sys/index.ts";

export function testServeContext(o: { fake: FakeSyscalls; publisher: Publisher; containerCount: () => number; bundle?: string }): ServeContext {
  const bundle = o.bundle ?? "/nonexistent";
  return {
    id: "c0",
    namespace: "ns",
    bundle,
    socket: "unix:///nonexistent.sock",
    containerdAddress: "/run/containerd/containerd.sock",
    ttrpcAddress: "",
    debug: false,
    log: silentLogger(),
    publisher: o.publisher,
    monitor: new Monitor(() => o.fake.reapSweep(new Set())),
    lifecycle: new Lifecycle(o.containerCount),
    logBundle: bundle,
    logTo: () => false,
  };
}
