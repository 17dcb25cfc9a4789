// A client of the CRI streaming server (the URLs Exec and Attach return), as kubectl exec/attach
// speak to it through the API server: a WebSocket with the `v4.channel.k8s.io` subprotocol, where
// the first byte of each binary message names the channel (0 stdin, 1 stdout, 2 stderr, 3 the
// final status as a JSON metav1.Status, 4 terminal resize as JSON {Width, Height}). Bun's own
// WebSocket is enough; the exit code comes from the status: "Success", or a failure whose
// details.causes holds {reason: "ExitCode", message: "<code>"}.

export interface StreamResult {
  stdout: string;
  stderr: string;
  /** From the status channel; undefined if the stream closed without one. */
  exitCode: number | undefined;
}

interface K8sStatus {
  status?: string;
  details?: { causes?: Array<{ reason?: string; message?: string }> };
}

export interface StreamSession {
  send(text: string): void;
  resize(width: number, height: number): void;
  /** Resolves once the output so far satisfies `check`. */
  waitFor(check: (stdout: string) => boolean, timeoutMs: number): Promise<string>;
  /** Resolves when the server closes the stream (the process ended). */
  done(timeoutMs: number): Promise<StreamResult>;
  close(): void;
}

const STDIN = 0, STDOUT = 1, STDERR = 2, STATUS = 3, RESIZE = 4;

function exitCodeOf(status: K8sStatus): number | undefined {
  if (status.status === "Success") return 0;
  const cause = status.details?.causes?.find((c) => c.reason === "ExitCode");
  return cause?.message === undefined ? undefined : Number(cause.message);
}

/** Opens the stream at `url` (http:// from containerd, dialled as ws://). */
export async function streamSession(url: string): Promise<StreamSession> {
  const ws = new WebSocket(url.replace(/^http/, "ws"), ["v4.channel.k8s.io"]);
  ws.binaryType = "arraybuffer";
  const decoder = { out: new TextDecoder(), err: new TextDecoder() };
  const result: StreamResult = { stdout: "", stderr: "", exitCode: undefined };
  const watchers = new Set<() => void>();
  let closed = false;
  ws.onmessage = (ev) => {
    const bytes = new Uint8Array(ev.data as ArrayBuffer);
    if (bytes.length === 0) return;
    const payload = bytes.subarray(1);
    if (bytes[0] === STDOUT) result.stdout += decoder.out.decode(payload, { stream: true });
    else if (bytes[0] === STDERR) result.stderr += decoder.err.decode(payload, { stream: true });
    else if (bytes[0] === STATUS && payload.length > 0) result.exitCode = exitCodeOf(JSON.parse(new TextDecoder().decode(payload)) as K8sStatus);
    for (const w of watchers) w();
  };
  ws.onclose = () => {
    closed = true;
    for (const w of watchers) w();
  };
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error(`WebSocket to ${url} failed`));
  });
  if (ws.protocol !== "v4.channel.k8s.io") throw new Error(`the streaming server chose subprotocol ${JSON.stringify(ws.protocol)}`);
  const frame = (channel: number, text: string) => {
    const body = new TextEncoder().encode(text);
    const msg = new Uint8Array(body.length + 1);
    msg[0] = channel;
    msg.set(body, 1);
    ws.send(msg);
  };
  const until = <T>(what: string, ready: () => T | undefined, timeoutMs: number) =>
    new Promise<T>((resolve, reject) => {
      const check = () => {
        const v = ready();
        if (v === undefined) return;
        watchers.delete(check);
        clearTimeout(timer);
        resolve(v);
      };
      const timer = setTimeout(() => {
        watchers.delete(check);
        reject(new Error(`${what} within ${timeoutMs} ms; stdout so far: ${JSON.stringify(result.stdout)}, stderr: ${JSON.stringify(result.stderr)}`));
      }, timeoutMs);
      watchers.add(check);
      check();
    });
  return {
    send: (text) => frame(STDIN, text),
    resize: (width, height) => frame(RESIZE, JSON.stringify({ Width: width, Height: height })),
    waitFor: (check, timeoutMs) => until("no matching output", () => (check(result.stdout) ? result.stdout : undefined), timeoutMs),
    done: (timeoutMs) => until("the stream did not end", () => (closed ? result : undefined), timeoutMs),
    close: () => ws.close(),
  };
}
