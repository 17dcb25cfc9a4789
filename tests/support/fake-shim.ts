// A stand-in v2 shim for the manager's unit tests (no root, no runc): the start/delete actions
// and a Task service on a unix socket. Every task of one FAKE_SHIM_DIR shares one serve process
// (like a grouping shim), so a hundred tasks cost one process. Behaviour knobs (env):
//   FAKE_SHIM_DIR      where the socket and pid file live (required)
//   FAKE_CREATE_FAIL   Create answers FailedPrecondition
//   FAKE_DELETE_FAIL   the delete action fails
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FailedPreconditionError, NotFoundError } from "../../src/errdefs.ts";
import { DeleteResponseSchema, Task } from "../../src/gen/containerd/task/v2/shim_pb.ts";
import { Status } from "../../src/gen/containerd/types/task/task_pb.ts";
import { connectUnix, listenUnix, Server } from "../../src/ttrpc/index.ts";

const args = process.argv.slice(2);
const flag = (name: string): string => {
  const i = args.indexOf(`-${name}`);
  return i >= 0 ? (args[i + 1] ?? "") : "";
};
const action = args[args.length - 1];
const dir = process.env.FAKE_SHIM_DIR ?? "";
const sock = join(dir, "fake.sock");

async function live(): Promise<boolean> {
  try {
    (await connectUnix(sock, { timeoutMs: 500 })).destroy();
    return true;
  } catch {
    return false;
  }
}

async function start(): Promise<void> {
  if (!(await live())) {
    // Compiled (the tests build it once), the binary is its own script.
    const self = import.meta.path.startsWith("/$bunfs/") ? [process.execPath] : [process.execPath, import.meta.path];
    const child = Bun.spawn([...self, ...args.slice(0, -1), "serve"], {
      stdio: ["ignore", "ignore", "ignore"],
      env: process.env,
      detached: true,
    });
    child.unref();
    for (let i = 0; i < 500 && !(await live()); i++) await Bun.sleep(10);
  }
  writeFileSync("address", `unix://${sock}`);
  process.stdout.write(`unix://${sock}\n`);
}

interface FakeTask {
  status: Status;
  exitStatus: number;
  exited: Promise<void>;
  exit: () => void;
}

async function serve(): Promise<void> {
  writeFileSync(join(dir, "fake.pid"), String(process.pid));
  const tasks = new Map<string, FakeTask>();
  const get = (id: string): FakeTask => {
    const t = tasks.get(id);
    if (!t) throw new NotFoundError(`task ${id} not found`);
    return t;
  };
  const server = new Server();
  let listener: { close(): void } | undefined;
  server.register(Task, {
    create(req) {
      if (process.env.FAKE_CREATE_FAIL) throw new FailedPreconditionError("fake: create refused");
      const { promise, resolve } = Promise.withResolvers<void>();
      tasks.set(req.id, { status: Status.CREATED, exitStatus: 0, exited: promise, exit: resolve });
      return { pid: 4242 };
    },
    start(req) {
      get(req.id).status = Status.RUNNING;
      return { pid: 4242 };
    },
    state(req) {
      const t = get(req.id);
      return { id: req.id, pid: 4242, status: t.status, exitStatus: t.exitStatus };
    },
    async wait(req) {
      const t = get(req.id);
      await t.exited;
      return { exitStatus: t.exitStatus };
    },
    kill(req) {
      const t = get(req.id);
      t.status = Status.STOPPED;
      t.exitStatus = 128 + req.signal;
      t.exit();
    },
    delete(req) {
      const t = get(req.id);
      tasks.delete(req.id);
      return { pid: 4242, exitStatus: t.exitStatus };
    },
    connect(req) {
      get(req.id);
      return { shimPid: process.pid, taskPid: 4242 };
    },
    shutdown() {
      if (tasks.size > 0) return;
      setTimeout(() => {
        listener?.close();
        process.exit(0);
      }, 10);
    },
  });
  listener = await listenUnix(server, sock);
}

function deleteAction(): void {
  if (process.env.FAKE_DELETE_FAIL) {
    process.stderr.write("fake: delete refused\n");
    process.exit(1);
  }
  if (!existsSync(join(flag("bundle"), "config.json"))) {
    process.stderr.write("fake: no such bundle\n");
    process.exit(1);
  }
  process.stdout.write(toBinary(DeleteResponseSchema, create(DeleteResponseSchema, { pid: 4242, exitStatus: 137, exitedAt: timestampFromDate(new Date()) })));
}

// No top-level await: --bytecode compiles a plain script.
if (action === "start") void start().then(() => process.exit(0));
else if (action === "serve") void serve();
else if (action === "delete") deleteAction();
else process.exit(2);
