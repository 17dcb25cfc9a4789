import { describe, expect, test } from "bun:test";
import pino from "pino";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, UnavailableError } from "../../src/errdefs.ts";
import {
  ContainerEventQueue,
  generateAndSendContainerEvent,
  getContainerStatuses,
  type ContainerEventSource,
} from "../../src/cri/events.ts";
import {
  SandboxState,
  containerStatusState,
  copyResourcesToStatus,
  hostNetwork,
  sandboxStateToString,
  unknownContainerStatus,
  unknownSandboxStatus,
  validateTargetContainer,
  type ContainerStoreStatus,
} from "../../src/cri/status.ts";
import { ContainerEventType, ContainerState, NamespaceMode, PodSandboxState, type ContainerStatus, type OciSpec } from "../../src/cri/types.ts";

const base = (): ContainerStoreStatus => ({ ...unknownContainerStatus(), unknown: false, exitCode: 0, reason: "", pid: 42, createdAt: 5n });

const zeroLinux = {
  cpuPeriod: 0n,
  cpuQuota: 0n,
  cpuShares: 0n,
  memoryLimitInBytes: 0n,
  oomScoreAdj: 0n,
  cpusetCpus: "",
  cpusetMems: "",
  hugepageLimits: [],
  unified: {},
  memorySwapLimitInBytes: 0n,
};
const zeroWindows = { cpuShares: 0n, cpuCount: 0n, cpuMaximum: 0n, memoryLimitInBytes: 0n, rootfsSizeInBytes: 0n };

describe("copyResourcesToStatus", () => {
  test("Linux: cpu, cpuset, memory, oom score, hugepages, unified", () => {
    const spec: OciSpec = {
      process: { oomScoreAdj: -998 },
      linux: {
        resources: {
          cpu: { period: 100000, quota: -1, shares: 1024, cpus: "0-1", mems: "0" },
          memory: { limit: 268435456, swap: 536870912 },
          hugepageLimits: [{ pageSize: "2MB", limit: 1073741824 }],
          unified: { "memory.high": "max" },
        },
      },
    };
    const out = copyResourcesToStatus(spec, base());
    expect(out.resources).toEqual({
      linux: {
        cpuPeriod: 100000n,
        cpuQuota: -1n,
        cpuShares: 1024n,
        memoryLimitInBytes: 268435456n,
        oomScoreAdj: -998n,
        cpusetCpus: "0-1",
        cpusetMems: "0",
        hugepageLimits: [{ pageSize: "2MB", limit: 1073741824n }],
        unified: { "memory.high": "max" },
        memorySwapLimitInBytes: 536870912n,
      },
    });
    expect([out.pid, out.createdAt]).toEqual([42, 5n]); // the rest of the status is kept
  });

  test("Linux without resources still reports the oom score adjustment", () => {
    expect(copyResourcesToStatus({ process: { oomScoreAdj: 500 }, linux: {} }, base()).resources).toEqual({
      linux: { ...zeroLinux, oomScoreAdj: 500n },
    });
  });

  test("a uint64 beyond int64 wraps as Go's int64() does; big values stay exact", () => {
    const out = copyResourcesToStatus(
      { linux: { resources: { cpu: { shares: 18446744073709551615n }, memory: { limit: 9223372036854775807n } } } },
      base(),
    );
    expect(out.resources?.linux?.cpuShares).toBe(-1n);
    expect(out.resources?.linux?.memoryLimitInBytes).toBe(9223372036854775807n);
  });

  test("Windows: cpu shares/count/maximum and memory; rootfs size stays 0 as in containerd", () => {
    const spec: OciSpec = {
      windows: {
        resources: {
          cpu: { shares: 5000, count: 2, maximum: 7500 },
          memory: { limit: 2147483648 },
          storage: { sandboxSize: 21474836480 },
        },
      },
    };
    expect(copyResourcesToStatus(spec, base()).resources).toEqual({
      windows: { cpuShares: 5000n, cpuCount: 2n, cpuMaximum: 7500n, memoryLimitInBytes: 2147483648n, rootfsSizeInBytes: 0n },
    });
  });

  test("Windows without resources, and a spec for neither platform", () => {
    expect(copyResourcesToStatus({ windows: {} }, base()).resources).toEqual({ windows: zeroWindows });
    expect(copyResourcesToStatus({}, base()).resources).toEqual({});
  });

  test("a spec with both platforms fills both", () => {
    const out = copyResourcesToStatus({ linux: { resources: { cpu: { quota: 50000 } } }, windows: { resources: { cpu: { count: 1 } } } }, base());
    expect(out.resources?.linux?.cpuQuota).toBe(50000n);
    expect(out.resources?.windows?.cpuCount).toBe(1n);
  });

  test("a non-integer limit is refused", () => {
    expect(() => copyResourcesToStatus({ linux: { resources: { memory: { limit: 1.5 } } } }, base())).toThrow(InvalidArgumentError);
  });
});

describe("unknown statuses", () => {
  test("container: 255, Unknown, flagged, state UNKNOWN", () => {
    const s = unknownContainerStatus();
    expect(s).toEqual({
      pid: 0,
      createdAt: 0n,
      startedAt: 0n,
      finishedAt: 0n,
      exitCode: 255,
      reason: "Unknown",
      message: "",
      starting: false,
      removing: false,
      unknown: true,
    });
    expect(containerStatusState(s)).toBe(ContainerState.CONTAINER_UNKNOWN);
  });
  test("sandbox: state Unknown", () => {
    expect(unknownSandboxStatus()).toEqual({ pid: 0, createdAt: 0n, state: SandboxState.UNKNOWN });
    expect(sandboxStateToString(unknownSandboxStatus().state)).toBe("SANDBOX_UNKNOWN");
  });
  test.each([
    [{}, ContainerState.CONTAINER_UNKNOWN],
    [{ createdAt: 1n }, ContainerState.CONTAINER_CREATED],
    [{ createdAt: 1n, startedAt: 2n }, ContainerState.CONTAINER_RUNNING],
    [{ createdAt: 1n, startedAt: 2n, finishedAt: 3n }, ContainerState.CONTAINER_EXITED],
    [{ createdAt: 1n, startedAt: 2n, unknown: true }, ContainerState.CONTAINER_UNKNOWN],
  ])("state of %p", (fields, want) => {
    expect(containerStatusState({ ...unknownContainerStatus(), unknown: false, ...fields })).toBe(want);
  });
});

describe("hostNetwork", () => {
  const withNet = (network?: number) => ({ linux: { securityContext: { namespaceOptions: { network } } } });
  test.each([
    ["network NODE", withNet(NamespaceMode.NODE), "linux", true],
    ["network POD", withNet(NamespaceMode.POD), "linux", false],
    ["network CONTAINER", withNet(NamespaceMode.CONTAINER), "linux", false],
    ["network unset", withNet(undefined), "linux", false],
    ["no linux config", {}, "linux", false],
    ["HostProcess", { windows: { securityContext: { hostProcess: true } } }, "win32", true],
    ["network NODE but not HostProcess", withNet(NamespaceMode.NODE), "win32", false], // Windows looks only at HostProcess
    ["anything", {}, "darwin", true],
  ] as const)("%s on %s", (_name, config, platform, want) => {
    expect(hostNetwork(config, platform)).toBe(want);
  });
});

describe("validateTargetContainer", () => {
  const running = { ...base(), startedAt: 6n };
  const store = new Map([
    ["t1", { id: "t1", sandboxId: "s1", status: running }],
    ["t2", { id: "t2", sandboxId: "s2", status: running }],
    ["t3", { id: "t3", sandboxId: "s1", status: { ...running, finishedAt: 7n } }],
  ]);
  const lookup = (id: string) => store.get(id);
  test("a running container of the same sandbox is accepted", () => {
    expect(validateTargetContainer("s1", "t1", lookup).id).toBe("t1");
  });
  test("missing, foreign and stopped targets are refused", () => {
    expect(() => validateTargetContainer("s1", "nope", lookup)).toThrow(NotFoundError);
    expect(() => validateTargetContainer("s1", "t2", lookup)).toThrow(/does not belong to sandbox s1/);
    expect(() => validateTargetContainer("s1", "t3", lookup)).toThrow(FailedPreconditionError);
    expect(() => validateTargetContainer("s1", "t3", lookup)).toThrow(/in state CONTAINER_EXITED/);
  });
});

function statusOf(id: string): ContainerStatus {
  return { id, state: ContainerState.CONTAINER_RUNNING, createdAt: 1n, startedAt: 2n, finishedAt: 0n, exitCode: 0, reason: "", message: "" };
}

function source(over: Partial<ContainerEventSource> = {}): ContainerEventSource {
  return {
    podSandboxStatus: async (id) => ({ id, state: PodSandboxState.SANDBOX_READY, createdAt: 1n }),
    listContainers: async () => [{ id: "c1" }, { id: "gone" }, { id: "c2" }],
    containerStatus: async (id) => {
      if (id === "gone") throw new NotFoundError(`container ${id} not found`);
      return statusOf(id);
    },
    ...over,
  };
}

describe("container events", () => {
  const quiet = () => {
    const out: string[] = [];
    return { log: pino({ level: "debug" }, { write: (s: string) => void out.push(s) }), levels: () => out.map((l) => (JSON.parse(l) as { level: number }).level) };
  };

  test("statuses skip containers removed meanwhile; other errors propagate", async () => {
    expect((await getContainerStatuses(source(), "s1")).map((s) => s.id)).toEqual(["c1", "c2"]);
    const failing = source({ containerStatus: async () => { throw new UnavailableError("down"); } });
    await expect(getContainerStatuses(failing, "s1")).rejects.toThrow(UnavailableError);
  });

  test("an event carries the sandbox and container statuses and is queued", async () => {
    const queue = new ContainerEventQueue();
    const { log, levels } = quiet();
    const sent = await generateAndSendContainerEvent(source(), queue, "c1", "s1", ContainerEventType.CONTAINER_STARTED_EVENT, log, () => 77n);
    expect(await queue.receive()).toBe(sent);
    expect(sent).toEqual({
      containerId: "c1",
      containerEventType: ContainerEventType.CONTAINER_STARTED_EVENT,
      createdAt: 77n,
      podSandboxStatus: { id: "s1", state: PodSandboxState.SANDBOX_READY, createdAt: 1n },
      containersStatuses: [statusOf("c1"), statusOf("c2")],
    });
    expect(levels()).toEqual([]);
  });

  test("failures degrade the event instead of failing it", async () => {
    const queue = new ContainerEventQueue();
    const { log, levels } = quiet();
    const broken = source({
      podSandboxStatus: async () => { throw new NotFoundError("no sandbox"); },
      listContainers: async () => { throw new UnavailableError("store down"); },
    });
    const ev = await generateAndSendContainerEvent(broken, queue, "c1", "s1", ContainerEventType.CONTAINER_DELETED_EVENT, log);
    expect(ev.podSandboxStatus).toBeNull();
    expect(ev.containersStatuses).toEqual([]);
    expect(ev.createdAt).toBeGreaterThan(1_600_000_000_000_000_000n);
    expect(levels()).toEqual([40, 50]); // warn for the sandbox, error for the statuses
  });

  test("a full queue drops the event and never blocks", async () => {
    const queue = new ContainerEventQueue(1);
    const { log, levels } = quiet();
    await generateAndSendContainerEvent(source(), queue, "a", "s1", ContainerEventType.CONTAINER_CREATED_EVENT, log);
    await generateAndSendContainerEvent(source(), queue, "b", "s1", ContainerEventType.CONTAINER_CREATED_EVENT, log);
    expect(queue.size).toBe(1);
    expect((await queue.receive()).containerId).toBe("a");
    expect(levels()).toEqual([20]);
  });

  test("a waiting receiver gets the next event", async () => {
    const queue = new ContainerEventQueue(0);
    const next = queue.receive();
    const { log } = quiet();
    await generateAndSendContainerEvent(source(), queue, "w", "s1", ContainerEventType.CONTAINER_STOPPED_EVENT, log);
    expect((await next).containerId).toBe("w");
  });
});
