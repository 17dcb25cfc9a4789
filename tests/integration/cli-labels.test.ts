// Labels and annotations through `bunker`: run --label is kept in the bundle and shown by ps, also
// after the daemon was killed and restarted; run --annotation reaches the bundle's config.json,
// where the shim's start reads its group (CRI sandbox id, runc group); run --runtime NAME is looked
// up in --runtime-config. Each runtime: Debian's Go shim and ours.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describeWith } from "../support/require.ts";
import { BunkerEnv, runtimes, until } from "../support/cli-harness.ts";

/** ps rows by id: status and the LABELS column. */
function psLabels(stdout: string): Map<string, { status: string; labels: string }> {
  const out = new Map<string, { status: string; labels: string }>();
  const [header, ...rows] = stdout.split("\n").filter(Boolean);
  const at = header?.indexOf("LABELS") ?? -1;
  expect(at).toBeGreaterThan(0);
  for (const row of rows) {
    const [id, , status] = row.split(/\s+/);
    out.set(id!, { status: status!, labels: row.slice(at).trim() });
  }
  return out;
}

for (const runtime of runtimes()) {
  describeWith(["root", "bin:runc", "bin:containerd-shim-runc-v2"], `bunker labels and annotations (${runtime})`, () => {
    let env: BunkerEnv;
    const R = ["--runtime", runtime];
    const sleeper = ["sh", "-c", 'trap "exit 0" TERM; while true; do sleep 0.05; done'];
    beforeAll(async () => {
      env = await BunkerEnv.create();
    }, 60_000);
    afterAll(async () => {
      await env?.dispose();
    }, 60_000);

    test("run --label: shown by ps, kept across a daemon killed with SIGKILL and restarted", async () => {
      let daemon = await env.startDaemon();
      try {
        const r = await env.run(["run", "-d", ...R, "--label", "app=shop", "-l", "tier=front", "-l", "note=a=b", "--rootfs", env.rootfs, "lab1", ...sleeper]);
        expect(r).toEqual({ code: 0, stdout: "", stderr: "" });
        expect(await env.run(["run", "-d", ...R, "--rootfs", env.rootfs, "lab2", ...sleeper])).toMatchObject({ code: 0 });
        const want = new Map([
          ["lab1", { status: "RUNNING", labels: "app=shop,note=a=b,tier=front" }],
          ["lab2", { status: "RUNNING", labels: "" }],
        ]);
        expect(psLabels((await env.run(["ps", "-a"])).stdout)).toEqual(want);

        daemon.proc.kill("SIGKILL");
        await daemon.proc.exited;
        // No daemon: the CLI reloads the bundles in-process.
        expect(psLabels((await env.run(["ps", "-a"])).stdout)).toEqual(want);
        daemon = await env.startDaemon();
        expect(psLabels((await env.run(["ps", "-a"])).stdout)).toEqual(want);
        expect(await env.run(["rm", "-f", "lab1", "lab2"])).toMatchObject({ code: 0, stderr: "" });
      } finally {
        daemon.proc.kill("SIGKILL");
        await daemon.proc.exited;
      }
      expect(env.leftovers()).toEqual([]);
    }, 90_000);

    test("run --annotation: equal sandbox ids (or runc group) share one shim, different ones do not", async () => {
      const pod = `pod-a-${env.namespace}`;
      const other = `pod-b-${env.namespace}`;
      const runs: [string, string][] = [
        ["g1", `io.kubernetes.cri.sandbox-id=${pod}`],
        ["g2", `io.kubernetes.cri.sandbox-id=${pod}`],
        ["g3", `io.kubernetes.cri.sandbox-id=${other}`],
        // runc's own group annotation names the same group as g1's sandbox id
        ["g4", `io.containerd.runc.v2.group=${pod}`],
      ];
      const before = new Set(env.shims().map((s) => s.pid));
      try {
        for (const [id, a] of runs) {
          const r = await env.run(["run", "-d", ...R, "--annotation", a, "--annotation", "example.com/x=1", "--rootfs", env.rootfs, id, ...sleeper]);
          expect(r).toEqual({ code: 0, stdout: "", stderr: "" });
        }
        const bundle = (id: string): string => join(env.state, env.namespace, id);
        for (const [id, a] of runs) {
          const [k, v] = a.split("=") as [string, string];
          const spec = JSON.parse(readFileSync(join(bundle(id), "config.json"), "utf8")) as { annotations?: Record<string, string> };
          expect(spec.annotations).toEqual({ [k]: v, "example.com/x": "1" });
        }
        const address = (id: string): string => readFileSync(join(bundle(id), "address"), "utf8").trim();
        expect(address("g2")).toBe(address("g1"));
        expect(address("g4")).toBe(address("g1"));
        expect(address("g3")).not.toBe(address("g1"));
        // one process per group: the shims this test started
        await until(() => env.shims().filter((s) => !before.has(s.pid) && s.state !== "Z").length === 2, 10_000, "two shims");
        const ps = psLabels((await env.run(["ps", "-a"])).stdout);
        for (const [id] of runs) expect(ps.get(id)?.status).toBe("RUNNING");
      } finally {
        expect(await env.run(["rm", "-f", ...runs.map(([id]) => id)])).toMatchObject({ code: 0, stderr: "" });
      }
      expect(env.leftovers()).toEqual([]);
    }, 90_000);

    test("--runtime-config: run uses the config's default runtime or a named one; an unknown name creates nothing", async () => {
      const config = join(env.dir, "runtimes.toml");
      writeFileSync(
        config,
        `default_runtime_name = "mine"\n\n[runtimes.mine]\nruntime_type = "${runtime}"\n\n[runtimes.mine.options]\nSystemdCgroup = false\n\n[runtimes.other]\nruntime_type = "${runtime}"\n`,
      );
      const C = ["--runtime-config", config];
      expect(await env.run([...C, "run", "--rm", "--rootfs", env.rootfs, "cfg1", "echo", "default"])).toEqual({ code: 0, stdout: "default\n", stderr: "" });
      expect(await env.run([...C, "run", "--rm", "--runtime", "other", "--rootfs", env.rootfs, "cfg2", "echo", "named"])).toEqual({ code: 0, stdout: "named\n", stderr: "" });
      expect(await env.run([...C, "run", "-d", "--label", "via=config", "--rootfs", env.rootfs, "cfg3", ...sleeper])).toMatchObject({ code: 0 });
      const row = (await env.run(["ps", "-a"])).stdout.split("\n").find((l) => l.startsWith("cfg3 "));
      expect(row).toMatch(new RegExp(`RUNNING\\s+${runtime.replaceAll(".", "\\.")}\\s+via=config$`));
      expect(await env.run(["rm", "-f", "cfg3"])).toMatchObject({ code: 0 });
      const bad = await env.run([...C, "run", "--runtime", "nope", "--rootfs", env.rootfs, "cfg4", "true"]);
      expect(bad.code).toBe(125);
      expect(bad.stderr).toBe(`bunker: runtime "nope" is not configured (have bunker, runc, mine, other)\n`);
      expect(env.leftovers()).toEqual([]);
    }, 90_000);

    test('shim_group = "container" in the runtime config: one shim per container where the shim would share', async () => {
      const config = join(env.dir, "grouped.toml");
      writeFileSync(config, `shim_group = "container"\n\n[runtimes.t]\nruntime_type = "${runtime}"\n`);
      const T = ["--runtime", "t"];
      const address = (id: string): string => readFileSync(join(env.state, env.namespace, id, "address"), "utf8").trim();
      const ids = ["sg1", "sg2", "sg3", "sg4"];
      try {
        for (const id of ["sg1", "sg2"]) {
          expect(await env.run(["--runtime-config", config, "run", "-d", ...T, "--rootfs", env.rootfs, id, ...sleeper])).toMatchObject({ code: 0, stderr: "" });
        }
        // sg3 names its group itself: the config's default does not override it
        expect(
          await env.run(["--runtime-config", config, "run", "-d", ...T, "--annotation", "io.kubernetes.cri.sandbox-id=p1", "--rootfs", env.rootfs, "sg3", ...sleeper]),
        ).toMatchObject({ code: 0, stderr: "" });
        expect(await env.run(["run", "-d", ...R, "--annotation", "io.kubernetes.cri.sandbox-id=p1", "--rootfs", env.rootfs, "sg4", ...sleeper])).toMatchObject({ code: 0, stderr: "" });
        const spec = (id: string): unknown => JSON.parse(readFileSync(join(env.state, env.namespace, id, "config.json"), "utf8")).annotations;
        expect(spec("sg1")).toEqual({ "io.containerd.bunker.v1.group": "container" });
        expect(spec("sg3")).toEqual({ "io.kubernetes.cri.sandbox-id": "p1" });
        expect(address("sg1")).not.toBe(address("sg2"));
        expect(address("sg3")).toBe(address("sg4"));
        expect(new Set(ids.map(address)).size).toBe(3);
      } finally {
        await env.run(["rm", "-f", ...ids]);
      }
      expect((await env.run(["ps", "-a", "-q"])).stdout).toBe("");
      expect(env.leftovers()).toEqual([]);
    }, 90_000);
  });
}
