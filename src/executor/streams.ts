// Where a container's stdout/stderr go. The seed takes io.WriteCloser; here a caller may pass a web
// WritableStream, a Node-style writable (process.stdout, a PassThrough, a file stream) or a
// callback, and every form is turned into one Output that never throws: a failing destination must
// not stop the copy, or the FIFO fills and the container blocks on its next write.

/** Called with each chunk, then once with null when the process's output has ended. */
export type OutputCallback = (chunk: Uint8Array | null) => void | Promise<void>;

/** The subset of a Node Writable the executor uses. */
export interface NodeWritableLike {
  write(chunk: Uint8Array, cb?: (err?: Error | null) => void): boolean;
  end(): unknown;
}

/** A destination for a container's output; null or undefined discards it. */
export type OutputTarget = WritableStream<Uint8Array> | NodeWritableLike | OutputCallback | null | undefined;

export interface Output {
  write(chunk: Uint8Array): Promise<void>;
  /** Ends the destination; later calls do nothing. */
  end(): Promise<void>;
  readonly ended: boolean;
}

function isNodeWritable(t: object): t is NodeWritableLike {
  const w = t as Partial<NodeWritableLike>;
  return typeof w.write === "function" && typeof w.end === "function";
}

/** Adapts a target; `onError` hears about a destination that failed (its later output is dropped). */
export function toOutput(target: OutputTarget, onError: (err: unknown) => void = () => undefined): Output {
  let failed = false;
  let ended = false;
  const guard = async (f: () => void | Promise<void>): Promise<void> => {
    if (failed) return;
    try {
      await f();
    } catch (err) {
      failed = true;
      onError(err);
    }
  };
  let write: (chunk: Uint8Array) => void | Promise<void>;
  let end: () => void | Promise<void>;
  if (target === null || target === undefined) {
    write = () => undefined;
    end = () => undefined;
  } else if (typeof target === "function") {
    write = (chunk) => target(chunk);
    end = () => target(null);
  } else if (target instanceof WritableStream) {
    const writer = target.getWriter();
    write = (chunk) => writer.write(chunk);
    end = () => writer.close();
  } else if (isNodeWritable(target)) {
    // Resolving on the write callback (the chunk was handed on) makes a slow destination slow the
    // copy down instead of buffering without bound.
    write = (chunk) => new Promise<void>((resolve, reject) => void target.write(chunk, (err) => (err ? reject(err) : resolve())));
    // Not waiting for "finish": a destination that errored never emits it.
    end = () => void target.end();
  } else {
    throw new TypeError("an output must be a WritableStream, a Node writable, a callback, or null");
  }
  return {
    write: (chunk) => guard(() => write(chunk)),
    async end() {
      if (ended) return;
      ended = true;
      await guard(end);
    },
    get ended() {
      return ended;
    },
  };
}
