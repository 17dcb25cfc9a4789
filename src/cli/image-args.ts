// Parsing of the image commands (pull, load, save, images, image …, tag, rmi, login, logout, info),
// in args.ts's style: flags until the first positional, one-line errors naming the command.
import { InvalidArgumentError } from "../errdefs.ts";
import { bool, type Command, noMore, one, parseFlags, str } from "./args.ts";

export function parseImageCommand(name: string, tail: string[]): Command {
  const ctx = `bunker ${name}`;
  switch (name) {
    case "pull": {
      const f = parseFlags(tail, [
        { names: ["--platform"], key: "platform", kind: "string" },
        { names: ["-q", "--quiet"], key: "quiet", kind: "bool" },
      ], ctx);
      const ref = one(f.rest, "an image reference", ctx);
      noMore(f.rest, 1, ctx);
      const platform = str(f.values, "platform");
      return { name: "pull", ref, quiet: bool(f.values, "quiet"), ...(platform !== undefined ? { platform } : {}) };
    }
    case "load": {
      const f = parseFlags(tail, [
        { names: ["-i", "--input"], key: "input", kind: "string" },
        { names: ["-q", "--quiet"], key: "quiet", kind: "bool" },
      ], ctx);
      noMore(f.rest, 0, ctx);
      const input = str(f.values, "input");
      return { name: "load", quiet: bool(f.values, "quiet"), ...(input !== undefined ? { input } : {}) };
    }
    case "save": {
      const f = parseFlags(tail, [{ names: ["-o", "--output"], key: "output", kind: "string" }], ctx);
      const output = str(f.values, "output");
      if (output === undefined) throw new InvalidArgumentError(`${ctx}: -o FILE is required`);
      if (f.rest.length === 0) throw new InvalidArgumentError(`${ctx}: an image reference is required`);
      return { name: "save", output, refs: f.rest };
    }
    case "images": {
      const f = parseFlags(tail, [{ names: ["-q", "--quiet"], key: "quiet", kind: "bool" }], ctx);
      noMore(f.rest, 0, ctx);
      return { name: "images", quiet: bool(f.values, "quiet") };
    }
    case "image":
      return parseImageSubcommand(tail);
    case "tag": {
      const f = parseFlags(tail, [], ctx);
      const source = one(f.rest, "a source image", ctx);
      const target = one(f.rest.slice(1), "a target name", ctx);
      noMore(f.rest, 2, ctx);
      return { name: "tag", source, target };
    }
    case "rmi": {
      const f = parseFlags(tail, [{ names: ["-f", "--force"], key: "force", kind: "bool" }], ctx);
      if (f.rest.length === 0) throw new InvalidArgumentError(`${ctx}: an image reference is required`);
      return { name: "rmi", force: bool(f.values, "force"), refs: f.rest };
    }
    case "login": {
      const f = parseFlags(tail, [
        { names: ["-u", "--username"], key: "username", kind: "string" },
        { names: ["-p", "--password"], key: "password", kind: "string" },
        { names: ["--password-stdin"], key: "passwordStdin", kind: "bool" },
      ], ctx);
      const registry = one(f.rest, "a registry", ctx);
      noMore(f.rest, 1, ctx);
      const username = str(f.values, "username");
      const password = str(f.values, "password");
      if (password !== undefined && bool(f.values, "passwordStdin")) throw new InvalidArgumentError(`${ctx}: --password and --password-stdin cannot be combined`);
      return {
        name: "login", registry, passwordStdin: bool(f.values, "passwordStdin"), ...(username !== undefined ? { username } : {}), ...(password !== undefined ? { password } : {}),
      };
    }
    case "logout": {
      const f = parseFlags(tail, [], ctx);
      const registry = one(f.rest, "a registry", ctx);
      noMore(f.rest, 1, ctx);
      return { name: "logout", registry };
    }
    case "info": {
      const f = parseFlags(tail, [], ctx);
      noMore(f.rest, 0, ctx);
      return { name: "info" };
    }
    default:
      throw new InvalidArgumentError(`unknown command ${JSON.stringify(name)} (try: bunker help)`);
  }
}

/** `bunker image ls|inspect|prune|rm|pull|load|save|tag`: docker's management-command form. */
function parseImageSubcommand(argv: string[]): Command {
  const [sub, ...tail] = argv;
  const ctx = `bunker image ${sub ?? ""}`.trim();
  switch (sub) {
    case "ls":
    case "list":
      return parseImageCommand("images", tail);
    case "inspect": {
      const f = parseFlags(tail, [], ctx);
      if (f.rest.length === 0) throw new InvalidArgumentError(`${ctx}: an image reference is required`);
      return { name: "image-inspect", refs: f.rest };
    }
    case "prune": {
      const f = parseFlags(tail, [{ names: ["-a", "--all"], key: "all", kind: "bool" }, { names: ["-f", "--force"], key: "force", kind: "bool" }], ctx);
      noMore(f.rest, 0, ctx);
      return { name: "image-prune", all: bool(f.values, "all") };
    }
    case "rm":
      return parseImageCommand("rmi", tail);
    case "pull":
    case "load":
    case "save":
    case "tag":
      return parseImageCommand(sub, tail);
    default:
      throw new InvalidArgumentError(`${ctx}: unknown image command ${JSON.stringify(sub ?? "")} (ls, inspect, prune, rm, pull, load, save, tag)`);
  }
}
