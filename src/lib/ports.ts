// Published ports for `run(image, { ports: { 80: 0 } })`: 0 asks for a free host port, which we
// choose as Testcontainers does (bind :0, read the port, release it) and then publish as docker's
// `-p HOST:CONTAINER`. Between the release and the publish another process may take the port; the
// network code then refuses the create with a "host port … in use/published" FailedPrecondition,
// and run() retries with fresh choices (isPortClash). Ports this process handed out are not handed
// out again while they are held, so 20 parallel runs in one process never pick the same one.
import { createServer } from "node:net";
import { FailedPreconditionError, InvalidArgumentError } from "../errdefs.ts";

/** `{ [containerPort]: hostPort | 0 }`; a key may carry its protocol: "53/udp". */
export type PortRequest = Readonly<Record<string | number, number>>;

export interface PortPlan {
  containerPort: number;
  protocol: "tcp" | "udp";
  hostPort: number;
  /** We chose hostPort (the request said 0): a clash is retried with another. */
  chosen: boolean;
}

const handedOut = new Set<number>();

function portNumber(value: unknown, what: string): number {
  const n = typeof value === "string" && /^\d{1,5}$/.test(value) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`ports: ${what} ${JSON.stringify(value)} is not a port number`);
  return n;
}

/** The request as plans with hostPort still 0 where one is to be chosen; InvalidArgument for bad keys or values. */
export function parsePorts(req: PortRequest | undefined): PortPlan[] {
  if (!req) return [];
  const plans: PortPlan[] = [];
  for (const [key, host] of Object.entries(req)) {
    const m = /^(\d{1,5})(?:\/(tcp|udp))?$/i.exec(key);
    if (!m) throw new InvalidArgumentError(`ports: ${JSON.stringify(key)} is not a container port (80 or 80/tcp)`);
    const containerPort = portNumber(m[1], "container port");
    if (containerPort === 0) throw new InvalidArgumentError("ports: container port 0 is not a port");
    const hostPort = portNumber(host, `host port for ${key}`);
    plans.push({ containerPort, protocol: (m[2]?.toLowerCase() ?? "tcp") as "tcp" | "udp", hostPort, chosen: hostPort === 0 });
  }
  return plans;
}

/** A port the kernel says is free now, for `protocol`; never one this process handed out and still holds. */
export async function freePort(protocol: "tcp" | "udp" = "tcp"): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = protocol === "tcp" ? await freeTcpPort() : await freeUdpPort();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new FailedPreconditionError("no free host port found after 50 tries");
}

function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "0.0.0.0", () => {
      const addr = server.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function freeUdpPort(): Promise<number> {
  const socket = await Bun.udpSocket({ port: 0 });
  const port = socket.port;
  socket.close();
  return port;
}

/** Gives back ports handed out for a container that is gone (or was never made). */
export function releaseChosen(plans: readonly PortPlan[]): void {
  for (const p of plans) if (p.chosen) handedOut.delete(p.hostPort);
}

/** Fills in the ports to choose (fresh ones on a retry). */
export async function choosePorts(plans: readonly PortPlan[]): Promise<PortPlan[]> {
  return await Promise.all(plans.map(async (p) => (p.chosen ? { ...p, hostPort: await freePort(p.protocol) } : p)));
}

/** docker's -p form of each plan. */
export function publishSpecs(plans: readonly PortPlan[]): string[] {
  return plans.map((p) => `${p.hostPort}:${p.containerPort}/${p.protocol}`);
}

/** Whether a create failed because a host port was taken (by a host socket or another container). */
export function isPortClash(err: unknown): boolean {
  return err instanceof FailedPreconditionError && /host port \d+\/(tcp|udp) is already (in use|published)/.test(err.message);
}

/**
 * Runs `attempt` with the ports chosen, and again with fresh choices (up to `tries` in all) while it
 * fails with a port clash on a port we chose; a fixed port's clash, or any other error, is final.
 * Chosen ports of a failed attempt are given back. The plans that succeeded are returned.
 */
export async function withPortRetry<T>(plans: readonly PortPlan[], attempt: (plans: PortPlan[]) => Promise<T>, tries = 5): Promise<{ result: T; plans: PortPlan[] }> {
  for (let n = 1; ; n++) {
    const chosen = await choosePorts(plans);
    try {
      return { result: await attempt(chosen), plans: chosen };
    } catch (err) {
      releaseChosen(chosen);
      if (n < tries && isPortClash(err) && chosen.some((p) => p.chosen)) continue;
      throw err;
    }
  }
}
