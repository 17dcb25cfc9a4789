// `bunker run`'s spec-shaping flags (src/cli/run-flags.ts) as parseArgs gives them: docker's syntax
// and units, and one clear line for each bad value.
import { expect, test } from "bun:test";
import { InvalidArgumentError } from "../../src/errdefs.ts";
import { parseArgs, usageOf } from "../../src/cli/args.ts";
import { parseCpus, parseDevice, parseMount, parseSize, parseTmpfs, parseVolume } from "../../src/cli/run-flags.ts";

function runSpec(...flags: string[]) {
  const c = parseArgs(["run", ...flags, "--rootfs", "/r", "c1", "/bin/true"]).command;
  if (c.name !== "run") throw new Error("not run");
  return c.opts.runSpec;
}

function refused(flags: string[], message: string): void {
  expect(() => runSpec(...flags)).toThrow(InvalidArgumentError);
  expect(() => runSpec(...flags)).toThrow(message);
}

test("no spec flag, no runSpec: nothing to load or apply", () => {
  expect(runSpec()).toBeUndefined();
  expect(parseArgs(["run", "--rm", "busybox"]).command).not.toHaveProperty("opts.runSpec");
});

test("every flag, on an image run too", () => {
  const c = parseArgs([
    "run", "-v", "/srv/a:/a:ro", "--mount", "type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1777", "--tmpfs", "/run:size=1m",
    "--read-only", "-m", "1g", "--memory-swap", "-1", "--cpus", "1.5", "--pids-limit", "100", "--cap-add", "net_admin",
    "--cap-drop", "CAP_CHOWN", "--privileged", "--device", "/dev/fuse", "--init", "busybox", "sh",
  ]).command;
  expect(c.name === "run" && c.opts.runSpec).toEqual({
    mounts: [
      { type: "bind", source: "/srv/a", target: "/a", readonly: true, propagation: "rprivate", createSource: true },
      { type: "tmpfs", target: "/t", options: ["size=64m", "mode=1777"] },
      { type: "tmpfs", target: "/run", options: ["size=1m"] },
    ],
    readonlyRootfs: true,
    memory: 1073741824,
    memorySwap: -1,
    nanoCpus: 1500000000,
    pidsLimit: 100,
    capAdd: ["CAP_NET_ADMIN"],
    capDrop: ["CAP_CHOWN"],
    privileged: true,
    devices: [{ host: "/dev/fuse", container: "/dev/fuse", access: "rwm" }],
    init: true,
  });
});

test("sizes: docker's RAMInBytes", () => {
  expect(parseSize("64m", "-m")).toBe(64 * 1024 * 1024);
  expect(parseSize("1g", "-m")).toBe(1024 ** 3);
  expect(parseSize("1.5GiB", "-m")).toBe(1.5 * 1024 ** 3);
  expect(parseSize("512kb", "-m")).toBe(512 * 1024);
  expect(parseSize("100", "-m")).toBe(100);
  expect(() => parseSize("64x", "--memory")).toThrow('--memory: invalid size "64x" (a number with an optional unit: b, k, m, g, t, p)');
  expect(() => parseSize("-1", "--memory")).toThrow(InvalidArgumentError);
});

test("-v: absolute host path, absolute container path, ro/rw and propagation", () => {
  expect(parseVolume("/h:/c")).toEqual({ type: "bind", source: "/h", target: "/c", readonly: false, propagation: "rprivate", createSource: true });
  expect(parseVolume("/h/:/c/:rw,rshared,z")).toEqual({ type: "bind", source: "/h", target: "/c", readonly: false, propagation: "rshared", createSource: true });
  expect(() => parseVolume("data:/c")).toThrow('-v data:/c: "data" is not an absolute host path, and named volumes are not supported yet');
  expect(() => parseVolume("./d:/c")).toThrow("named volumes are not supported yet");
  expect(() => parseVolume("/h:c")).toThrow('-v /h:c: the container path "c" must be absolute');
  expect(() => parseVolume("/h:/")).toThrow("the container path cannot be /");
  expect(() => parseVolume("/c")).toThrow("anonymous volumes are not supported yet");
  expect(() => parseVolume("/h:/c:ro,rw")).toThrow("more than one mode option");
  expect(() => parseVolume("/h:/c:nocopy")).toThrow('unknown option "nocopy"');
});

test("--mount: bind and tmpfs with docker's keys", () => {
  expect(parseMount("type=bind,src=/h,dst=/c,readonly")).toEqual({ type: "bind", source: "/h", target: "/c", readonly: true, propagation: "rprivate", createSource: false });
  expect(parseMount("type=bind,source=/h,target=/c,readonly=false,bind-propagation=rslave,bind-nonrecursive=true")).toEqual({
    type: "bind", source: "/h", target: "/c", readonly: false, propagation: "rslave", nonRecursive: true, createSource: false,
  });
  expect(parseMount("type=tmpfs,destination=/t,tmpfs-size=1500000,ro")).toEqual({ type: "tmpfs", target: "/t", options: ["size=1500000", "ro"] });
  expect(parseMount("type=tmpfs,target=/t,tmpfs-size=2048")).toEqual({ type: "tmpfs", target: "/t", options: ["size=2k"] });
  expect(() => parseMount("target=/c")).toThrow("named volumes are not supported yet");
  expect(() => parseMount("type=bind,target=/c")).toThrow("source is required for type=bind");
  expect(() => parseMount("type=bind,source=rel,target=/c")).toThrow("is not an absolute host path");
  expect(() => parseMount("type=bind,source=/h")).toThrow("target is required");
  expect(() => parseMount("type=bind,source=/h,target=/c,tmpfs-size=1m")).toThrow('unexpected key "tmpfs-size" for type=bind');
  expect(() => parseMount("type=tmpfs,target=/t,tmpfs-mode=999")).toThrow("tmpfs-mode must be octal");
  expect(() => parseMount("type=nfs,target=/t")).toThrow('unknown mount type "nfs"');
  expect(() => parseMount("type=bind,source=/h,target=/c,readonly=maybe")).toThrow('readonly must be true or false, not "maybe"');
});

test("--tmpfs: the kernel's options, checked", () => {
  expect(parseTmpfs("/run")).toEqual({ type: "tmpfs", target: "/run", options: [] });
  expect(parseTmpfs("/run:rw,exec,size=64m,mode=755,uid=1000")).toEqual({ type: "tmpfs", target: "/run", options: ["rw", "exec", "size=64m", "mode=755", "uid=1000"] });
  expect(() => parseTmpfs("/run:bogus")).toThrow('--tmpfs /run:bogus: invalid tmpfs option "bogus"');
  expect(() => parseTmpfs("/run:size=lots")).toThrow('invalid tmpfs option "size=lots"');
  expect(() => parseTmpfs("run")).toThrow("must be absolute");
});

test("--device: HOST[:CTR][:PERMS]", () => {
  expect(parseDevice("/dev/null")).toEqual({ host: "/dev/null", container: "/dev/null", access: "rwm" });
  expect(parseDevice("/dev/null:r")).toEqual({ host: "/dev/null", container: "/dev/null", access: "r" });
  expect(parseDevice("/dev/null:/dev/mynull")).toEqual({ host: "/dev/null", container: "/dev/mynull", access: "rwm" });
  expect(parseDevice("/dev/null:/dev/mynull:rw")).toEqual({ host: "/dev/null", container: "/dev/mynull", access: "rw" });
  expect(() => parseDevice("/dev/null:/dev/x:rwx")).toThrow('invalid permissions "rwx"');
  expect(() => parseDevice("/dev/null:/dev/x:rr")).toThrow("invalid permissions");
  expect(() => parseDevice("null")).toThrow('the host path "null" must be absolute');
  expect(() => parseDevice("/dev/null:mynull")).toThrow('the container path "mynull" must be absolute');
});

test("--cpus: exact billionths, 0 is no limit", () => {
  expect(parseCpus("1.5")).toBe(1_500_000_000);
  expect(parseCpus("0.01")).toBe(10_000_000);
  expect(parseCpus("2")).toBe(2_000_000_000);
  expect(parseCpus("0")).toBeUndefined();
  expect(() => parseCpus("0.001")).toThrow("below the minimum of 0.01");
  expect(() => parseCpus("-1")).toThrow('--cpus: "-1" is not a number of CPUs');
  expect(() => parseCpus("1.5x")).toThrow(InvalidArgumentError);
});

test("bad values: one line each", () => {
  refused(["--memory", "3m"], "--memory: 3m is below the minimum of 6m");
  refused(["--memory-swap", "1g"], "--memory-swap needs --memory");
  refused(["-m", "1g", "--memory-swap", "512m"], "--memory-swap: 512m is below --memory 1g");
  refused(["--pids-limit", "-5"], "--pids-limit: \"-5\" must be a whole number");
  refused(["--pids-limit", "ten"], "--pids-limit");
  refused(["--cap-add", "CAP_FLY"], '--cap-add: unknown capability "CAP_FLY"');
  refused(["--cap-drop", "fly"], '--cap-drop: unknown capability "fly"');
  refused(["-v", "/a:/x", "--tmpfs", "/x"], "duplicate mount point: /x");
  expect(runSpec("--pids-limit", "-1")).toBeUndefined();
  expect(runSpec("--pids-limit", "0", "-m", "0")).toBeUndefined();
  expect(runSpec("--cap-drop", "all", "--cap-add", "Chown")).toEqual({ capAdd: ["CAP_CHOWN"], capDrop: ["ALL"] });
});

test("run --help lists every spec flag", () => {
  const help = usageOf("run");
  for (const flag of ["-v HOST:CTR", "--mount type=bind|tmpfs", "--tmpfs", "--read-only", "--memory", "--memory-swap", "--cpus", "--pids-limit", "--cap-add", "--cap-drop", "--privileged", "--device", "--init"]) {
    expect(help).toContain(flag);
  }
});
