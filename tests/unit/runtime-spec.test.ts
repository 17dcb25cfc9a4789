import { describe, expect, test } from "bun:test";
import { InvalidArgumentError } from "../../src/errdefs.ts";
import { cgroupParent, DEFAULT_ADDRESS } from "../../src/runtime/paths.ts";
import { DEFAULT_PATH_ENV, execProcess, generateSpec, mergeEnv, parsePlatforms, withNetwork } from "../../src/oci/spec.ts";

test("generateSpec follows containerd's unix defaults", () => {
  const s = generateSpec({ namespace: "default", id: "c1", args: ["/bin/echo", "hi"], env: ["A=1", "PATH=/bin"], cwd: "/tmp" });
  expect(s.root).toEqual({ path: "rootfs", readonly: false });
  expect(s.process.args).toEqual(["/bin/echo", "hi"]);
  expect(s.process.env).toEqual(["PATH=/bin", "A=1"]);
  expect(s.process.cwd).toBe("/tmp");
  expect(s.process.terminal).toBe(false);
  expect(s.hostname).toBe("c1");
  expect(s.linux.namespaces.map((n) => n.type)).toEqual(["pid", "ipc", "uts", "mount", "network"]);
  expect(s.mounts.map((m) => m.destination)).toEqual(["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"]);
  expect(s.process.capabilities.bounding).toContain("CAP_KILL");
  expect(s.process.capabilities.bounding).not.toContain("CAP_SYS_ADMIN");
  expect(s.process.rlimits).toEqual([{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }]);
  expect(s.linux.maskedPaths).toContain("/proc/kcore");
  expect(s.linux.readonlyPaths).toContain("/proc/sys");
  // under bunker's own parent, never containerd's /<ns>/<id>: runc joins an existing cgroup (paths.ts)
  expect(s.linux.cgroupsPath).toBe("/bunker/default/c1");
  expect(generateSpec({ namespace: "default", id: "c1", args: ["sh"], cgroupParent: cgroupParent("/tmp/x/bunker.sock") }).linux.cgroupsPath).toMatch(/^\/bunker-[0-9a-f]{8}\/default\/c1$/);
  expect(cgroupParent(DEFAULT_ADDRESS)).toBe("/bunker");
});

test("terminal adds TERM; defaults", () => {
  const s = generateSpec({ namespace: "n", id: "c", args: ["sh"], terminal: true });
  expect(s.process.env).toEqual([DEFAULT_PATH_ENV, "TERM=xterm"]);
  expect(s.process.cwd).toBe("/");
  expect(s.annotations).toBeUndefined();
});

test("bad inputs", () => {
  expect(() => generateSpec({ namespace: "n", id: "c", args: [] })).toThrow(InvalidArgumentError);
  expect(() => generateSpec({ namespace: "n", id: "c", args: ["sh"], cwd: "rel" })).toThrow(InvalidArgumentError);
  expect(() => mergeEnv([], ["=x"])).toThrow(InvalidArgumentError);
});

test("execProcess derives from the container's process", () => {
  const s = generateSpec({ namespace: "n", id: "c", args: ["sleep", "1"], env: ["A=1"] });
  const p = execProcess(s, ["ls"], true, ["A=2"]);
  expect(p.args).toEqual(["ls"]);
  expect(p.terminal).toBe(true);
  expect(p.env).toEqual([DEFAULT_PATH_ENV, "A=2"]);
  expect(s.process.args).toEqual(["sleep", "1"]);
});

test("parsePlatforms", () => {
  expect(parsePlatforms(["linux/amd64", "linux/arm/v7", "aarch64", "Linux/x86_64"])).toEqual([
    { os: "linux", architecture: "amd64" },
    { os: "linux", architecture: "arm", variant: "v7" },
    { os: "linux", architecture: "arm64" },
    { os: "linux", architecture: "amd64" },
  ]);
  expect(parsePlatforms(["linux"])[0]!.os).toBe("linux");
  for (const bad of ["", "linux/", "plan9/amd64", "linux/vax", "a/b/c/d", "linux/amd64 "]) {
    expect(() => parsePlatforms([bad])).toThrow(InvalidArgumentError);
  }
});

describe("withNetwork's /etc files", () => {
  const files = [
    { destination: "/etc/hosts", source: "/run/bunker/networks/containers/ns/c/hosts" },
    { destination: "/etc/resolv.conf", source: "/run/bunker/networks/containers/ns/c/resolv.conf" },
  ];
  const bind = (destination: string, source: string) => ({ destination, type: "bind", source, options: ["rbind", "rprivate"] });

  test("bind-mounted over the image's, with the netns by path", () => {
    const spec = withNetwork(generateSpec({ namespace: "ns", id: "c", args: ["true"] }), { netnsPath: "/run/netns/x", files });
    expect(spec.mounts!.filter((m) => m.destination.startsWith("/etc/"))).toEqual(files.map((f) => bind(f.destination, f.source)));
    expect(spec.linux.namespaces as { type: string; path?: string }[]).toContainEqual({ type: "network", path: "/run/netns/x" });
  });

  test("a user's mount at one of those paths wins, as in docker (-v ./hosts:/etc/hosts)", () => {
    const base = generateSpec({ namespace: "ns", id: "c", args: ["true"] });
    base.mounts = [...base.mounts!, bind("/etc/hosts", "/srv/my-hosts")];
    const spec = withNetwork(base, { netnsPath: "/run/netns/x", files });
    const etc = spec.mounts!.filter((m) => m.destination.startsWith("/etc/"));
    expect(etc).toEqual([bind("/etc/hosts", "/srv/my-hosts"), bind("/etc/resolv.conf", files[1]!.source)]);
  });

  test("joining twice changes nothing: our own earlier mounts are replaced, not kept as a user's", () => {
    const once = withNetwork(generateSpec({ namespace: "ns", id: "c", args: ["true"] }), { netnsPath: "/run/netns/x", files });
    expect(withNetwork(once, { netnsPath: "/run/netns/x", files })).toEqual(once);
  });
});
