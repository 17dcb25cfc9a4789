// The container operations around the loop, driven through the CLI with real runc, with and without
// a daemon: pause stops a counting loop and unpause resumes it (ps shows PAUSED), top lists the
// container's processes, stats --no-stream shows the memory its cgroup reports, cp copies files and
// directories both ways with docker's ownership and never through a hostile symlink, events is live,
// replays with --since and ends with exit 0 when the daemon stops; install writes the systemd unit.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chownSync, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BunkerEnv, until } from "../support/cli-harness.ts";
import { describeEachMode } from "../support/cli-modes.ts";
import { describeWith } from "../support/require.ts";

const COUNTER = `i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done`;

/** What docker stats shows as memory: the cgroup's usage less its inactive file pages (v1 or v2). */
function cgroupMemory(pid: number): number {
  const lines = readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n");
  const v1 = lines.find((l) => /^\d+:([^:]*,)?memory(,[^:]*)?:/.test(l));
  if (v1) {
    const dir = join("/sys/fs/cgroup/memory", v1.split(":")[2]!);
    const usage = Number(readFileSync(join(dir, "memory.usage_in_bytes"), "utf8"));
    const inactive = Number(/^total_inactive_file (\d+)$/m.exec(readFileSync(join(dir, "memory.stat"), "utf8"))![1]);
    return usage - inactive;
  }
  const dir = join("/sys/fs/cgroup", lines.find((l) => l.startsWith("0::"))!.slice(3));
  const usage = Number(readFileSync(join(dir, "memory.current"), "utf8"));
  const inactive = Number(/^inactive_file (\d+)$/m.exec(readFileSync(join(dir, "memory.stat"), "utf8"))![1]);
  return usage - inactive;
}

/** "20.5MiB" -> bytes. */
function parseBinarySize(text: string): number {
  const m = /^([\d.]+)(B|KiB|MiB|GiB|TiB)$/.exec(text);
  if (!m) throw new Error(`not a size: ${text}`);
  return Number(m[1]) * 1024 ** ["B", "KiB", "MiB", "GiB", "TiB"].indexOf(m[2]!);
}

describeWith(["root", "bin:runc", "bin:ps"], "bunker pause, top, stats, cp, events", () => {
  let env: BunkerEnv;
  beforeAll(async () => {
    env = await BunkerEnv.create("bunker-ops-");
  }, 60_000);
  afterAll(async () => {
    await env?.dispose();
  }, 60_000);

  describeEachMode(() => env, (mode) => {
    const id = `ops-${mode}`;
    const count = (): number => Number(readFileSync(join(env.rootfs, "tmp", `count`), "utf8").trim() || "0");

    test("pause freezes a counting loop (ps: PAUSED), unpause resumes it", async () => {
      expect((await env.run(["run", "-d", "--rootfs", env.rootfs, id, "sh", "-c", COUNTER])).code).toBe(0);
      await until(() => existsSync(join(env.rootfs, "tmp", "count")) && count() > 2, 10_000, "the loop to count");
      expect(await env.run(["pause", id])).toEqual({ code: 0, stdout: `${id}\n`, stderr: "" });
      expect((await env.run(["ps"])).stdout).toMatch(new RegExp(`^${id}\\s+\\d+\\s+PAUSED\\b`, "m"));
      const frozen = count();
      await Bun.sleep(500);
      expect(count()).toBe(frozen);
      expect(await env.run(["unpause", id])).toEqual({ code: 0, stdout: `${id}\n`, stderr: "" });
      await until(() => count() > frozen + 2, 10_000, "the loop to count again");
      expect((await env.run(["ps"])).stdout).toMatch(new RegExp(`^${id}\\s+\\d+\\s+RUNNING\\b`, "m"));
      // unpause of a running container is refused with the reason, and one line
      const again = await env.run(["unpause", id]);
      expect(again.code).toBe(1);
      expect(again.stderr.trim().split("\n")).toHaveLength(1);
      const ghost = await env.run(["pause", "ghost"]);
      expect([ghost.code, ghost.stderr]).toEqual([1, expect.stringContaining("ghost")]);
    }, 60_000);

    test("top lists the container's processes from the host's ps, default -ef and with options", async () => {
      const r = await env.run(["top", id]);
      expect(r.code).toBe(0);
      const [header, ...rows] = r.stdout.trimEnd().split("\n");
      expect(header).toMatch(/^UID\s+PID\s+PPID\b.*CMD$/);
      expect(rows.some((row) => row.includes("sh -c i=0; while true"))).toBe(true);
      // only the container's: every row is its shell, one of its sleeps, a sleep that exited and
      // is not reaped yet ("[sleep] <defunct>"), or a fork caught before its exec
      expect(rows.filter((row) => !/sh -c i=0|sleep 0\.05|\[(sh|sleep)\]/.test(row))).toEqual([]);
      // ps lists by pid, and pids wrap (pid_max 32768 here), so the shell need not come first
      const pidComm = await env.run(["top", id, "-o", "pid,comm"]);
      expect(pidComm.stdout).toMatch(/^\s*PID COMMAND\n/);
      expect(pidComm.stdout).toMatch(/^\s*\d+ sh$/m);
      const noPid = await env.run(["top", id, "-o", "comm"]);
      expect([noPid.code, noPid.stderr]).toEqual([1, expect.stringContaining("no PID column")]);
    }, 60_000);

    test("stats --no-stream: one sample with CPU %, the cgroup's memory, pids", async () => {
      const mem = `${id}-mem`;
      // 24 MiB in the container's /dev/shm: charged to its cgroup, and not inactive file cache
      const fill = "dd if=/dev/zero of=/dev/shm/fill bs=1M count=24 2>/dev/null; while true; do sleep 1; done";
      expect((await env.run(["run", "-d", "--rootfs", env.rootfs, mem, "sh", "-c", fill])).code).toBe(0);
      try {
        const pid = Number(/^\S+\s+(\d+)/m.exec((await env.run(["ps"])).stdout.split("\n").find((l) => l.startsWith(`${mem} `))!)![1]);
        await until(() => cgroupMemory(pid) > 24 * 1024 * 1024, 10_000, "the fill to be charged");
        const r = await env.run(["stats", "--no-stream", mem]);
        const expected = cgroupMemory(pid);
        expect(r.code).toBe(0);
        const lines = r.stdout.trimEnd().split("\n");
        expect(lines[0]).toMatch(/^CONTAINER ID\s+CPU %\s+MEM USAGE \/ LIMIT\s+MEM %\s+NET I\/O\s+BLOCK I\/O\s+PIDS$/);
        expect(lines).toHaveLength(2);
        const cells = lines[1]!.split(/\s{2,}|\s+\/\s+/);
        // id, cpu, usage, limit, mem %, net, block read, block write, pids
        expect(cells[0]).toBe(mem);
        expect(cells[1]).toMatch(/^\d+\.\d\d%$/);
        expect(Math.abs(parseBinarySize(cells[2]!) - expected)).toBeLessThan(2 * 1024 * 1024);
        expect(cells[4]).toMatch(/^\d+\.\d\d%$/);
        expect(cells.at(-1)).toMatch(/^[12]$/);
        // without names: the running containers, both of ours
        const all = await env.run(["stats", "--no-stream"]);
        expect(all.stdout.split("\n").slice(1).filter(Boolean).map((l) => l.split(/\s+/)[0]).sort()).toEqual([id, mem].sort());
      } finally {
        await env.run(["rm", "-f", mem]);
      }
    }, 60_000);

    test("stats without --no-stream refreshes every second until Ctrl-C (SIGINT), then exits 0", async () => {
      const proc = Bun.spawn([env.bunker, ...env.globals(), "stats", id], { env: env.spawnEnv(), stdin: "ignore", stdout: "pipe", stderr: "pipe" });
      const output = new Response(proc.stdout).text();
      await Bun.sleep(3_300);
      proc.kill("SIGINT");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 5_000);
      const code = await proc.exited;
      clearTimeout(timer);
      const frames = (await output).split("\n").filter((l) => l.startsWith("CONTAINER ID"));
      expect(code).toBe(0);
      expect(frames.length).toBeGreaterThanOrEqual(2);
      expect(frames.length).toBeLessThanOrEqual(4);
      expect((await output).split("\n").filter((l) => l.startsWith(`${id} `)).every((l) => /^\S+\s+\d+\.\d\d%/.test(l))).toBe(true);
    }, 60_000);

    test("cp: files and directories both ways, docker's ownership, never through a hostile symlink", async () => {
      const work = join(env.dir, `cp-${mode}`);
      const outside = join(work, "outside");
      mkdirSync(join(work, "tree", "sub"), { recursive: true });
      mkdirSync(outside);
      writeFileSync(join(outside, "secret"), "host secret");
      writeFileSync(join(work, "tree", "a.txt"), "alpha", { mode: 0o640 });
      writeFileSync(join(work, "tree", "sub", "b"), "beta");
      symlinkSync("a.txt", join(work, "tree", "link"));
      chownSync(join(work, "tree", "a.txt"), 1234, 4321);
      // into the container, a directory: root-owned inside, modes and links kept
      expect(await env.run(["cp", join(work, "tree"), `${id}:/tmp/`])).toEqual({ code: 0, stdout: "", stderr: "" });
      const inside = join(env.rootfs, "tmp", "tree");
      expect(readFileSync(join(inside, "sub", "b"), "utf8")).toBe("beta");
      expect(statSync(join(inside, "a.txt"))).toMatchObject({ uid: 0, gid: 0 });
      expect(statSync(join(inside, "a.txt")).mode & 0o777).toBe(0o640);
      expect(readlinkSync(join(inside, "link"))).toBe("a.txt");
      // -a keeps the source's owner
      expect((await env.run(["cp", "-a", join(work, "tree", "a.txt"), `${id}:/tmp/kept.txt`])).code).toBe(0);
      expect(statSync(join(env.rootfs, "tmp", "kept.txt"))).toMatchObject({ uid: 1234, gid: 4321 });
      // the process inside sees what was copied
      const seen = await env.run(["exec", id, "cat", "/tmp/tree/sub/b"]);
      expect(seen.stdout).toBe("beta");
      // out of the container: a file into a directory, a directory as a new name, and its contents with /.
      expect((await env.run(["cp", `${id}:/etc/passwd`, work + "/"])).code).toBe(0);
      expect(readFileSync(join(work, "passwd"), "utf8")).toBe(readFileSync(join(env.rootfs, "etc", "passwd"), "utf8"));
      expect((await env.run(["cp", `${id}:/tmp/tree`, join(work, "back")])).code).toBe(0);
      expect(readFileSync(join(work, "back", "sub", "b"), "utf8")).toBe("beta");
      expect(lstatSync(join(work, "back", "link")).isSymbolicLink()).toBe(true);
      mkdirSync(join(work, "merged"));
      expect((await env.run(["cp", `${id}:/tmp/tree/.`, join(work, "merged")])).code).toBe(0);
      expect(readFileSync(join(work, "merged", "a.txt"), "utf8")).toBe("alpha");
      expect((await env.run(["cp", "-a", `${id}:/tmp/kept.txt`, join(work, "kept-out")])).code).toBe(0);
      expect(statSync(join(work, "kept-out"))).toMatchObject({ uid: 1234, gid: 4321 });
      expect((await env.run(["cp", `${id}:/tmp/kept.txt`, join(work, "plain-out")])).code).toBe(0);
      expect(statSync(join(work, "plain-out"))).toMatchObject({ uid: 0, gid: 0 });
      // hostile: links in the container pointing at the host's `outside`, absolute and climbing
      symlinkSync(outside, join(env.rootfs, `evil-${mode}`));
      symlinkSync(`../../../../../../../../..${outside}`, join(env.rootfs, "tmp", `climb-${mode}`));
      for (const link of [`/evil-${mode}`, `/tmp/climb-${mode}`]) {
        const read = await env.run(["cp", `${id}:${link}/secret`, join(work, "stolen")]);
        expect(read.code).toBe(1);
        expect(read.stderr).toContain("no such file or directory");
        expect(existsSync(join(work, "stolen"))).toBe(false);
        const write = await env.run(["cp", join(work, "tree", "sub", "b"), `${id}:${link}/planted`]);
        expect(write.code).toBe(1);
        expect(write.stderr.trim().split("\n")).toHaveLength(1);
      }
      // a destination that is a link is followed as the container would: to a path inside it
      // (here a missing one: refused), never to the host's file of that name
      symlinkSync(join(outside, "secret"), join(env.rootfs, "tmp", `victim-${mode}`));
      const onto = await env.run(["cp", join(work, "tree", "sub", "b"), `${id}:/tmp/victim-${mode}`]);
      expect([onto.code, onto.stderr]).toEqual([1, `bunker: ${outside}: no such directory\n`]);
      expect(readFileSync(join(outside, "secret"), "utf8")).toBe("host secret");
      // a directory copied over a tree whose entry is a link to the host replaces the link
      mkdirSync(join(env.rootfs, "tmp", `over-${mode}`, "tree"), { recursive: true });
      symlinkSync(outside, join(env.rootfs, "tmp", `over-${mode}`, "tree", "sub"));
      expect((await env.run(["cp", join(work, "tree"), `${id}:/tmp/over-${mode}`])).code).toBe(0);
      expect(lstatSync(join(env.rootfs, "tmp", `over-${mode}`, "tree", "sub")).isDirectory()).toBe(true);
      expect(readFileSync(join(env.rootfs, "tmp", `over-${mode}`, "tree", "sub", "b"), "utf8")).toBe("beta");
      expect(Bun.spawnSync(["ls", "-A", outside]).stdout.toString()).toBe("secret\n");
      // clear errors
      const missing = await env.run(["cp", `${id}:/no/such`, work]);
      expect([missing.code, missing.stderr]).toEqual([1, "bunker: /no/such: no such file or directory in the container\n"]);
      const ghost = await env.run(["cp", "ghost:/etc/passwd", work]);
      expect(ghost.code).toBe(1);
      expect(ghost.stderr).toContain("ghost");
      const both = await env.run(["cp", work, join(work, "x")]);
      expect([both.code, both.stderr]).toEqual([1, "bunker: cp: one of SRC and DST must be CONTAINER:PATH\n"]);
      // cp leaves a running container running
      expect((await env.run(["ps"])).stdout).toMatch(new RegExp(`^${id}\\s+\\d+\\s+RUNNING\\b`, "m"));
    }, 60_000);

    test("cp of a stopped container: works while its rootfs is mounted, says why when it is not", async () => {
      const stopped = `${id}-stopped`;
      expect((await env.run(["run", "-d", "--rootfs", env.rootfs, stopped, "true"])).code).toBe(0);
      try {
        await env.run(["wait", stopped]);
        expect((await env.run(["cp", `${stopped}:/etc/passwd`, join(env.dir, `p-${mode}`)])).code).toBe(0);
        const rootfs = join(env.state, env.namespace, stopped, "rootfs");
        expect(Bun.spawnSync(["umount", rootfs]).exitCode).toBe(0);
        const r = await env.run(["cp", `${stopped}:/etc/passwd`, join(env.dir, `q-${mode}`)]);
        expect([r.code, r.stderr]).toEqual([1, `bunker: container ${stopped} has no root filesystem to copy with: it is stopped and its shim has unmounted it\n`]);
      } finally {
        await env.run(["rm", "-f", stopped]);
      }
    }, 60_000);
    return async () => await env.run(["rm", "-f", id]);
  });

  test("events: refused without a daemon; live with one (nothing from before), --since replays, exit 0 when the daemon stops", async () => {
    const none = await env.run(["events"]);
    expect([none.code, none.stderr]).toEqual([1, "bunker: events need a running daemon (bunker daemon)\n"]);
    const daemon = await env.startDaemon();
    const before = `ev-before`;
    const after = `ev-after`;
    let events: Bun.Subprocess<"ignore", "pipe", "pipe"> | undefined;
    try {
      expect((await env.run(["run", "-d", "--rootfs", env.rootfs, before, "sleep", "60"])).code).toBe(0);
      await Bun.sleep(200);
      events = Bun.spawn([env.bunker, ...env.globals(), "events"], { env: env.spawnEnv(), stdin: "ignore", stdout: "pipe", stderr: "pipe" });
      // the stream has asked for the daemon's newest event once its first poll is waiting
      await Bun.sleep(1_000);
      expect((await env.run(["run", "-d", "--rootfs", env.rootfs, after, "sleep", "60"])).code).toBe(0);
      const replay = await env.run(["events", "--since", "5m", "--until", "0s", "--filter", "event=start"]);
      expect(replay.code).toBe(0);
      const replayed = replay.stdout.trim().split("\n").map((l) => JSON.parse(l) as { topic: string; event: { containerId: string } });
      expect(replayed.map((e) => [e.topic, e.event.containerId])).toEqual([["/tasks/start", before], ["/tasks/start", after]]);
      daemon.proc.kill("SIGTERM");
      await daemon.proc.exited;
      const timer = setTimeout(() => events?.kill("SIGKILL"), 10_000);
      const [code, out, err] = await Promise.all([events.exited, new Response(events.stdout).text(), new Response(events.stderr).text()]);
      clearTimeout(timer);
      expect({ code, err }).toEqual({ code: 0, err: "" });
      const lines = out.trim().split("\n").map((l) => JSON.parse(l) as { topic: string; event: { containerId: string } });
      expect(lines.some((e) => e.topic === "/tasks/start" && e.event.containerId === after)).toBe(true);
      expect(lines.filter((e) => e.event.containerId === before)).toEqual([]);
    } finally {
      events?.kill("SIGKILL");
      daemon.proc.kill("SIGKILL");
      await env.run(["rm", "-f", before, after]);
    }
  }, 60_000);

  test("install writes the systemd unit for this daemon; info names it", async () => {
    const prefix = join(env.dir, "prefix");
    const r = await env.run(["install", "--prefix", prefix]);
    expect(r.code).toBe(0);
    const unitFile = join(prefix, "lib/systemd/system/bunker.service");
    expect(r.stdout).toContain(`installed ${unitFile}\n`);
    const unit = readFileSync(unitFile, "utf8");
    expect(unit).toContain(`\nExecStart=${join(prefix, "bin/bunker")} --root ${env.root} --state ${env.state} --address ${env.address} daemon\n`);
    for (const line of ["Delegate=yes", "KillMode=process", "Restart=always", "Type=simple"]) expect(unit).toContain(`\n${line}\n`);
    const info = await env.run(["info"]);
    expect(info.stdout).toMatch(/^Daemon: (listening|not running)/m);
    expect(info.stdout).toMatch(/^Service unit: /m);
    expect(info.stdout).toMatch(/^Cgroups: v[12]/m);
  }, 120_000);
});
