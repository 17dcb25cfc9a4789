import { create } from "@bufbuild/protobuf";
import { describe, expect, test } from "bun:test";
import { DEFAULT_GLOBALS, parseArgs, parseSignal, USAGE, usageOf } from "../../src/cli/args.ts";
import { formatLabels, psLines } from "../../src/cli/commands.ts";
import { execFailureCode } from "../../src/cli/cli.ts";
import { InvalidArgumentError } from "../../src/errdefs.ts";
import { TaskInfoSchema } from "../../src/gen/bunker/v1/api_pb.ts";
import { Status } from "../../src/gen/containerd/types/task/task_pb.ts";

describe("parseArgs", () => {
  test("run keeps the container command's own flags", () => {
    const p = parseArgs(["run", "--rm", "--env", "A=1", "-e", "B=2", "--label", "k=v", "--rootfs", "/r", "c1", "/bin/ls", "-l", "--rm"]);
    expect(p.globals).toEqual(DEFAULT_GLOBALS);
    // No --runtime: the runtime config's default, or bunker's own shim without a config.
    expect(p.command).toEqual({
      name: "run",
      opts: { rm: true, detach: false, tty: false, env: ["A=1", "B=2"], labels: { k: "v" }, annotations: {}, source: { rootfs: "/r" }, id: "c1", args: ["/bin/ls", "-l", "--rm"],
        network: { mode: "bridge", publish: [], dns: [], dnsSearch: [], addHosts: [] } },
    });
  });

  test("labels and annotations: repeated, last wins, values may hold '='", () => {
    const p = parseArgs([
      "run", "-l", "a=1", "--label", "flag", "--label=a=2", "--annotation", "io.kubernetes.cri.sandbox-id=pod1", "--annotation=x=y=z", "--rootfs", "/r", "c", "sh",
    ]);
    expect(p.command.name === "run" && p.command.opts).toMatchObject({
      labels: { a: "2", flag: "" },
      annotations: { "io.kubernetes.cri.sandbox-id": "pod1", x: "y=z" },
    });
  });

  test("--runtime-config: flag, then BUNKER_RUNTIME_CONFIG", () => {
    expect(parseArgs(["--runtime-config", "/etc/r.toml", "ps"], { BUNKER_RUNTIME_CONFIG: "/e.toml" }).globals.runtimeConfig).toBe("/etc/r.toml");
    expect(parseArgs(["ps"], { BUNKER_RUNTIME_CONFIG: "/e.toml" }).globals.runtimeConfig).toBe("/e.toml");
    expect(parseArgs(["ps"], {}).globals.runtimeConfig).toBeUndefined();
  });

  test("global flags, --flag=value and environment defaults", () => {
    const p = parseArgs(["--root=/x", "--state", "/s", "-n", "ns1", "--debug", "run", "-d", "--log", "/l", "--runtime=/opt/shim", "--rootfs=/r", "c", "sh"], {
      BUNKER_ADDRESS: "/tmp/b.sock",
    });
    expect(p.globals).toEqual({ root: "/x", state: "/s", address: "/tmp/b.sock", namespace: "ns1", debug: true, insecureRegistries: [] });
    expect(p.command.name === "run" && p.command.opts).toMatchObject({ detach: true, log: "/l", runtime: "/opt/shim" });
  });

  test("run IMAGE: --name, the image's own command, pull policy and the image flags", () => {
    const p = parseArgs(["run", "--rm", "--name", "web", "--pull", "never", "--platform", "linux/arm64", "-u", "app:wheel", "--entrypoint", "/bin/sh", "-e", "PATH", "-w", "/srv", "busybox", "-c", "id"]);
    expect(p.command.name === "run" && p.command.opts).toMatchObject({
      id: "web",
      source: { image: "busybox", pull: "never", platform: "linux/arm64" },
      args: ["-c", "id"],
      entrypoint: "/bin/sh",
      user: "app:wheel",
      env: ["PATH"],
      cwd: "/srv",
    });
    const q = parseArgs(["run", "-d", "busybox"]);
    expect(q.command.name === "run" && q.command.opts.source).toEqual({ image: "busybox", pull: "missing" });
    expect(q.command.name === "run" && q.command.opts.id).toMatch(/^[0-9a-f]{12}$/);
    expect(q.command.name === "run" && q.command.opts.args).toEqual([]);
  });

  test("run's network flags; BUNKER_NETWORK sets the default --net", () => {
    const p = parseArgs(["run", "--net", "mynet", "-p", "8080:80", "--publish=127.0.0.1:53:53/udp", "--dns", "10.0.0.2", "--dns-search", "lan", "--add-host", "db:10.0.0.9", "--hostname", "web1", "busybox"]);
    expect(p.command.name === "run" && p.command.opts.network).toEqual({
      mode: "mynet", publish: ["8080:80", "127.0.0.1:53:53/udp"], dns: ["10.0.0.2"], dnsSearch: ["lan"], addHosts: ["db:10.0.0.9"], hostname: "web1",
    });
    expect(parseArgs(["run", "busybox"], { BUNKER_NETWORK: "none" }).command).toMatchObject({ opts: { network: { mode: "none" } } });
  });

  test("every command has its own --help; relative global paths are made absolute", () => {
    expect(parseArgs(["run", "--help"]).command).toEqual({ name: "help", topic: "run" });
    expect(parseArgs(["network", "--help"]).command).toEqual({ name: "help", topic: "network" });
    expect(usageOf("run")).toContain("--rootfs DIR ID CMD");
    expect(usageOf("run")).toContain("--net bridge");
    expect(usageOf("rm").split("\n")[0]).toContain("rm [-f] ID...");
    expect(usageOf(undefined)).toBe(USAGE);
    expect(parseArgs(["--state", "s", "--root", "r", "ps"]).globals).toMatchObject({ state: `${process.cwd()}/s`, root: `${process.cwd()}/r` });
  });

  test("a container command that cannot run exits as docker's do: 127 missing, 126 not executable", () => {
    expect(execFailureCode('unable to start container process: exec: "nosuch": executable file not found in $PATH')).toBe(127);
    expect(execFailureCode('runc create failed: unable to start container process: exec: "/x": stat /x: no such file or directory')).toBe(127);
    expect(execFailureCode('unable to start container process: exec: "/etc/passwd": permission denied')).toBe(126);
    expect(execFailureCode("rootfs /r does not exist")).toBeUndefined();
  });

  test("stop and wait; --stop-signal and --stop-timeout are checked when run parses them", () => {
    expect(parseArgs(["stop", "-t", "3", "a", "b"]).command).toEqual({ name: "stop", timeout: 3, ids: ["a", "b"] });
    expect(parseArgs(["stop", "a"]).command).toEqual({ name: "stop", ids: ["a"] });
    expect(parseArgs(["wait", "a"]).command).toEqual({ name: "wait", ids: ["a"] });
    expect(parseArgs(["run", "--stop-signal", "SIGQUIT", "--stop-timeout", "30", "busybox"]).command).toMatchObject({ opts: { stopSignal: "SIGQUIT", stopTimeout: 30 } });
    expect(() => parseArgs(["run", "--stop-signal", "NOPE", "busybox"])).toThrow("invalid signal");
    expect(() => parseArgs(["stop", "-t", "soon", "a"])).toThrow("whole number of seconds");
  });

  test("network commands", () => {
    expect(parseArgs(["network", "create", "--subnet", "10.20.0.0/24", "--gateway", "10.20.0.1", "n1"]).command).toEqual({ name: "network-create", network: "n1", subnet: "10.20.0.0/24", gateway: "10.20.0.1" });
    expect(parseArgs(["network", "ls", "-q"]).command).toEqual({ name: "network-ls", quiet: true });
    expect(parseArgs(["network", "inspect", "a", "b"]).command).toEqual({ name: "network-inspect", networks: ["a", "b"] });
    expect(parseArgs(["network", "rm", "a"]).command).toEqual({ name: "network-rm", networks: ["a"] });
    expect(() => parseArgs(["network", "create", "-d", "macvlan", "x"])).toThrow("only the bridge driver");
    expect(() => parseArgs(["network", "frob"])).toThrow("unknown network command");
  });

  test("image commands, and docker's `image` forms", () => {
    expect(parseArgs(["pull", "--platform", "linux/amd64", "busybox"]).command).toEqual({ name: "pull", ref: "busybox", platform: "linux/amd64", quiet: false });
    expect(parseArgs(["image", "pull", "-q", "busybox"]).command).toEqual({ name: "pull", ref: "busybox", quiet: true });
    expect(parseArgs(["load", "-i", "/a.tar"]).command).toEqual({ name: "load", input: "/a.tar", quiet: false });
    expect(parseArgs(["save", "-o", "/a.tar", "a", "b"]).command).toEqual({ name: "save", output: "/a.tar", refs: ["a", "b"] });
    expect(parseArgs(["images", "-q"]).command).toEqual({ name: "images", quiet: true });
    expect(parseArgs(["image", "ls"]).command).toEqual({ name: "images", quiet: false });
    expect(parseArgs(["image", "inspect", "a"]).command).toEqual({ name: "image-inspect", refs: ["a"] });
    expect(parseArgs(["tag", "a", "b:1"]).command).toEqual({ name: "tag", source: "a", target: "b:1" });
    expect(parseArgs(["rmi", "-f", "a"]).command).toEqual({ name: "rmi", force: true, refs: ["a"] });
    expect(parseArgs(["image", "rm", "a"]).command).toEqual({ name: "rmi", force: false, refs: ["a"] });
    expect(parseArgs(["image", "prune", "-a"]).command).toEqual({ name: "image-prune", all: true });
    expect(parseArgs(["login", "-u", "me", "--password-stdin", "127.0.0.1:5000"]).command).toEqual({ name: "login", registry: "127.0.0.1:5000", username: "me", passwordStdin: true });
    expect(parseArgs(["logout", "r"]).command).toEqual({ name: "logout", registry: "r" });
    expect(parseArgs(["--insecure-registry", "reg.lan:5000", "pull", "x"], { BUNKER_INSECURE_REGISTRIES: "a,b" }).globals.insecureRegistries).toEqual(["reg.lan:5000", "a", "b"]);
  });

  test("exec, kill, rm, logs, ps", () => {
    expect(parseArgs(["exec", "-t", "c", "sh", "-c", "x"]).command).toEqual({ name: "exec", tty: true, detach: false, env: [], id: "c", args: ["sh", "-c", "x"] });
    expect(parseArgs(["kill", "-s", "SIGTERM", "c"]).command).toEqual({ name: "kill", signal: 15, all: false, ids: ["c"] });
    // docker's default, and several at once
    expect(parseArgs(["kill", "c", "d"]).command).toEqual({ name: "kill", signal: 9, all: false, ids: ["c", "d"] });
    expect(parseArgs(["rm", "-f", "a", "b"]).command).toEqual({ name: "rm", force: true, ids: ["a", "b"] });
    expect(parseArgs(["logs", "c"]).command).toEqual({ name: "logs", id: "c", follow: false, timestamps: false });
    expect(parseArgs(["logs", "-f", "--tail", "3", "-t", "--since", "10m", "--until", "2024-01-01T00:00:00Z", "c"]).command).toEqual({
      name: "logs", id: "c", follow: true, tail: 3, timestamps: true, since: "10m", until: "2024-01-01T00:00:00Z",
    });
    expect(parseArgs(["logs", "-n", "all", "c"]).command).toEqual({ name: "logs", id: "c", follow: false, timestamps: false });
    expect(() => parseArgs(["logs", "--tail", "x", "c"])).toThrow(/--tail "x" must be a number of lines or "all"/);
    expect(parseArgs(["ps", "-q"]).command).toEqual({ name: "ps", quiet: true, all: false });
    expect(parseArgs(["ps", "-a"]).command).toEqual({ name: "ps", quiet: false, all: true });
    expect(parseArgs(["start", "a", "b"]).command).toEqual({ name: "start", ids: ["a", "b"] });
    expect(parseArgs(["restart", "-t", "3", "a"]).command).toEqual({ name: "restart", timeout: 3, ids: ["a"] });
    expect(parseArgs(["run", "--restart", "on-failure:3", "-d", "busybox"]).command).toMatchObject({ name: "run", opts: { restart: "on-failure:3" } });
    expect(() => parseArgs(["run", "--restart", "sometimes", "busybox"])).toThrow("invalid restart policy");
    expect(() => parseArgs(["run", "--restart", "always", "--rm", "busybox"])).toThrow("--restart and --rm cannot be combined");
    expect(parseArgs([]).command).toEqual({ name: "help", topic: undefined });
  });

  test.each([
    [["run"], /an image \(or --rootfs DIR\)/],
    [["run", "--pull", "sometimes", "busybox"], /--pull must be/],
    [["run", "--rootfs", "/r", "--entrypoint", "x", "c", "sh"], /--entrypoint needs an image/],
    [["run", "--rootfs", "/r", "--name", "x", "c", "sh"], /not in --name/],
    [["run", "-e", "=x", "busybox"], /KEY=VALUE or KEY/],
    [["image", "frob"], /unknown image command/],
    [["save", "busybox"], /-o FILE/],
    [["login", "-p", "x", "--password-stdin", "r"], /cannot be combined/],
    [["run", "--rootfs", "/r", "c"], /command/],
    [["run", "--rootfs", "/r"], /container id/],
    [["run", "--rm", "-d", "--rootfs", "/r", "c", "sh"], /cannot be combined/],
    [["run", "--log", "/l", "--rootfs", "/r", "c", "sh"], /--detach/],
    [["run", "--env", "NOEQ", "--rootfs", "/r", "c", "sh"], /KEY=VALUE/],
    [["run", "--annotation", "noeq", "--rootfs", "/r", "c", "sh"], /--annotation "noeq" must be key=value/],
    [["run", "--annotation", "=v", "--rootfs", "/r", "c", "sh"], /must be key=value/],
    [["run", "--label", "=v", "--rootfs", "/r", "c", "sh"], /must be key=value/],
    [["run", "--bogus", "--rootfs", "/r", "c", "sh"], /unknown flag --bogus/],
    [["run", "--rootfs"], /needs a value/],
    [["kill", "-s", "NOPE", "c"], /invalid signal/],
    [["kill"], /a container id is required/],
    [["frobnicate"], /unknown command/],
    [["--rm", "ps"], /unknown flag/],
  ])("refuses %p", (argv, message) => {
    expect(() => parseArgs(argv)).toThrow(message);
    expect(() => parseArgs(argv)).toThrow(InvalidArgumentError);
  });
});

test("parseSignal", () => {
  expect(parseSignal("9")).toBe(9);
  expect(parseSignal("term")).toBe(15);
  expect(parseSignal("SIGUSR1")).toBe(10);
  expect(() => parseSignal("0")).toThrow(InvalidArgumentError);
  expect(() => parseSignal("65")).toThrow(InvalidArgumentError);
});

test("ps lines: labels sorted as k=v,... in the last column; none leaves no trailing space", () => {
  const tasks = [
    create(TaskInfoSchema, { id: "web", pid: 42, status: Status.RUNNING, runtime: "io.containerd.bunker.v1", labels: { tier: "front", app: "shop" } }),
    create(TaskInfoSchema, { id: "job", status: Status.STOPPED, exitStatus: 3, runtime: "io.containerd.runc.v2", image: "docker.io/library/busybox:latest", ports: ["8080->80/tcp"] }),
  ];
  expect(psLines(tasks)).toEqual([
    "ID    PID   STATUS    EXIT   RUNTIME                   IMAGE            PORTS          LABELS",
    "web   42    RUNNING          io.containerd.bunker.v1                                   app=shop,tier=front",
    "job   -     STOPPED   3      io.containerd.runc.v2     busybox:latest   8080->80/tcp",
  ]);
  expect(formatLabels({})).toBe("");
  expect(formatLabels({ b: "", a: "x=y" })).toBe("a=x=y,b=");
});
