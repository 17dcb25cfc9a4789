// Terminals with real runc: --console-socket hands us the pty master, ConsoleCopy moves the bytes
// between the pty and FIFOs (the test plays containerd's side of them), resize sets the size.
import { afterEach, expect, test } from "bun:test";
import { closeSync, constants, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import { CanceledError, UnavailableError } from "../../src/errdefs.ts";
import { ConsoleCopy, ConsoleSocket } from "../../src/stdio/console.ts";
import { sys } from "../../src/sys/index.ts";
import { makeContainer, type TestContainer, waitFor } from "../support/runc-bundle.ts";
import { describeWith } from "../support/require.ts";

/** containerd's end of an output FIFO: collects everything written to it. */
function fifoReader(path: string): { text(): string; close(): void } {
  sys().mkfifo(path, 0o600);
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const reader = Bun.file(fd).stream().getReader();
  let text = "";
  void (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        text += new TextDecoder().decode(value);
      }
    } catch {
      // cancelled
    }
  })();
  return {
    text: () => text,
    close() {
      void reader.cancel().catch(() => undefined);
      closeSync(fd);
    },
  };
}

async function runcExit(c: TestContainer): Promise<void> {
  await waitFor(async () => (await c.state()).status === "stopped", 20_000, "the container to stop");
}

describeWith(["root", "bin:runc"], "console socket and pty copy with real runc", () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const f of cleanups.splice(0).reverse()) await f();
  });

  /** runc create --console-socket, receive the master, copy it to a FIFO, return before start. */
  async function createWithConsole(name: string, args: string[], withStdin = false) {
    const c = await makeContainer(name, { args, terminal: true });
    cleanups.push(() => c.dispose());
    const sock = ConsoleSocket.create();
    cleanups.push(() => sock.close());
    const out = fifoReader(join(c.dir, "stdout"));
    cleanups.push(() => out.close());
    const stdin = join(c.dir, "stdin");
    if (withStdin) sys().mkfifo(stdin, 0o600);
    const create = Bun.spawn(c.argv("--log", join(c.dir, "runc.log"), "create", "--console-socket", sock.path, c.id), { cwd: c.bundle, stdio: ["ignore", "ignore", "ignore"] });
    const aborter = new AbortController();
    void create.exited.then((code) => code !== 0 && aborter.abort(new Error(`runc create exited ${code}`)));
    const master = await sock.receiveMaster({ signal: aborter.signal, timeoutMs: 20_000 });
    expect(await create.exited).toBe(0);
    sock.close();
    expect(master.name).toMatch(/^\/dev\//); // runc 1.1 sends the master's name, /dev/ptmx
    const con = new ConsoleCopy(master.fd, { stdout: join(c.dir, "stdout"), ...(withStdin ? { stdin } : {}) });
    cleanups.push(() => con.close());
    return { c, con, out, stdin };
  }

  test("tty is /dev/pts/0, stty shows the size we set, and the last line arrives", async () => {
    const { c, con, out } = await createWithConsole("tty", ["sh", "-c", "tty; stty size; echo done"]);
    con.resize(101, 37);
    await c.run("start", c.id);
    await runcExit(c);
    await con.drain();
    await waitFor(() => out.text().includes("done"), 5000, "the output in the FIFO");
    expect(out.text()).toBe("/dev/pts/0\r\n37 101\r\ndone\r\n");
  });

  test("a burst of output right before exit is not lost", async () => {
    const { c, con, out } = await createWithConsole("burst", ["seq", "1", "20000"]);
    await c.run("start", c.id);
    await runcExit(c);
    await con.drain();
    await waitFor(() => out.text().endsWith("20000\r\n"), 5000, "the last number");
    expect(out.text().split("\r\n").filter(Boolean).length).toBe(20000);
  });

  test("stdin reaches the process; after CloseIO and the client's close, EOF ends cat", async () => {
    const { c, con, out, stdin } = await createWithConsole("stdin", ["sh", "-c", "cat; echo cat-exited"], true);
    const writer = openSync(stdin, constants.O_WRONLY | constants.O_NONBLOCK);
    await c.run("start", c.id);
    writeSync(writer, "hello\npartial");
    closeSync(writer); // the client is done...
    con.closeStdin(); // ...and CloseIO drops our hold: EOF, then ^D^D for the pending line
    await runcExit(c);
    await con.drain();
    await waitFor(() => out.text().includes("cat-exited"), 5000, "cat's exit");
    // the terminal echoes the input and cat prints it back (interleaved as timing has it); the
    // first ^D hands "partial" to cat, the second is EOF; ^D itself is not echoed
    const text = out.text();
    expect(text.split("hello\r\n").length - 1).toBe(2);
    expect(text.split("partial").length - 1).toBe(2);
    expect(text).not.toContain("^D");
    expect(text).toEndWith("partialcat-exited\r\n");
  });

  test("resize while running changes what the process sees", async () => {
    const { c, con, out, stdin } = await createWithConsole("resize", ["sh", "-c", "read x; stty size"], true);
    const writer = openSync(stdin, constants.O_WRONLY | constants.O_NONBLOCK);
    await c.run("start", c.id);
    con.resize(80, 24);
    con.resize(132, 50);
    writeSync(writer, "go\n");
    await runcExit(c);
    await con.drain();
    closeSync(writer);
    await waitFor(() => out.text().includes("50 132"), 5000, "stty's answer");
    expect(out.text()).toBe("go\r\n50 132\r\n");
  });
});

describeWith([], "console socket without runc", () => {
  test("a peer that hangs up without a terminal is Unavailable; abort and close stop the wait", async () => {
    const sock = ConsoleSocket.create();
    try {
      const client = await Bun.connect({ unix: sock.path, socket: { data() {} } });
      client.end();
      await expect(sock.receiveMaster({ timeoutMs: 5000 })).rejects.toThrow(UnavailableError);
      const ac = new AbortController();
      const waiting = sock.receiveMaster({ signal: ac.signal });
      ac.abort();
      await expect(waiting).rejects.toThrow(CanceledError);
      await expect(sock.receiveMaster({ timeoutMs: 30 })).rejects.toThrow("runc sent no console within 30 ms");
    } finally {
      sock.close();
    }
    expect(await Bun.file(sock.path).exists()).toBe(false);
  });
});
