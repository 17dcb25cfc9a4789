// The examples' image: busybox, from the store if it is there, else built offline from the host's
// busybox-static (scripts/busybox-image.ts) and loaded, so `bun test examples/` needs no registry.
// With network access a suite would simply run "busybox" (pulled when missing) or any image.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bunker, ImagePullError } from "../src/lib/index.ts";

export const IMAGE = "docker.io/library/busybox:latest";

export async function ensureBusybox(): Promise<string> {
  // pull "never": whether the store has it, without reaching a registry
  try {
    return await bunker.pull(IMAGE, { pull: "never" });
  } catch (err) {
    if (!(err instanceof ImagePullError && err.notFound)) throw err;
  }
  if (!existsSync("/bin/busybox")) throw new Error("the examples build their image from /bin/busybox (Debian: apt-get install busybox-static)");
  const dir = mkdtempSync(join(tmpdir(), "bunker-example-"));
  try {
    const archive = join(dir, "busybox.tar");
    const built = Bun.spawnSync([process.execPath, join(import.meta.dir, "../scripts/busybox-image.ts"), archive], { stderr: "pipe" });
    if (built.exitCode !== 0) throw new Error(`building the busybox image failed: ${built.stderr.toString()}`);
    await bunker.loadImage(archive);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return IMAGE;
}
