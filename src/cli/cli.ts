// The CLI: parse, reach the manager (daemon or embedded), run one command, and turn any error
// into one line on stderr with a non-zero exit (125 for run/exec, whose own codes are the
// container's, as docker does).
//
// Every command loads only what it needs: pino and the protobuf descriptors each cost several
// milliseconds at start-up, more than a foreground `bunker run --rm` takes in all.
import { errorMessage, PermissionDeniedError } from "../errdefs.ts";
import { imageStoreOptions, parseArgs, type Parsed, usageOf } from "./args.ts";
import { daemonListening, foregroundEligible, runForeground } from "./run-foreground.ts";
import { stdout } from "./stdout.ts";

/** What any user may run without root or a daemon: nothing of theirs touches bunker's state. */
const USER_COMMANDS = new Set(["help", "version", "login", "logout"]);

export async function cli(argv: string[]): Promise<number> {
  let parsed: Parsed;
  try {
    parsed = parseArgs(argv, process.env);
  } catch (err) {
    process.stderr.write(`bunker: ${errorMessage(err)}\n`);
    return 2;
  }
  const { globals: g, command: c } = parsed;
  const failCode = c.name === "run" || c.name === "exec" ? 125 : 1;
  if (c.name === "help") {
    stdout().write(usageOf(c.topic));
    return 0;
  }
  let debugLog: ((err: unknown) => void) | undefined;
  try {
    // Without root, only a daemon's socket we may use can run containers: say so before anything is
    // touched (the state dirs, runc, a half-made bundle), not with an EACCES from deep inside.
    // The daemon is probed only where the answer decides something: the commands below dial it anyway.
    const asRoot = process.getuid?.() === 0;
    const foreground = c.name === "run" && foregroundEligible(g, c.opts);
    const daemon = !asRoot || foreground ? await daemonListening(g.address) : undefined;
    if (!asRoot && !daemon && !USER_COMMANDS.has(c.name)) {
      throw new PermissionDeniedError(`this needs root (or access to a bunker daemon's socket, ${g.address})`);
    }
    if (c.name === "run" && foreground && !daemon) {
      return await runForeground(g, c.opts);
    }
    // The image commands log nothing: they go before pino is loaded (~10 ms of a cold pull).
    // Their failures print one line; --debug adds the stack.
    if (g.debug) debugLog = (err) => process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    const imageCode = await imageCommand(g, c);
    if (imageCode !== undefined) return imageCode;
    const { makeLogger } = await import("./log.ts");
    const logger = makeLogger({ debug: g.debug, daemon: c.name === "daemon" });
    debugLog = (err) => logger.debug({ err }, "command failed");
    if (c.name === "daemon") return await (await import("./daemon.ts")).daemon(g, logger);
    if (c.name === "install") {
      const { install } = await import("./install.ts");
      for (const line of install({ ...c, daemon: g })) stdout().write(line + "\n");
      return 0;
    }
    const [{ connect }, cmd] = await Promise.all([import("../api/client.ts"), import("./commands.ts")]);
    switch (c.name) {
      case "version": {
        const daemonConn = await connect(g, logger, { daemonOnly: true });
        try {
          return await cmd.version(daemonConn?.api);
        } finally {
          daemonConn?.close();
        }
      }
    }
    // an embedded manager may have to make or release a container's image layer and network
    const [{ lazyLayers }, { lazyNetworks }] = await Promise.all([import("../images/lazy-layers.ts"), import("../network/lazy-networks.ts")]);
    const conn = await connect(g, logger, { resources: { layers: lazyLayers(g.root, imageStoreOptions(g)), networks: lazyNetworks(g.root, g.state) } });
    try {
      switch (c.name) {
        case "run":
          if (conn.embedded && c.opts.restart !== undefined && c.opts.restart !== "no") {
            process.stderr.write(`bunker: note: restart policies are applied by bunker daemon; with none running, --restart ${c.opts.restart} takes effect when one starts\n`);
          }
          return await cmd.run(conn.api, g, c.opts);
        case "exec":
          return await cmd.exec(conn.api, g, c);
        case "ps":
          return await cmd.ps(conn.api, g, c.quiet, c.all);
        case "start":
          return await (await import("./lifecycle.ts")).start(conn.api, g, c);
        case "restart":
          return await (await import("./lifecycle.ts")).restart(conn.api, g, c);
        case "inspect":
          return await cmd.inspect(conn.api, g, c.ids);
        case "stop":
          return await (await import("./lifecycle.ts")).stop(conn.api, g, c);
        case "wait":
          return await cmd.wait(conn.api, g, c.ids);
        case "kill":
          return await cmd.kill(conn.api, g, c);
        case "rm":
          return await cmd.rm(conn.api, g, c);
        case "logs":
          return await cmd.logs(conn.api, g, c);
        case "events":
          return await (await import("./events.ts")).events(conn.api, g, c);
        case "pause":
        case "unpause":
          return await (await import("./pause.ts")).pause(conn.api, g, c);
        case "top":
          return await (await import("./top.ts")).top(conn.api, g, c);
        case "stats":
          return await (await import("./stats.ts")).stats(conn.api, g, c);
        case "cp":
          return await (await import("./cp.ts")).cp(conn.api, g, c);
      }
      throw new Error(`command ${c.name} has no handler`);
    } finally {
      conn.close();
    }
  } catch (err) {
    debugLog?.(err);
    const message = errorMessage(err).split("\n")[0]!;
    process.stderr.write(`bunker: ${message}\n`);
    return failCode === 125 ? (execFailureCode(message) ?? failCode) : failCode;
  }
}

/**
 * docker's exit codes for a container command that could not be run (the runtime's words, as runc
 * and crun put them): 127 when it does not exist, 126 when it cannot be executed; else undefined.
 */
export function execFailureCode(message: string): 126 | 127 | undefined {
  if (!/exec: "[^"]*"/.test(message)) return undefined;
  if (/executable file not found|no such file or directory/.test(message)) return 127;
  if (/permission denied|exec format error|is a directory/.test(message)) return 126;
  return undefined;
}

/** The image commands work on the stores under --root, daemon or not; undefined for any other command. */
async function imageCommand(g: Parsed["globals"], c: Parsed["command"]): Promise<number | undefined> {
  switch (c.name) {
    case "pull":
      return (await import("./images.ts")).pull(g, c);
    case "images":
      return (await import("./images.ts")).images(g, c.quiet);
    case "image-inspect":
      return (await import("./images.ts")).inspect(g, c.refs);
    case "tag":
      return (await import("./images.ts")).tag(g, c);
    case "rmi":
      return (await import("./images.ts")).rmi(g, c);
    case "login":
      return (await import("./images.ts")).login(g, c);
    case "logout":
      return (await import("./images.ts")).logout(c);
    case "info":
      return (await import("./images.ts")).info(g);
    case "load":
      return (await import("./image-archive.ts")).load(g, c);
    case "save":
      return (await import("./image-archive.ts")).save(g, c);
    case "image-prune":
      return (await import("./image-archive.ts")).prune(g, c.all);
    case "network-create":
    case "network-ls":
    case "network-inspect":
    case "network-rm":
      return (await import("./network.ts")).runNetworkCommand(g, c);
    default:
      return undefined;
  }
}
