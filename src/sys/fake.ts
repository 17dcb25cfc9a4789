// FakeSyscalls: a recording Syscalls for unit tests of the layers above (no root, no kernel).
// Every call is appended to `calls` with its arguments, before it runs. Each method has a default
// behaviour that keeps a little state (subreaper flag, a mount table, zombies, fd numbers);
// `on(method, impl)` replaces it, `fail(method, "EPERM")` makes it throw a SysError.
import { SysError } from "./errors.ts";
import { exitedStatus, type ReapedChild, type Syscalls, type WaitStatus } from "./types.ts";

export type Method = keyof Syscalls;
export type Call = { [K in Method]: { method: K; args: Parameters<Syscalls[K]> } }[Method];

/** The syscall each method names in its errors, as the FFI implementation does. */
const syscallOf: Record<Method, string> = {
  setSubreaper: "prctl(PR_SET_CHILD_SUBREAPER)",
  isSubreaper: "prctl(PR_GET_CHILD_SUBREAPER)",
  reap: "waitpid",
  reapSweep: "waitpid",
  sendFd: "sendmsg",
  recvFd: "recvmsg",
  socketpair: "socketpair",
  mount: "mount",
  unmount: "umount2",
  unmountAll: "umount2",
  mkfifo: "mkfifo",
  dup2: "dup2",
  peerCred: "getsockopt(SO_PEERCRED)",
  setWinsize: "ioctl(TIOCSWINSZ)",
  getWinsize: "ioctl(TIOCGWINSZ)",
  close: "close",
  pidfdOpen: "pidfd_open",
  setNonblock: "fcntl(F_SETFL)",
  pipe: "pipe2",
  eventfd: "eventfd",
  listenUnix: "bind",
  accept: "accept4",
  epollCreate: "epoll_create1",
  epollCtl: "epoll_ctl",
  startPoller: "pthread_create",
  mknod: "mknod",
  lsetxattr: "lsetxattr",
  lgetxattr: "lgetxattr",
  llistxattr: "llistxattr",
  flock: "flock",
};

type Impl<K extends Method> = (...args: Parameters<Syscalls[K]>) => ReturnType<Syscalls[K]>;

export class FakeSyscalls implements Syscalls {
  readonly calls: Call[] = [];
  subreaper = false;
  /** target -> stack of {source, fstype, flags, data}, last is on top. */
  readonly mounts = new Map<string, { source: string; fstype: string; flags: number | bigint; data?: string }[]>();
  /** Exited children not yet reaped: reap(pid) and reapSweep take them from here. */
  readonly zombies = new Map<number, WaitStatus>();
  readonly fifos = new Set<string>();
  readonly closed: number[] = [];
  /** What recvFd returns, in order; when empty it throws EAGAIN like a non-blocking socket. */
  readonly received: { fd: number; msg: Uint8Array }[] = [];
  peer = { pid: 1, uid: 0, gid: 0 };
  /** What getWinsize answers (a test's "terminal"). */
  winsize = { rows: 24, cols: 80 };
  /** fds set non-blocking by setNonblock(fd, true) (removed by setNonblock(fd, false)). */
  readonly nonblocking = new Set<number>();
  /** Paths with a listening socket (listenUnix), fd by path; a second listen on one is EADDRINUSE. */
  readonly listening = new Map<string, number>();
  /** What accept returns, in order; when empty it returns null like a non-blocking listener. */
  readonly pending: number[] = [];
  /** Device nodes and FIFOs made by mknod, by path. */
  readonly nodes = new Map<string, { mode: number; major: number; minor: number }>();
  /** Extended attributes by path, then name. */
  readonly xattrs = new Map<string, Map<string, Uint8Array>>();
  /** Locks held, by fd (flock). */
  readonly locks = new Map<number, "exclusive" | "shared">();
  private nextFd = 1000;
  private readonly overrides = new Map<Method, (...args: never[]) => unknown>();

  /** Replaces a method's behaviour (the call is still recorded). */
  on<K extends Method>(method: K, impl: Impl<K>): this {
    this.overrides.set(method, impl as (...args: never[]) => unknown);
    return this;
  }

  /** Makes a method throw SysError(code) as the kernel would, e.g. fail("mount", "EPERM") (path: the target). */
  fail(method: Method, code: string): this {
    this.overrides.set(method, (...args: never[]) => {
      const path: unknown = method === "mount" ? args[1] : args[0];
      throw SysError.of(syscallOf[method], code, typeof path === "string" ? path : undefined);
    });
    return this;
  }

  /** Restores a method's default behaviour. */
  restore(method: Method): this {
    this.overrides.delete(method);
    return this;
  }

  /** Queues a zombie: pid exited with this status (a number is an exit code). */
  exit(pid: number, status: number | WaitStatus): this {
    this.zombies.set(pid, typeof status === "number" ? exitedStatus(status) : status);
    return this;
  }

  /** The argument lists of every call to one method, in order. */
  callsOf<K extends Method>(method: K): Parameters<Syscalls[K]>[] {
    return this.calls.filter((c) => c.method === method).map((c) => c.args as Parameters<Syscalls[K]>);
  }

  private run<K extends Method>(method: K, args: Parameters<Syscalls[K]>, dflt: () => ReturnType<Syscalls[K]>): ReturnType<Syscalls[K]> {
    this.calls.push({ method, args } as Call);
    const override = this.overrides.get(method);
    if (override) return override(...(args as never[])) as ReturnType<Syscalls[K]>;
    return dflt();
  }

  setSubreaper(on: boolean): void {
    this.run("setSubreaper", [on], () => {
      this.subreaper = on;
    });
  }

  isSubreaper(): boolean {
    return this.run("isSubreaper", [], () => this.subreaper);
  }

  reap(pid: number): WaitStatus | null {
    return this.run("reap", [pid], () => {
      const st = this.zombies.get(pid);
      if (!st) return null;
      this.zombies.delete(pid);
      return st;
    });
  }

  reapSweep(exclude: ReadonlySet<number>): ReapedChild[] {
    return this.run("reapSweep", [exclude], () => {
      const out: ReapedChild[] = [];
      for (const [pid, st] of this.zombies) {
        if (exclude.has(pid)) continue;
        this.zombies.delete(pid);
        out.push({ pid, ...st });
      }
      return out;
    });
  }

  sendFd(sock: number, fd: number, msg?: Uint8Array): void {
    this.run("sendFd", msg === undefined ? [sock, fd] : [sock, fd, msg], () => undefined);
  }

  recvFd(sock: number, opts?: { dontWait?: boolean }): { fd: number; msg: Uint8Array } {
    return this.run("recvFd", opts === undefined ? [sock] : [sock, opts], () => {
      const next = this.received.shift();
      if (!next) throw SysError.of("recvmsg", "EAGAIN");
      return next;
    });
  }

  socketpair(): [number, number] {
    return this.run("socketpair", [], () => [this.nextFd++, this.nextFd++]);
  }

  mount(source: string, target: string, fstype: string, flags: number | bigint, data?: string): void {
    const args: Parameters<Syscalls["mount"]> = data === undefined ? [source, target, fstype, flags] : [source, target, fstype, flags, data];
    this.run("mount", args, () => {
      const stack = this.mounts.get(target) ?? [];
      stack.push(data === undefined ? { source, fstype, flags } : { source, fstype, flags, data });
      this.mounts.set(target, stack);
    });
  }

  unmount(target: string, flags?: number): void {
    this.run("unmount", flags === undefined ? [target] : [target, flags], () => {
      const stack = this.mounts.get(target);
      if (!stack?.length) throw SysError.of("umount2", "EINVAL", target);
      stack.pop();
      if (stack.length === 0) this.mounts.delete(target);
    });
  }

  unmountAll(target: string): void {
    this.run("unmountAll", [target], () => {
      this.mounts.delete(target);
    });
  }

  mkfifo(path: string, mode: number): void {
    this.run("mkfifo", [path, mode], () => {
      if (this.fifos.has(path)) throw SysError.of("mkfifo", "EEXIST", path);
      this.fifos.add(path);
    });
  }

  dup2(oldfd: number, newfd: number): void {
    this.run("dup2", [oldfd, newfd], () => undefined);
  }

  peerCred(fd: number): { pid: number; uid: number; gid: number } {
    return this.run("peerCred", [fd], () => ({ ...this.peer }));
  }

  setWinsize(fd: number, rows: number, cols: number): void {
    this.run("setWinsize", [fd, rows, cols], () => undefined);
  }

  getWinsize(fd: number): { rows: number; cols: number } {
    return this.run("getWinsize", [fd], () => ({ ...this.winsize }));
  }

  close(fd: number): void {
    this.run("close", [fd], () => {
      this.closed.push(fd);
    });
  }

  pidfdOpen(pid: number): number {
    return this.run("pidfdOpen", [pid], () => this.nextFd++);
  }

  setNonblock(fd: number, on: boolean): void {
    this.run("setNonblock", [fd, on], () => {
      if (on) this.nonblocking.add(fd);
      else this.nonblocking.delete(fd);
    });
  }

  pipe(): [number, number] {
    return this.run("pipe", [], () => [this.nextFd++, this.nextFd++]);
  }

  eventfd(initval?: number, flags?: number): number {
    const args: Parameters<Syscalls["eventfd"]> = flags === undefined ? (initval === undefined ? [] : [initval]) : [initval, flags];
    return this.run("eventfd", args, () => this.nextFd++);
  }

  listenUnix(path: string, backlog?: number): number {
    return this.run("listenUnix", backlog === undefined ? [path] : [path, backlog], () => {
      if (this.listening.has(path)) throw SysError.of("bind", "EADDRINUSE", path);
      const fd = this.nextFd++;
      this.listening.set(path, fd);
      return fd;
    });
  }

  accept(fd: number, opts?: { nonblock?: boolean }): number | null {
    return this.run("accept", opts === undefined ? [fd] : [fd, opts], () => this.pending.shift() ?? null);
  }

  epollCreate(): number {
    return this.run("epollCreate", [], () => this.nextFd++);
  }

  epollCtl(epfd: number, op: number, fd: number, events: number, token: bigint): void {
    this.run("epollCtl", [epfd, op, fd, events, token], () => undefined);
  }

  startPoller(epfd: number, notifyFd: number): void {
    this.run("startPoller", [epfd, notifyFd], () => undefined);
  }

  mknod(path: string, mode: number, major?: number, minor?: number): void {
    const args: Parameters<Syscalls["mknod"]> = major === undefined ? [path, mode] : minor === undefined ? [path, mode, major] : [path, mode, major, minor];
    this.run("mknod", args, () => {
      if (this.nodes.has(path)) throw SysError.of("mknod", "EEXIST", path);
      this.nodes.set(path, { mode, major: major ?? 0, minor: minor ?? 0 });
    });
  }

  lsetxattr(path: string, name: string, value: Uint8Array): void {
    this.run("lsetxattr", [path, name, value], () => {
      const attrs = this.xattrs.get(path) ?? new Map<string, Uint8Array>();
      attrs.set(name, value.slice());
      this.xattrs.set(path, attrs);
    });
  }

  lgetxattr(path: string, name: string): Uint8Array | null {
    return this.run("lgetxattr", [path, name], () => this.xattrs.get(path)?.get(name)?.slice() ?? null);
  }

  llistxattr(path: string): string[] {
    return this.run("llistxattr", [path], () => [...(this.xattrs.get(path)?.keys() ?? [])]);
  }

  /** Per fd only: the fake has no open file descriptions, so conflicts are made with on("flock", ...). */
  flock(fd: number, op: "exclusive" | "shared" | "unlock"): boolean {
    return this.run("flock", [fd, op], () => {
      if (op === "unlock") this.locks.delete(fd);
      else this.locks.set(fd, op);
      return true;
    });
  }
}
