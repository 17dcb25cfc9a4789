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

  test("the runtime option sets the default below the annotations", () => {
    expect(groupKey({ id: "c1", option: "container" })).toBe("c1");
    expect(groupKey({ id: "c1", option: "team" })).toBe("team");
    expect(groupKey({ id: "c1", option: "container", annotations: { "io.kubernetes.cri.sandbox-id": "p" } })).toBe("p");
    expect(groupKey({ id: "c1", annotations: { "io.containerd.runc.v2.group": "" } })).toBe(NAMESPACE_GROUP_KEY);
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
