// A test's private "host": a Bun process started under `unshare --net --mount` that runs the
// network code (and any command) on a test's behalf, so bridges, veths, iptables rules and netns
// mounts are made in a network and mount namespace that die with it and never touch the
// machine's own. Run as a script it is the agent (JSON lines on stdin, answers on stdout);
// imported, it is the client (`NetnsAgent.start()`), which tests call like the library itself.
// Everything the agent starts in the background it ends by pid when its stdin closes.
import { spawnTracked } from "../../src/sys/children.ts";

type Request = { id: number; op: string; args: unknown[] };
type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; name: string; message: string };

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

const AGENT_PATH = import.meta.path;

export class NetnsAgent {
  private nextId = 1;
  private readonly waiting = new Map<number, (r: Reply) => void>();
  private constructor(private readonly proc: ReturnType<typeof spawnTracked<"pipe", "pipe", "inherit">>) {
    void this.readReplies();
  }

  /** The agent's pid (its netns is /proc/PID/ns/net). */
  get pid(): number {
    return this.proc.pid;
  }

  static async start(env: Record<string, string> = {}): Promise<NetnsAgent> {
    const proc = spawnTracked(["unshare", "--net", "--mount", "--propagation", "private", "--", process.execPath, AGENT_PATH], {
      stdin: "pipe", stdout: "pipe", stderr: "inherit", env: { ...process.env, ...env },
    });
    const agent = new NetnsAgent(proc);
    await agent.call("ready");
    return agent;
  }

  private async readReplies(): Promise<void> {
    let buffered = "";
    const decoder = new TextDecoder();
    for await (const chunk of this.proc.stdout) {
      buffered += decoder.decode(chunk, { stream: true });
      for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
        const reply = JSON.parse(buffered.slice(0, nl)) as Reply;
        buffered = buffered.slice(nl + 1);
        this.waiting.get(reply.id)?.(reply);
        this.waiting.delete(reply.id);
      }
    }
    for (const [id, resolve] of this.waiting) resolve({ id, ok: false, name: "Error", message: "the netns agent exited" });
  }

  /** Calls `op` in the agent; an error there is rethrown here with its class name and message. */
  async call<T = unknown>(op: string, ...args: unknown[]): Promise<T> {
    const id = this.nextId++;
    const reply = await new Promise<Reply>((resolve) => {
      this.waiting.set(id, resolve);
      this.proc.stdin.write(`${JSON.stringify({ id, op, args } satisfies Request)}\n`);
      void this.proc.stdin.flush();
    });
    if (reply.ok) return reply.value as T;
    const err = new Error(reply.message);
    err.name = reply.name;
    throw err;
  }

  /** Runs argv in the agent's namespaces and waits for it. */
  run(...argv: string[]): Promise<RunResult> {
    return this.call<RunResult>("run", argv);
  }

  /** Starts argv in the background in the agent's namespaces; returns its pid. */
  spawn(...argv: string[]): Promise<number> {
    return this.call<number>("spawn", argv);
  }

  kill(pid: number): Promise<void> {
    return this.call("kill", pid);
  }

  async stop(): Promise<void> {
    try {
      await this.proc.stdin.end();
    } catch {
      // already gone
    }
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), 10_000);
    await this.proc.exited;
    clearTimeout(timer);
  }
}

async function serve(): Promise<void> {
  const network = await import("../../src/network/index.ts");
  const children = new Map<number, ReturnType<typeof spawnTracked>>();
  let store: InstanceType<typeof network.NetworkStore> | undefined;
  const need = () => {
    if (!store) throw new Error("init first");
    return store;
  };
  const ops: Record<string, (...args: never[]) => unknown> = {
    ready: () => Bun.spawnSync(["ip", "link", "set", "lo", "up"]).exitCode,
    init: (root: string, opts: Record<string, unknown> = {}) => {
      store = new network.NetworkStore(root, opts);
    },
    createNetns: (pin: string) => network.createNetns(pin, need().cni),
    removeNetns: (pin: string) => network.removeNetns(pin),
    attach: (req: Parameters<typeof network.attach>[1]) => network.attach(need(), req),
    detach: (id: string, opts?: Parameters<typeof network.detach>[2]) => network.detach(need(), id, opts),
    attachments: (id: string) => network.attachments(need(), id),
    createNetwork: (name: string, opts?: Parameters<InstanceType<typeof network.NetworkStore>["create"]>[1]) => need().create(name, opts),
    removeNetwork: (name: string) => need().remove(name),
    inspectNetwork: (name: string) => need().inspect(name),
    run: (argv: string[]) => {
      const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe", timeout: 30_000 });
      return { code: r.exitCode ?? 128 + 9, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
    },
    spawn: (argv: string[]) => {
      const child = spawnTracked(argv, { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
      children.set(child.pid, child);
      return child.pid;
    },
    kill: async (pid: number) => {
      const child = children.get(pid);
      if (!child) return;
      child.kill("SIGKILL");
      await child.exited;
      children.delete(pid);
    },
  };
  let buffered = "";
  const decoder = new TextDecoder();
  const pending: Promise<void>[] = [];
  for await (const chunk of Bun.stdin.stream()) {
    buffered += decoder.decode(chunk, { stream: true });
    for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
      const req = JSON.parse(buffered.slice(0, nl)) as Request;
      buffered = buffered.slice(nl + 1);
      // Requests run concurrently (a test may race two attaches); replies carry their id.
      pending.push((async () => {
        let reply: Reply;
        try {
          const fn = ops[req.op];
          if (!fn) throw new Error(`unknown op ${req.op}`);
          reply = { id: req.id, ok: true, value: (await (fn as (...a: unknown[]) => unknown)(...req.args)) ?? null };
        } catch (err) {
          reply = { id: req.id, ok: false, name: (err as Error).name ?? "Error", message: (err as Error).message ?? String(err) };
        }
        process.stdout.write(`${JSON.stringify(reply)}\n`);
      })());
    }
  }
  await Promise.allSettled(pending);
  for (const child of children.values()) child.kill("SIGKILL");
  await Promise.allSettled([...children.values()].map((c) => c.exited));
}

if (import.meta.main) await serve();
