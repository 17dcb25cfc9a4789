import { describe, expect, test } from "bun:test";
import pino from "pino";
import { InvalidArgumentError } from "../../src/errdefs.ts";
import {
  buildLabels,
  containerKindContainer,
  containerKindLabel,
  containerKindSandbox,
  criContainerStateToString,
  filterLabel,
  getContainerRootDir,
  getPassthroughAnnotations,
  getSandboxRootDir,
  getVolatileContainerRootDir,
  getVolatileSandboxRootDir,
  isInCRIMounts,
  makeContainerName,
  makeSandboxName,
  toRuntimeAuthConfig,
  validateLabel,
} from "../../src/cri/helpers.ts";
import { getRepoDigestAndTag, getUserFromImage, parseImageReferences } from "../../src/cri/image.ts";
import { parseDockerRef } from "../../src/registry/reference.ts";
import { ContainerState } from "../../src/cri/types.ts";

const SHA = "sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582";

function memoryLogger(): { log: pino.Logger; lines: () => Record<string, unknown>[] } {
  const out: string[] = [];
  const log = pino({ level: "debug" }, { write: (s: string) => void out.push(s) });
  return { log, lines: () => out.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe("names", () => {
  const pod = { name: "web", namespace: "default", uid: "7f1c", attempt: 2 };
  test("sandbox name is name_namespace_uid_attempt", () => {
    expect(makeSandboxName(pod)).toBe("web_default_7f1c_2");
  });
  test("container name uses the container's attempt", () => {
    expect(makeContainerName({ name: "nginx", attempt: 0 }, pod)).toBe("nginx_web_default_7f1c_0");
  });
  test("a non-uint32 attempt is refused", () => {
    expect(() => makeSandboxName({ ...pod, attempt: -1 })).toThrow(InvalidArgumentError);
    expect(() => makeContainerName({ name: "c", attempt: 1.5 }, pod)).toThrow(InvalidArgumentError);
  });
});

describe("root and volatile dirs", () => {
  const cfg = { rootDir: "/var/lib/bunker/cri/", stateDir: "/run/bunker/cri" };
  test.each([
    [getSandboxRootDir, "/var/lib/bunker/cri/sandboxes/abc"],
    [getVolatileSandboxRootDir, "/run/bunker/cri/sandboxes/abc"],
    [getContainerRootDir, "/var/lib/bunker/cri/containers/abc"],
    [getVolatileContainerRootDir, "/run/bunker/cri/containers/abc"],
  ])("%#: %p", (fn, want) => {
    expect(fn(cfg, "abc")).toBe(want);
  });
  test("an id that could escape the directory is refused", () => {
    for (const id of ["../etc", "a/b", "", ".."]) expect(() => getContainerRootDir(cfg, id)).toThrow(InvalidArgumentError);
  });
});

test.each([
  [ContainerState.CONTAINER_CREATED, "CONTAINER_CREATED"],
  [ContainerState.CONTAINER_RUNNING, "CONTAINER_RUNNING"],
  [ContainerState.CONTAINER_EXITED, "CONTAINER_EXITED"],
  [ContainerState.CONTAINER_UNKNOWN, "CONTAINER_UNKNOWN"],
  [42, ""],
])("criContainerStateToString(%p) = %p", (state, want) => {
  expect(criContainerStateToString(state)).toBe(want);
});

describe("filterLabel", () => {
  test.each([
    ["io.cri-containerd.kind", "sandbox", 'labels."io.cri-containerd.kind"=="sandbox"'],
    ['we"ird', "a\\b\n", 'labels."we\\"ird"=="a\\\\b\\n"'],
    ["k", "", 'labels."k"==""'],
  ])("%p=%p", (k, v, want) => {
    expect(filterLabel(k, v)).toBe(want);
  });
});

describe("buildLabels", () => {
  test("image labels, then config labels over them, then the kind", () => {
    const { log, lines } = memoryLogger();
    const labels = buildLabels(
      { a: "config", c: "config" },
      { a: "image", b: "image", [containerKindLabel]: "forged" },
      containerKindContainer,
      log,
    );
    expect(labels).toEqual({ a: "config", b: "image", c: "config", [containerKindLabel]: containerKindContainer });
    expect(lines()).toEqual([]);
  });

  test("an oversized image label is skipped with a warning", () => {
    const { log, lines } = memoryLogger();
    const big = "x".repeat(4096);
    const labels = buildLabels({}, { "org.example.huge": big, ok: "1" }, containerKindSandbox, log);
    expect(labels).toEqual({ ok: "1", [containerKindLabel]: containerKindSandbox });
    const warnings = lines().filter((l) => l.level === 40);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.msg).toBe("unable to add image label with key org.example.huge to the container");
    expect(String((warnings[0]!.err as { message: string }).message)).toContain("key: org.exampl");
  });

  test("a config label is never validated away", () => {
    const big = "y".repeat(5000);
    const { log } = memoryLogger();
    expect(buildLabels({ huge: big }, undefined, containerKindContainer, log).huge).toBe(big);
  });

  test("a __proto__ key stays an ordinary label", () => {
    const { log } = memoryLogger();
    const image = JSON.parse('{"__proto__": "p"}') as Record<string, string>;
    const labels = buildLabels({}, image, containerKindContainer, log);
    expect(Object.hasOwn(labels, "__proto__")).toBe(true);
    expect(Object.getPrototypeOf(labels)).toBe(Object.prototype);
  });
});

describe("validateLabel counts UTF-8 bytes of key and value", () => {
  test.each([
    ["k", "v".repeat(4095), true],
    ["k", "v".repeat(4096), false],
    ["k", "é".repeat(2047), true], // 1 + 4094 bytes
    ["k", "é".repeat(2048), false], // 1 + 4096 bytes, though only 2049 UTF-16 units
  ])("%p + %#", (k, v, ok) => {
    if (ok) expect(() => validateLabel(k, v)).not.toThrow();
    else expect(() => validateLabel(k, v)).toThrow(InvalidArgumentError);
  });
});

describe("getPassthroughAnnotations", () => {
  const pod = {
    "io.kubernetes.cri.sandbox-id": "s1",
    "example.com/gpu": "2",
    "example.com/gpu/extra": "x",
    "other.io/thing": "y",
    "exact": "z",
  };
  test.each([
    [["example.com/*"], { "example.com/gpu": "2" }], // `*` does not cross the second `/`
    [["example.com/*", "example.com/*/*"], { "example.com/gpu": "2", "example.com/gpu/extra": "x" }],
    [["*"], { exact: "z", "io.kubernetes.cri.sandbox-id": "s1" }], // a bare `*` never matches a key with a `/`
    [["io.kubernetes.cri.*"], { "io.kubernetes.cri.sandbox-id": "s1" }],
    [["exact", "nothing"], { exact: "z" }],
    [["[", "exact"], { exact: "z" }], // a malformed pattern matches nothing and does not fail the others
    [[], {}],
  ])("%p", (patterns, want) => {
    expect(getPassthroughAnnotations(pod, patterns)).toEqual(want);
  });
  test("no annotations or no patterns", () => {
    expect(getPassthroughAnnotations(undefined, ["*"])).toEqual({});
    expect(getPassthroughAnnotations(pod, undefined)).toEqual({});
  });
});

describe("getRepoDigestAndTag", () => {
  test.each([
    ["busybox", false, `docker.io/library/busybox@${SHA}`, "docker.io/library/busybox:latest"],
    ["busybox", true, "", "docker.io/library/busybox:latest"], // schema1: the content digest is no repo digest
    [`busybox@${SHA}`, false, `docker.io/library/busybox@${SHA}`, ""],
    [`busybox@${SHA}`, true, `docker.io/library/busybox@${SHA}`, ""], // a digest in the reference is the repo digest
    ["gcr.io/a/b:v2", false, `gcr.io/a/b@${SHA}`, "gcr.io/a/b:v2"],
  ])("%p schema1=%p", (ref, schema1, repoDigest, repoTag) => {
    expect(getRepoDigestAndTag(parseDockerRef(ref), SHA, schema1)).toEqual({ repoDigest, repoTag });
  });
  test("an invalid image digest is refused", () => {
    expect(() => getRepoDigestAndTag(parseDockerRef("busybox"), "sha256:nope", false)).toThrow(InvalidArgumentError);
  });
});

test("parseImageReferences splits tags from digests and drops garbage", () => {
  expect(
    parseImageReferences([
      "busybox:1",
      `busybox@${SHA}`,
      `gcr.io/x/y:t@${SHA}`,
      SHA, // a bare digest is neither
      "Not A Ref",
      "docker.io/library/alpine", // a name alone is neither
    ]),
  ).toEqual({
    tags: ["docker.io/library/busybox:1"],
    digests: [`docker.io/library/busybox@${SHA}`, `gcr.io/x/y:t@${SHA}`],
  });
});

describe("getUserFromImage", () => {
  test.each([
    ["", null, ""],
    ["0", 0n, ""],
    ["1000", 1000n, ""],
    ["1000:1000", 1000n, ""], // the group is ignored
    ["1000:wheel", 1000n, ""],
    ["nobody", null, "nobody"],
    ["nobody:nogroup", null, "nobody"],
    ["www-data:33", null, "www-data"],
    [":1000", null, ""], // empty user part: a name of ""
    ["-1", -1n, ""],
    ["99999999999999999999", null, "99999999999999999999"], // beyond int64: a name, as in Go
  ])("%p -> uid %p, name %p", (user, uid, username) => {
    expect(getUserFromImage(user)).toEqual({ uid, username });
  });
});

describe("isInCRIMounts and toRuntimeAuthConfig", () => {
  test("mount destinations compare cleaned", () => {
    const mounts = [{ containerPath: "/etc/hosts/", hostPath: "/x" }, { containerPath: "/var//log", hostPath: "/y" }];
    expect(isInCRIMounts("/etc/hosts", mounts)).toBe(true);
    expect(isInCRIMounts("/var/log/", mounts)).toBe(true);
    expect(isInCRIMounts("/var/log/a/..", mounts)).toBe(true);
    expect(isInCRIMounts("/etc", mounts)).toBe(false);
    expect(isInCRIMounts("/etc/hosts", [])).toBe(false);
  });
  test("auth config fields carry over", () => {
    expect(toRuntimeAuthConfig({ username: "u", password: "p", auth: "a", identityToken: "t" })).toEqual({
      username: "u",
      password: "p",
      auth: "a",
      serverAddress: "",
      identityToken: "t",
      registryToken: "",
    });
  });
});
