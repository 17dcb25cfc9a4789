// Issue 9 item 3: the sockets bunker serves ttrpc on are 0600 and root's, in directories others
// cannot enter, and a peer of another uid is refused twice over: by the file modes at connect(),
// and, should they ever be wider, by the server's SO_PEERCRED check, which closes the connection
// before any request is read. The
// other uid is `nobody` (65534) through setpriv; the same client run as root is the control.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, linkSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describeWith } from "../support/require.ts";
import { REPO, startLiveShim, startTarget, type LiveShim, type Target } from "../support/fuzz-env.ts";

const NOBODY = 65534;

interface Outcome {
  uid: number;
  /** The server answered with some status (any code): the connection was served. */
  answered: boolean;
  error?: string;
  message?: string;
}

let clientDir: string;

/** A tiny ttrpc client that calls Task.Connect and prints what happened, as `uid` (root runs it directly). */
async function tryConnect(address: string, uid: number): Promise<Outcome> {
  const script = join(clientDir, "client.ts");
  const cmd = [process.execPath, script, address];
  const argv = uid === 0 ? cmd : ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", ...cmd];
  const proc = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", env: { ...process.env, HOME: clientDir, BUN_INSTALL_CACHE_DIR: clientDir } });
  const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  if (code !== 0) throw new Error(`client as uid ${uid} exited ${code}: ${out}\n${err}`);
  return JSON.parse(out.trim().split("\n").pop()!) as Outcome;
}

function writeClient(): void {
  clientDir = mkdtempSync("/tmp/bunker-access-");
  chmodSync(clientDir, 0o755); // nobody must read the script
  const src = (p: string): string => JSON.stringify(join(REPO, p));
  writeFileSync(
    join(clientDir, "client.ts"),
    `import { dial } from ${src("src/ttrpc/index.ts")};
import { Task } from ${src("src/gen/containerd/task/v2/shim_pb.ts")};
import { BunkerError, Code } from ${src("src/errdefs.ts")};
const uid = process.getuid();
try {
  const c = await dial(process.argv[2], { connectTimeoutMs: 3000, timeoutMs: 3000 });
  try {
    await c.service(Task).connect({ id: "" });
    console.log(JSON.stringify({ uid, answered: true }));
  } catch (e) {
    // a status from the server still means it served us; a local Unavailable means the connection was closed
    const local = e instanceof BunkerError && (e.code === Code.Unavailable || e.code === Code.DeadlineExceeded);
    console.log(JSON.stringify({ uid, answered: !local, error: e.name, message: e.message }));
  }
  c.close();
} catch (e) {
  console.log(JSON.stringify({ uid, answered: false, error: e.name, message: e.message }));
}
process.exit(0);
`,
  );
  chmodSync(join(clientDir, "client.ts"), 0o644);
}

/** The mode and owner checks, then both refusals, then the socket back as it was. */
async function expectRefusesOthers(sock: string): Promise<void> {
  const st = statSync(sock);
  expect(st.isSocket()).toBe(true);
  expect(st.mode & 0o777).toBe(0o600);
  expect(st.uid).toBe(0);
  expect(st.gid).toBe(0);

  expect(await tryConnect(`unix://${sock}`, 0)).toEqual({ uid: 0, answered: true });
  const byMode = await tryConnect(`unix://${sock}`, NOBODY);
  expect(byMode.uid).toBe(NOBODY);
  expect(byMode.answered).toBe(false);
  expect(byMode.message).toMatch(/EACCES|permission denied/i);

  // Widen the mode and reach the socket through a hard link in a directory others may enter (a
  // misconfiguration, or a socket handed over): the peer-uid check still refuses before any request.
  const linkDir = mkdtempSync(join(sameFsDir(sock), "bunker-access-link-"));
  chmodSync(linkDir, 0o711);
  const link = join(linkDir, "s");
  linkSync(sock, link);
  chmodSync(sock, 0o666);
  try {
    const byCred = await tryConnect(`unix://${link}`, NOBODY);
    expect(byCred.uid).toBe(NOBODY);
    expect(byCred.answered).toBe(false);
    // Past the file modes (no EACCES), the server hangs up: during Bun's connect, or on the first call.
    expect(byCred.message).toMatch(/^ttrpc: closed$|ECONNRESET|EPIPE/);
    expect(await tryConnect(`unix://${link}`, 0)).toEqual({ uid: 0, answered: true });
  } finally {
    chmodSync(sock, 0o600);
    rmSync(linkDir, { recursive: true, force: true });
  }
}

/** A directory on the socket's filesystem (a hard link cannot cross filesystems). */
function sameFsDir(sock: string): string {
  const dev = statSync(sock).dev;
  const dir = ["/run", "/tmp", "/var/tmp"].find((d) => statSync(d).dev === dev);
  if (!dir) throw new Error(`no scratch directory on the filesystem of ${sock}`);
  return dir;
}

describeWith(["root", "bin:setpriv"], "socket access: bunker's ttrpc server with authorize", () => {
  let dir: string;
  let target: Target;
  beforeAll(async () => {
    writeClient();
    dir = mkdtempSync("/tmp/bunker-access-srv-");
    target = await startTarget(join(dir, "t.sock"));
  });
  afterAll(async () => {
    await target?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("0600 root:root; another uid is refused by the mode and, with the mode widened, by peer credentials", async () => {
    await expectRefusesOthers(join(dir, "t.sock"));
  }, 60_000);
});

describeWith(["root", "bin:setpriv", "bin:runc", "bin:containerd", "bin:ctr"], "socket access: a live bunker shim", () => {
  let live: LiveShim;
  beforeAll(async () => {
    clientDir ??= (writeClient(), clientDir);
    live = await startLiveShim(`ac${process.pid}`, "guarded");
  }, 120_000);
  afterAll(async () => {
    await live?.stop();
    rmSync(clientDir, { recursive: true, force: true });
  }, 120_000);

  test("the shim socket is 0600 root:root in a directory only root can enter; another uid is refused both ways", async () => {
    const parent = statSync(dirname(live.socket));
    expect(parent.uid).toBe(0);
    // containerd's own /run/containerd/s is 0711 (others may traverse, never list); ours must not be wider
    expect(parent.mode & 0o066).toBe(0);
    await expectRefusesOthers(live.socket);
    expect(await live.taskStatus()).toBe("RUNNING");
  }, 60_000);
});
