// A second process for the content store's cross-process tests: ingests a deterministic blob
// (`patternBytes(size)`) into <root>'s content store from a slow in-process body, printing one JSON
// line per step ({"opened":offset}, {"stopped":bytes}, {"done":true} or {"error":msg}). With
// `stopAt`, it stops itself (SIGSTOP) once that many bytes are in the ingest file, so the parent
// can SIGKILL it mid-blob at a known point.
//   bun content-ingest-child.ts <root> <size> [chunkDelayMs] [stopAt]
import { ContentStore } from "../../src/content/store.ts";
import { digestOf } from "../../src/content/digest.ts";

export function patternBytes(size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (i * 7 + (i >> 9)) & 0xff;
  return out;
}

/** A body of `bytes` from `offset`, in 64 KiB chunks with `delayMs` between them. */
export function slowBody(bytes: Uint8Array, offset: number, delayMs: number): ReadableStream<Uint8Array> {
  let pos = offset;
  return new ReadableStream({
    async pull(controller) {
      if (pos >= bytes.length) return controller.close();
      if (delayMs > 0) await Bun.sleep(delayMs);
      const end = Math.min(bytes.length, pos + 65536);
      controller.enqueue(bytes.slice(pos, end));
      pos = end;
    },
  });
}

if (import.meta.main) {
  const [root, sizeArg, delayArg, stopArg] = process.argv.slice(2);
  const size = Number(sizeArg);
  const delay = Number(delayArg ?? 0);
  const stopAt = stopArg === undefined ? Infinity : Number(stopArg);
  const bytes = patternBytes(size);
  const say = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
  let stopped = false;
  try {
    await new ContentStore(root!).ingest(
      { digest: digestOf(bytes), size, source: "child" },
      async (offset) => {
        say({ opened: offset });
        return { body: slowBody(bytes, offset, delay), offset };
      },
      (n) => {
        if (n >= stopAt && !stopped) {
          stopped = true;
          say({ stopped: n });
          process.kill(process.pid, "SIGSTOP");
        }
      },
    );
    say({ done: true });
  } catch (err) {
    say({ error: (err as Error).message });
    process.exitCode = 1;
  }
}
