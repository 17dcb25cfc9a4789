// A fuzzing target in its own process: bunker's ttrpc server serving the Task service the way a
// shim holding no containers answers (Connect succeeds; every call naming a task is NotFound),
// on a 0600 socket that refuses peers of another uid, as the shim's serve action does.
//
//   bun tools/fuzz-ttrpc-target.ts SOCKET     prints "ready <pid>" once listening; SIGTERM ends it
import { NotFoundError } from "../src/errdefs.ts";
import { Task } from "../src/gen/containerd/task/v2/shim_pb.ts";
import { sys } from "../src/sys/index.ts";
import { Server, listenUnix } from "../src/ttrpc/index.ts";

const path = process.argv[2];
if (!path) {
  console.error("usage: bun tools/fuzz-ttrpc-target.ts SOCKET");
  process.exit(2);
}

let drops = 0;
const server = new Server({ onDrop: () => void drops++ });
const missing = (req: { id: string }): never => {
  throw new NotFoundError(`task ${req.id}: not found`);
};
server.register(Task, {
  state: missing,
  delete: missing,
  pids: missing,
  pause: missing,
  resume: missing,
  kill: missing,
  exec: missing,
  resizePty: missing,
  closeIO: missing,
  wait: missing,
  stats: missing,
  update: missing,
  checkpoint: missing,
  start: missing,
  connect: () => ({ shimPid: process.pid, taskPid: 0 }),
});
const uid = process.getuid?.() ?? 0;
const listener = await listenUnix(server, path, {
  mode: 0o600,
  authorize: ({ fd }) => {
    try {
      return sys().peerCred(fd).uid === uid;
    } catch {
      return false;
    }
  },
});
process.on("SIGPIPE", () => {});
process.on("SIGTERM", () => {
  listener.close();
  server.close();
  console.error(JSON.stringify({ msg: "target exiting", drops }));
  process.exit(0);
});
console.log(`ready ${process.pid}`);
