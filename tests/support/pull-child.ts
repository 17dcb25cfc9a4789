// A pull in a process of its own, for the tests that need two pullers or a SIGKILLed one:
//   bun pull-child.ts <root> <ref> [stopAtLayerBytes]
// prints one JSON line per step: {"stopped":bytes,"digest":…} (after SIGSTOPping itself once a
// layer has that many bytes in the store, so the parent can SIGKILL it mid-layer at a known point),
// then {"done":{"target":…}} or {"error":msg}.
import { ContentStore } from "../../src/content/store.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import { fetchImage } from "../../src/registry/pull.ts";

const [root, ref, stopArg] = process.argv.slice(2);
const stopAt = stopArg === undefined ? Infinity : Number(stopArg);
const say = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
let stopped = false;
try {
  const image = await fetchImage(new ContentStore(root!), new RegistryClient({ credentials: () => null }), ref!, {
    onProgress: (e) => {
      if (!stopped && e.role === "layer" && e.status === "downloading" && e.current >= stopAt) {
        stopped = true;
        say({ stopped: e.current, digest: e.digest });
        process.kill(process.pid, "SIGSTOP");
      }
    },
  });
  say({ done: { target: image.target.digest, layers: image.layers.map((l) => l.digest) } });
} catch (err) {
  say({ error: (err as Error).message });
  process.exitCode = 1;
}
