// The server side of bench/ttrpc.ts, in its own process (as a shim would be): serves a Task
// service whose Connect answers like containerd-shim-runc-v2's does for an unknown task.
import { Task } from "../src/gen/containerd/task/v2/shim_pb.ts";
import { Server, listenUnix } from "../src/ttrpc/index.ts";

const path = process.argv[2];
if (!path) {
  console.error("usage: bun bench/ttrpc-server.ts SOCKET");
  process.exit(2);
}
const server = new Server();
server.register(Task, {
  connect: () => ({ shimPid: process.pid, taskPid: 0 }),
  shutdown: () => {
    setTimeout(() => process.exit(0), 10);
  },
});
await listenUnix(server, path);
console.log("ready");
