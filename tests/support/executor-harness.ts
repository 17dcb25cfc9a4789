// Set-up for the executor's integration tests: one BunkerEnv (temp root/state/rootfs) per test,
// and the backend under test, either a `bunker daemon` (restarted with kill -9, by pid) or an
// embedded runtime in this process (restarted by closing it and starting another on the same
// dirs). Everything started here is ended by pid.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import pino from "pino";
import { type Api, managerApi } from "../../src/api/client.ts";
import { Executor, startEmbeddedRuntime, type EmbeddedRuntime } from "../../src/executor/index.ts";
import { Bunker } from "../../src/gen/bunker/v1/api_pb.ts";
import { generateSpec } from "../../src/oci/spec.ts";
import { type Client, dial } from "../../src/ttrpc/index.ts";
import { allProcs, cmdline, killSame, waitGone } from "./procs.ts";
import { BunkerEnv, bunkerBinDir } from "./cli-harness.ts";

export type BackendKind = "daemon" | "embedded";

/** A callback output that keeps the text and tells when it ended. */
export interface Collected {
  cb: (chunk: Uint8Array | null) => void;
  text(): string;
  ends(): number;
  done: Promise<void>;
}

export function collect(): Collected {
  const dec = new TextDecoder();
  let text = "";
  let ends = 0;
  const { promise: done, resolve } = Promise.withResolvers<void>();
  return {
    cb: (chunk) => {
      if (chunk === null) {
        ends++;
        resolve();
      } else text += dec.decode(chunk, { stream: true });
    },
    text: () => text,
    ends: () => ends,
    done,
  };
}

export class ExecutorHarness {
  private daemon: Bun.Subprocess | undefined;
  embedded: EmbeddedRuntime | undefined;
  private readonly executors: Executor[] = [];
  private readonly clients: Client[] = [];
  readonly rootDir: string;
  readonly embeddedAddress: string;
  readonly configPath: string;

  private constructor(
    readonly env: BunkerEnv,
    readonly kind: BackendKind,
    readonly runtime: string,
  ) {
    this.rootDir = join(env.dir, "executor");
    this.embeddedAddress = join(env.dir, "embedded.sock");
    this.configPath = join(env.dir, "runtimes.toml");
    // The executor resolves "test" through a runtime config, so runtime options reach the shim.
    writeFileSync(this.configPath, `default_runtime_name = "test"\n[runtimes.test]\nruntime_type = "${runtime}"\n[runtimes.test.options]\nBinaryName = "/usr/sbin/runc"\n`);
  }

  static async create(kind: BackendKind, runtime: string): Promise<ExecutorHarness> {
    const h = new ExecutorHarness(await BunkerEnv.create("bunker-executor-"), kind, runtime);
    await h.startBackend();
    return h;
  }

  get namespace(): string {
    return this.env.namespace;
  }

  async startBackend(): Promise<void> {
    if (this.kind === "daemon") {
      this.daemon = (await this.env.startDaemon()).proc;
      return;
    }
    this.embedded = await startEmbeddedRuntime({
      root: this.env.root,
      state: this.env.state,
      address: this.embeddedAddress,
      selfDir: await bunkerBinDir(),
      logger: pino({ level: "silent" }),
    });
  }

  /** The daemon SIGKILLed (by pid), or the embedded runtime closed: shims and containers stay. */
  async stopBackend(): Promise<void> {
    if (this.daemon) {
      this.daemon.kill("SIGKILL");
      await this.daemon.exited;
      this.daemon = undefined;
    }
    this.embedded?.close();
    this.embedded = undefined;
  }

  executor(exits: string[]): Executor {
    const e = new Executor({
      ...(this.kind === "daemon" ? { address: this.env.address } : { manager: this.embedded!.manager }),
      namespace: this.namespace,
      rootDir: this.rootDir,
      imageRoot: this.env.root,
      runtime: "test",
      runtimeConfig: this.configPath,
      exitHandler: { handleExitEvent: (id) => void exits.push(id) },
      logger: pino({ level: "silent" }),
    });
    this.executors.push(e);
    return e;
  }

  /** The bunker.v1 API of the current backend, to set up containers behind the executor's back. */
  async api(): Promise<Api> {
    if (this.kind === "embedded") {
      return managerApi(this.embedded!.manager, { embedded: false });
    }
    const c = await dial(this.env.address);
    this.clients.push(c);
    return c.service(Bunker);
  }

  /** An OCI spec running `sh -c script` in the test's busybox rootfs (absolute root.path, as the seed's plugins). */
  spec(id: string, script: string): object {
    const s = generateSpec({ namespace: this.namespace, id, args: ["sh", "-c", script] });
    return { ...s, root: { path: this.env.rootfs, readonly: false } };
  }

  /** Lets a container waiting with waitFor(name) go on. */
  release(name: string): void {
    writeFileSync(join(this.env.rootfs, `go-${name}`), "");
  }

  async dispose(): Promise<void> {
    await Promise.all(this.executors.map((e) => e.close()));
    for (const c of this.clients) c.close();
    this.embedded?.close();
    await this.env.dispose();
    // Shims of the embedded runtime carry its socket in their argv, not the daemon's.
    const shims = allProcs().filter((p) => cmdline(p.pid).includes(this.embeddedAddress));
    for (const s of shims) killSame(s, "SIGKILL");
    await waitGone(shims, 5_000);
  }
}

/** Shell that waits until the host released `name` (see ExecutorHarness.release). */
export function waitFor(name: string): string {
  return `while [ ! -e /go-${name} ]; do sleep 0.05; done`;
}
