// `bunker network create|ls|inspect|rm` (docker's names): named bridge networks under
// <root>/networks. Parsing is here with the handlers; the network code loads only when one runs.
import { InvalidArgumentError } from "../errdefs.ts";
import { type Command, type GlobalOptions, noMore, one, parseFlags, str, bool } from "./args.ts";
import { stdout } from "./stdout.ts";

export type NetworkCommand =
  | { name: "network-create"; network: string; subnet?: string; gateway?: string }
  | { name: "network-ls"; quiet: boolean }
  | { name: "network-inspect"; networks: string[] }
  | { name: "network-rm"; networks: string[] };

export function parseNetworkCommand(argv: string[]): Command {
  const [sub, ...tail] = argv;
  const ctx = `bunker network ${sub ?? ""}`.trim();
  switch (sub) {
    case "create": {
      const f = parseFlags(tail, [
        { names: ["--subnet"], key: "subnet", kind: "string" },
        { names: ["--gateway"], key: "gateway", kind: "string" },
        { names: ["-d", "--driver"], key: "driver", kind: "string" },
      ], ctx);
      const network = one(f.rest, "a network name", ctx);
      noMore(f.rest, 1, ctx);
      const driver = str(f.values, "driver");
      if (driver !== undefined && driver !== "bridge") throw new InvalidArgumentError(`${ctx}: only the bridge driver is supported, not ${JSON.stringify(driver)}`);
      const subnet = str(f.values, "subnet");
      const gateway = str(f.values, "gateway");
      return { name: "network-create", network, ...(subnet !== undefined ? { subnet } : {}), ...(gateway !== undefined ? { gateway } : {}) };
    }
    case "ls":
    case "list": {
      const f = parseFlags(tail, [{ names: ["-q", "--quiet"], key: "quiet", kind: "bool" }], ctx);
      noMore(f.rest, 0, ctx);
      return { name: "network-ls", quiet: bool(f.values, "quiet") };
    }
    case "inspect":
    case "rm":
    case "remove": {
      const f = parseFlags(tail, [], ctx);
      if (f.rest.length === 0) throw new InvalidArgumentError(`${ctx}: a network name is required`);
      return sub === "inspect" ? { name: "network-inspect", networks: f.rest } : { name: "network-rm", networks: f.rest };
    }
    default:
      throw new InvalidArgumentError(`${ctx}: unknown network command ${JSON.stringify(sub ?? "")} (create, ls, inspect, rm)`);
  }
}

function out(line: string): void {
  stdout().write(line + "\n");
}

export async function runNetworkCommand(g: GlobalOptions, c: NetworkCommand): Promise<number> {
  const { NetworkStore } = await import("../network/networks.ts");
  const store = new NetworkStore(g.root);
  switch (c.name) {
    case "network-create": {
      const info = store.create(c.network, { ...(c.subnet ? { subnet: c.subnet } : {}), ...(c.gateway ? { gateway: c.gateway } : {}) });
      // the bridge and its rules now, as docker makes them at create (an attach would otherwise)
      await store.ensureHostSetup(info.name);
      out(info.name);
      return 0;
    }
    case "network-ls": {
      store.ensureDefault();
      const nets = store.list();
      if (c.quiet) {
        for (const n of nets) out(n.name);
        return 0;
      }
      const rows = [["NAME", "BRIDGE", "SUBNET", "GATEWAY", "CONTAINERS"], ...nets.map((n) => [n.name, n.bridge, n.subnet, n.gateway, String(n.containers.length)])];
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
      for (const r of rows) out(r.map((cell, i) => cell.padEnd(widths[i]!)).join("   ").trimEnd());
      return 0;
    }
    case "network-inspect":
      out(JSON.stringify(c.networks.map((n) => store.inspect(n)), null, 2));
      return 0;
    case "network-rm": {
      let code = 0;
      for (const n of c.networks) {
        try {
          await store.remove(n);
          out(n);
        } catch (err) {
          process.stderr.write(`bunker: network rm ${n}: ${err instanceof Error ? err.message : String(err)}\n`);
          code = 1;
        }
      }
      return code;
    }
  }
}
