// A bunker of a test's own (its --root, --state and --address under one temp dir) driven inside a
// private network and mount namespace (netns-agent.ts), with the offline busybox image loaded:
// what every `--net bridge` test through the CLI starts from.
import { expect } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { bunkerBinDir } from "./cli-harness.ts";
import { NetnsAgent, type RunResult } from "./netns-agent.ts";

const REPO = join(import.meta.dir, "../..");

export class NetworkBunker {
  private constructor(
    readonly agent: NetnsAgent,
    readonly dir: string,
    /** The bunker binary and its globals: prefix of every command line. */
    readonly bunker: string[],
  ) {}

  static async start(tmpPrefix: string): Promise<NetworkBunker> {
    const dir = mkdtempSync(tmpPrefix);
    const bin = await bunkerBinDir();
    const bunker = [join(bin, "bunker"), "--root", join(dir, "root"), "--state", join(dir, "state"), "--address", join(dir, "bunker.sock")];
    const agent = await NetnsAgent.start({ PATH: `${bin}:${process.env.PATH}:/usr/sbin:/sbin` });
    const env = new NetworkBunker(agent, dir, bunker);
    const archive = join(dir, "busybox.tar");
    const built = Bun.spawnSync([process.execPath, join(REPO, "scripts/busybox-image.ts"), archive]);
    expect(built.exitCode).toBe(0);
    await env.ok("load", "-q", "-i", archive);
    return env;
  }

  /** `bunker ARGS…` inside the namespace. */
  async run(...args: string[]): Promise<RunResult> {
    return await this.agent.run(...this.bunker, ...args);
  }

  /** The same, its stdout; a non-zero exit throws with bunker's stderr. */
  async ok(...args: string[]): Promise<string> {
    const r = await this.run(...args);
    if (r.code !== 0) throw new Error(`bunker ${args.join(" ")}: exit ${r.code}: ${r.stderr}`);
    return r.stdout;
  }

  /** Removes the named containers, ends the agent (and so the namespace) and deletes the temp dir. */
  async stop(containers: string[] = []): Promise<void> {
    if (containers.length > 0) await this.run("rm", "-f", ...containers).catch(() => undefined);
    await this.agent.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
