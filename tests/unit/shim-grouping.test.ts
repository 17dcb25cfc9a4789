import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InvalidArgumentError, NotFoundError } from "../../src/errdefs.ts";
import { groupKey, NAMESPACE_GROUP_KEY, readBundleAnnotations } from "../../src/contract/grouping.ts";

describe("group key", () => {
  test("default: one shim per namespace", () => {
    expect(groupKey({ id: "a" })).toBe(NAMESPACE_GROUP_KEY);
    expect(groupKey({ id: "b", annotations: { other: "x" } })).toBe(groupKey({ id: "a" }));
  });

  test("runc's annotations are honoured in runc's order", () => {
    expect(groupKey({ id: "a", annotations: { "io.kubernetes.cri.sandbox-id": "pod1" } })).toBe("pod1");
    expect(groupKey({ id: "a", annotations: { "io.kubernetes.cri.sandbox-id": "pod1", "io.containerd.runc.v2.group": "g" } })).toBe("g");
  });

  test("bunker's annotation wins; 'container' and 'namespace' are keywords", () => {
    const annotations = { "io.containerd.bunker.v1.group": "container", "io.containerd.runc.v2.group": "g" };
    expect(groupKey({ id: "c7", annotations })).toBe("c7");
    expect(groupKey({ id: "c7", annotations: { "io.containerd.bunker.v1.group": "namespace", "io.kubernetes.cri.sandbox-id": "p" } })).toBe(NAMESPACE_GROUP_KEY);
    expect(groupKey({ id: "c7", annotations: { "io.containerd.bunker.v1.group": "mine" } })).toBe("mine");
  });

  test("the runtime option overrides CRI's sandbox id but not the group annotations", () => {
    expect(groupKey({ id: "c1", option: "container" })).toBe("c1");
    expect(groupKey({ id: "c1", option: "team" })).toBe("team");
    // a RuntimeClass handler configured with group = "container": one shim per container, pods or not
    expect(groupKey({ id: "c1", option: "container", annotations: { "io.kubernetes.cri.sandbox-id": "p" } })).toBe("c1");
    expect(groupKey({ id: "c1", option: "shared", annotations: { "io.kubernetes.cri.sandbox-id": "p" } })).toBe("shared");
    expect(groupKey({ id: "c1", option: "container", annotations: { "io.containerd.runc.v2.group": "g", "io.kubernetes.cri.sandbox-id": "p" } })).toBe("g");
    expect(groupKey({ id: "c1", option: "container", annotations: { "io.containerd.bunker.v1.group": "b" } })).toBe("b");
    expect(groupKey({ id: "c1", annotations: { "io.containerd.runc.v2.group": "" } })).toBe(NAMESPACE_GROUP_KEY);
    // an empty option is no option
    expect(groupKey({ id: "c1", option: "", annotations: { "io.kubernetes.cri.sandbox-id": "p" } })).toBe("p");
  });

  test("the environment's default sits below everything the container or its handler says", () => {
    expect(groupKey({ id: "c1", fallback: "container" })).toBe("c1");
    expect(groupKey({ id: "c1", fallback: "container", annotations: { "io.kubernetes.cri.sandbox-id": "p" } })).toBe("p");
    expect(groupKey({ id: "c1", fallback: "container", option: "team" })).toBe("team");
    expect(groupKey({ id: "c1", fallback: "" })).toBe(NAMESPACE_GROUP_KEY);
  });

  test("CRI: a pod's sandbox and its containers share one shim, another pod gets its own", () => {
    // CRI puts the sandbox's own id in sandbox-id on the pause container, and the pod's id on each workload
    const sandbox = (id: string) => ({ "io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-id": id });
    const workload = (pod: string) => ({ "io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": pod });
    const podA = "a".repeat(64);
    const podB = "b".repeat(64);
    const keys = [
      groupKey({ id: podA, annotations: sandbox(podA) }),
      groupKey({ id: "c1", annotations: workload(podA) }),
      groupKey({ id: "c2", annotations: workload(podA) }),
    ];
    expect(new Set(keys)).toEqual(new Set([podA]));
    expect(groupKey({ id: podB, annotations: sandbox(podB) })).toBe(podB);
    expect(groupKey({ id: "c3", annotations: workload(podB) })).toBe(podB);
    // with the handler's group = "container", each gets its own, the sandbox included
    expect(groupKey({ id: podA, annotations: sandbox(podA), option: "container" })).toBe(podA);
    expect(groupKey({ id: "c1", annotations: workload(podA), option: "container" })).toBe("c1");
  });
});

describe("readBundleAnnotations", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "bunker-group-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test("reads string annotations from config.json", () => {
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ociVersion: "1.0.2", annotations: { a: "1", n: 2 } }));
    expect(readBundleAnnotations(dir)).toEqual({ a: "1" });
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ociVersion: "1.0.2" }));
    expect(readBundleAnnotations(dir)).toEqual({});
  });

  test("missing or broken config.json is a clear error", () => {
    expect(() => readBundleAnnotations(dir)).toThrow(NotFoundError);
    writeFileSync(join(dir, "config.json"), "{");
    expect(() => readBundleAnnotations(dir)).toThrow(InvalidArgumentError);
    writeFileSync(join(dir, "config.json"), JSON.stringify({ annotations: ["x"] }));
    expect(() => readBundleAnnotations(dir)).toThrow("annotations must be an object");
  });
});
