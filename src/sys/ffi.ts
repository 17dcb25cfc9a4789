// The bun:ffi implementation of Syscalls over native/libbunker.so. The only file that imports
// bun:ffi. src/native.ts finds the library: embedded in a compiled binary, prebuilt in an
// installed package, or a dev build.
import { dlopen, FFIType } from "bun:ffi";
import { locateNative } from "../native.ts";
import { SysError } from "./errors.ts";
import { decodeWaitStatus, type ReapedChild, type Syscalls, type WaitStatus } from "./types.ts";

const { i32, u32, u64, ptr } = FFIType;

const symbols = {
  bk_set_subreaper: { args: [i32], returns: i32 },
  bk_get_subreaper: { args: [], returns: i32 },
  bk_reap: { args: [i32, ptr], returns: i32 },
  bk_reap_sweep: { args: [ptr, i32, ptr, ptr, i32], returns: i32 },
  bk_send_fd: { args: [i32, i32, ptr, i32], returns: i32 },
  bk_recv_fd: { args: [i32, ptr, i32, ptr, i32], returns: i32 },
  bk_socketpair: { args: [ptr], returns: i32 },
  bk_mount: { args: [ptr, ptr, ptr, u64, ptr], returns: i32 },
  bk_umount2: { args: [ptr, i32], returns: i32 },
  bk_unmount_all: { args: [ptr], returns: i32 },
  bk_mkfifo: { args: [ptr, i32], returns: i32 },
  bk_dup2: { args: [i32, i32], returns: i32 },
  bk_peercred: { args: [i32, ptr], returns: i32 },
  bk_set_winsize: { args: [i32, i32, i32], returns: i32 },
  bk_get_winsize: { args: [i32, ptr], returns: i32 },
  bk_close: { args: [i32], returns: i32 },
  bk_pidfd_open: { args: [i32], returns: i32 },
  bk_set_nonblock: { args: [i32, i32], returns: i32 },
  bk_pipe: { args: [ptr], returns: i32 },
  bk_eventfd: { args: [u32, i32], returns: i32 },
  bk_listen_unix: { args: [ptr, i32], returns: i32 },
  bk_accept: { args: [i32, i32], returns: i32 },
  bk_epoll_create: { args: [], returns: i32 },
  bk_epoll_ctl: { args: [i32, i32, i32, u32, u64], returns: i32 },
  bk_poller_start: { args: [i32, i32], returns: i32 },
  bk_mknod: { args: [ptr, i32, u32, u32], returns: i32 },
  bk_lsetxattr: { args: [ptr, ptr, ptr, i32], returns: i32 },
  bk_lgetxattr: { args: [ptr, ptr, ptr, i32], returns: i32 },
  bk_llistxattr: { args: [ptr, ptr, i32], returns: i32 },
  bk_flock: { args: [i32, i32], returns: i32 },
} as const;

const SWEEP_BATCH = 256;
const RECV_MAX = 4096;
const EINVAL = 22;
const EAGAIN = 11;
const ERANGE = 34;
const ENODATA = 61;
const LOCK = { shared: 1, exclusive: 2, unlock: 8 } as const;

const encoder = new TextEncoder();

/** A NUL-terminated C string; a NUL inside would silently truncate the path, so it is EINVAL. */
function cstr(syscall: string, s: string): Uint8Array {
  if (s.includes("\0")) throw new SysError(syscall, EINVAL, JSON.stringify(s));
  return encoder.encode(`${s}\0`);
}

function check(r: number, syscall: string, path?: string): number {
  if (r < 0) throw new SysError(syscall, -r, path);
  return r;
}

const libPath = locateNative("libbunker.so");

export class FfiSyscalls implements Syscalls {
  private readonly lib = dlopen(libPath, symbols).symbols;

  setSubreaper(on: boolean): void {
    check(this.lib.bk_set_subreaper(on ? 1 : 0), "prctl(PR_SET_CHILD_SUBREAPER)");
  }

  isSubreaper(): boolean {
    return check(this.lib.bk_get_subreaper(), "prctl(PR_GET_CHILD_SUBREAPER)") === 1;
  }

  reap(pid: number): WaitStatus | null {
    const status = new Int32Array(1);
    const r = check(this.lib.bk_reap(pid, status), "waitpid", String(pid));
    return r === 0 ? null : decodeWaitStatus(status[0]!);
  }

  reapSweep(exclude: ReadonlySet<number>): ReapedChild[] {
    const ex = Int32Array.from(exclude);
    const pids = new Int32Array(SWEEP_BATCH);
    const statuses = new Int32Array(SWEEP_BATCH);
    const out: ReapedChild[] = [];
    for (;;) {
      // An empty typed array would pass NULL; the C side reads nothing when the count is 0 anyway.
      const n = check(this.lib.bk_reap_sweep(ex.length ? ex : null, ex.length, pids, statuses, SWEEP_BATCH), "waitpid");
      for (let i = 0; i < n; i++) out.push({ pid: pids[i]!, ...decodeWaitStatus(statuses[i]!) });
      if (n < SWEEP_BATCH) return out;
    }
  }

  sendFd(sock: number, fd: number, msg?: Uint8Array): void {
    const body = msg && msg.length > 0 ? msg : null;
    check(this.lib.bk_send_fd(sock, fd, body, body ? body.length : 0), "sendmsg");
  }

  recvFd(sock: number, opts?: { dontWait?: boolean }): { fd: number; msg: Uint8Array } {
    const buf = new Uint8Array(RECV_MAX);
    const fd = new Int32Array(1);
    const n = check(this.lib.bk_recv_fd(sock, buf, buf.length, fd, opts?.dontWait ? 1 : 0), "recvmsg");
    return { fd: fd[0]!, msg: buf.slice(0, n) };
  }

  socketpair(): [number, number] {
    const fds = new Int32Array(2);
    check(this.lib.bk_socketpair(fds), "socketpair");
    return [fds[0]!, fds[1]!];
  }

  mount(source: string, target: string, fstype: string, flags: number | bigint, data?: string): void {
    const r = this.lib.bk_mount(
      cstr("mount", source),
      cstr("mount", target),
      cstr("mount", fstype),
      flags,
      data === undefined ? null : cstr("mount", data),
    );
    check(r, "mount", target);
  }

  unmount(target: string, flags = 0): void {
    check(this.lib.bk_umount2(cstr("umount2", target), flags), "umount2", target);
  }

  unmountAll(target: string): void {
    check(this.lib.bk_unmount_all(cstr("umount2", target)), "umount2", target);
  }

  mkfifo(path: string, mode: number): void {
    check(this.lib.bk_mkfifo(cstr("mkfifo", path), mode), "mkfifo", path);
  }

  dup2(oldfd: number, newfd: number): void {
    check(this.lib.bk_dup2(oldfd, newfd), "dup2");
  }

  peerCred(fd: number): { pid: number; uid: number; gid: number } {
    const out = new Int32Array(3);
    check(this.lib.bk_peercred(fd, out), "getsockopt(SO_PEERCRED)");
    // uid/gid are unsigned in the kernel; >>> 0 keeps 4294967295 (nobody's -1) positive.
    return { pid: out[0]!, uid: out[1]! >>> 0, gid: out[2]! >>> 0 };
  }

  setWinsize(fd: number, rows: number, cols: number): void {
    if (!(rows >= 0 && rows <= 0xffff && cols >= 0 && cols <= 0xffff)) {
      throw new SysError("ioctl(TIOCSWINSZ)", EINVAL, `${rows}x${cols}`);
    }
    check(this.lib.bk_set_winsize(fd, rows, cols), "ioctl(TIOCSWINSZ)");
  }

  getWinsize(fd: number): { rows: number; cols: number } {
    const out = new Int32Array(2);
    check(this.lib.bk_get_winsize(fd, out), "ioctl(TIOCGWINSZ)");
    return { rows: out[0]!, cols: out[1]! };
  }

  close(fd: number): void {
    check(this.lib.bk_close(fd), "close");
  }

  pidfdOpen(pid: number): number {
    return check(this.lib.bk_pidfd_open(pid), "pidfd_open", String(pid));
  }

  setNonblock(fd: number, on: boolean): void {
    check(this.lib.bk_set_nonblock(fd, on ? 1 : 0), "fcntl(F_SETFL)");
  }

  pipe(): [number, number] {
    const fds = new Int32Array(2);
    check(this.lib.bk_pipe(fds), "pipe2");
    return [fds[0]!, fds[1]!];
  }

  eventfd(initval = 0, flags = 0): number {
    if (!Number.isInteger(initval) || initval < 0 || initval > 0xffffffff) throw new SysError("eventfd", EINVAL, String(initval));
    return check(this.lib.bk_eventfd(initval, flags), "eventfd");
  }

  listenUnix(path: string, backlog = 16): number {
    return check(this.lib.bk_listen_unix(cstr("bind", path), backlog), "bind", path);
  }

  accept(fd: number, opts?: { nonblock?: boolean }): number | null {
    const r = this.lib.bk_accept(fd, opts?.nonblock ? 1 : 0);
    if (r === -EAGAIN) return null;
    return check(r, "accept4");
  }

  epollCreate(): number {
    return check(this.lib.bk_epoll_create(), "epoll_create1");
  }

  epollCtl(epfd: number, op: number, fd: number, events: number, token: bigint): void {
    check(this.lib.bk_epoll_ctl(epfd, op, fd, events >>> 0, token), "epoll_ctl");
  }

  startPoller(epfd: number, notifyFd: number): void {
    check(this.lib.bk_poller_start(epfd, notifyFd), "pthread_create");
  }

  mknod(path: string, mode: number, major = 0, minor = 0): void {
    check(this.lib.bk_mknod(cstr("mknod", path), mode, major >>> 0, minor >>> 0), "mknod", path);
  }

  lsetxattr(path: string, name: string, value: Uint8Array): void {
    // An empty value is legal; a zero-length typed array would pass NULL, which the kernel also takes.
    check(this.lib.bk_lsetxattr(cstr("lsetxattr", path), cstr("lsetxattr", name), value.length ? value : null, value.length), "lsetxattr", `${path} ${name}`);
  }

  lgetxattr(path: string, name: string): Uint8Array | null {
    const p = cstr("lgetxattr", path);
    const n = cstr("lgetxattr", name);
    // Ask for the size, then read; ERANGE means it grew in between, so ask again.
    for (;;) {
      const size = this.lib.bk_lgetxattr(p, n, null, 0);
      if (size === -ENODATA) return null;
      check(size, "lgetxattr", `${path} ${name}`);
      if (size === 0) return new Uint8Array(0);
      const buf = new Uint8Array(size);
      const r = this.lib.bk_lgetxattr(p, n, buf, size);
      if (r === -ERANGE) continue;
      if (r === -ENODATA) return null;
      return buf.subarray(0, check(r, "lgetxattr", `${path} ${name}`));
    }
  }

  llistxattr(path: string): string[] {
    const p = cstr("llistxattr", path);
    for (;;) {
      const size = check(this.lib.bk_llistxattr(p, null, 0), "llistxattr", path);
      if (size === 0) return [];
      const buf = new Uint8Array(size);
      const r = this.lib.bk_llistxattr(p, buf, size);
      if (r === -ERANGE) continue;
      const names = new TextDecoder().decode(buf.subarray(0, check(r, "llistxattr", path)));
      return names.split("\0").filter((x) => x.length > 0);
    }
  }

  flock(fd: number, op: "exclusive" | "shared" | "unlock"): boolean {
    const r = this.lib.bk_flock(fd, LOCK[op]);
    if (r === -EAGAIN) return false; // EWOULDBLOCK == EAGAIN on Linux
    check(r, "flock");
    return true;
  }
}

/** Where the library was loaded from: native/ in a checkout, a $bunfs path in a compiled binary. */
export const nativeLibraryPath: string = libPath;
