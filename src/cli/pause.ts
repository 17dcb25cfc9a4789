// `bunker pause ID...` and `bunker unpause ID...`: docker's names for runc pause/resume (the
// cgroup freezer), through the shim's Pause/Resume. Like docker, each id is printed when done and a
// failure on one does not stop the others (exit 1 at the end).
import type { Api } from "../api/client.ts";
import { errorMessage } from "../errdefs.ts";
import type { GlobalOptions } from "./args.ts";
import { stdout } from "./stdout.ts";

export async function pause(api: Api, g: GlobalOptions, c: { name: "pause" | "unpause"; ids: string[] }): Promise<number> {
  let code = 0;
  for (const id of c.ids) {
    try {
      const ref = { namespace: g.namespace, id };
      await (c.name === "pause" ? api.pause(ref) : api.resume(ref));
      stdout().write(id + "\n");
    } catch (err) {
      process.stderr.write(`bunker: ${c.name} ${id}: ${errorMessage(err).split("\n")[0]}\n`);
      code = 1;
    }
  }
  return code;
}
