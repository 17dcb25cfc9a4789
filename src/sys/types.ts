// The one seam between bunker and the kernel. Layers above depend on this interface only; the
// bun:ffi implementation (ffi.ts) and the recording fake (fake.ts) both implement it, so unit
// tests of the shim and the manager run without root. Every method throws SysError (errors.ts)
// with the errno name and the path involved; none returns an error code.

/** How a process ended. `status` is what a shell reports: the exit code, or 128+N when killed by signal N. */
export interface WaitStatus {
  status: number;
  /** Set when the process was killed by a signal. */
  signal?: number;
  /** The raw wait(2) status word, for callers that need WCOREDUMP and the like. */
  raw: number;
}

export type ReapedChild = { pid: number } & WaitStatus;

export interface Syscalls {
  /** prctl(PR_SET_CHILD_SUBREAPER): orphans of our descendants become our children (and our zombies). */
  setSubreaper(on: boolean): void;
  isSubreaper(): boolean;
  /** waitpid(pid, WNOHANG): the status if pid has exited, null if it still runs. Throws ECHILD if not our child. */
  reap(pid: number): WaitStatus | null;
  /**
   * Reaps every exited child whose pid is not in `exclude`, by pid (never a catch-all wait, which
   * would steal Bun.spawn's statuses). Pass the pids Bun owns; children.ts keeps that set.
   */
  reapSweep(exclude: ReadonlySet<number>): ReapedChild[];
  /** sendmsg with one fd as SCM_RIGHTS, and `msg` (at least one byte goes on the wire). */
  sendFd(sock: number, fd: number, msg?: Uint8Array): void;
  /**
   * recvmsg of one message (at most 4 KiB) carrying one fd, received close-on-exec. Blocks unless
   * the socket is non-blocking or `dontWait` is set (then EAGAIN when nothing is there). A message
   * without an fd, or EOF, is EBADMSG.
   */
  recvFd(sock: number, opts?: { dontWait?: boolean }): { fd: number; msg: Uint8Array };
  /** socketpair(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC). */
  socketpair(): [number, number];
  /** mount(2). `flags` are MS_* bits (see MS in constants.ts); a bigint passes all 64 bits. */
  mount(source: string, target: string, fstype: string, flags: number | bigint, data?: string): void;
  /** umount2(2); `flags` are MNT_* bits (MNT_DETACH = 2). */
  unmount(target: string, flags?: number): void;
  /** containerd's mount.UnmountAll: MNT_DETACH until target is no mount point; a missing target is fine. */
  unmountAll(target: string): void;
  mkfifo(path: string, mode: number): void;
  /** dup2 semantics: newfd is replaced and not close-on-exec. */
  dup2(oldfd: number, newfd: number): void;
  /** SO_PEERCRED of a connected unix socket. */
  peerCred(fd: number): { pid: number; uid: number; gid: number };
  /** ioctl(TIOCSWINSZ) on a pty fd. */
  setWinsize(fd: number, rows: number, cols: number): void;
  /** ioctl(TIOCGWINSZ): the size of the terminal fd refers to (ENOTTY when it is none). */
  getWinsize(fd: number): { rows: number; cols: number };
  /** close(2); EINTR counts as closed (Linux closes the fd anyway). */
  close(fd: number): void;
  /** pidfd_open(2): an fd that becomes readable when pid exits (close it yourself). */
  pidfdOpen(pid: number): number;
  /**
   * fcntl(F_SETFL) O_NONBLOCK on or off. Bun streams (`Bun.file(fd).stream()`) poll only
   * non-blocking fds; a blocking pty is pread like a file (ESPIPE), a blocking fd ties a thread.
   */
  setNonblock(fd: number, on: boolean): void;
  /** pipe2(O_CLOEXEC): [read end, write end]. */
  pipe(): [number, number];
  /** eventfd(2), close-on-exec; `flags` are EFD_* bits (EFD.NONBLOCK, EFD.SEMAPHORE). */
  eventfd(initval?: number, flags?: number): number;
  /**
   * A unix stream socket bound and listening at `path` (which must not exist), non-blocking and
   * close-on-exec. For sockets whose peers pass fds (runc's --console-socket): Bun's own listener
   * would read the messages and drop the SCM_RIGHTS fds.
   */
  listenUnix(path: string, backlog?: number): number;
  /** accept4 of a pending connection (close-on-exec), or null when none is pending on a non-blocking listener. */
  accept(fd: number, opts?: { nonblock?: boolean }): number | null;
  /** epoll_create1(EPOLL_CLOEXEC). */
  epollCreate(): number;
  /** epoll_ctl(2); `op` and `events` from EPOLL in constants.ts; `token` comes back from the poller. */
  epollCtl(epfd: number, op: number, fd: number, events: number, token: bigint): void;
  /**
   * Starts the one thread that waits on `epfd` and writes every ready event's token (8 bytes,
   * native endian) to `notifyFd`, a blocking pipe write end. It ends when either fd goes away.
   */
  startPoller(epfd: number, notifyFd: number): void;
  /** mknod(2): `mode` carries the file type (S_IFCHR, S_IFBLK, S_IFIFO) and permission bits. */
  mknod(path: string, mode: number, major?: number, minor?: number): void;
  /** lsetxattr(2) on the entry itself (a symlink's own attributes, never its target's). */
  lsetxattr(path: string, name: string, value: Uint8Array): void;
  /** lgetxattr(2): the value, or null when the entry has no such attribute (ENODATA). */
  lgetxattr(path: string, name: string): Uint8Array | null;
  /** llistxattr(2): the attribute names of the entry itself. */
  llistxattr(path: string): string[];
  /**
   * flock(2), never blocking: `exclusive` picks LOCK_EX over LOCK_SH; `unlock` releases. Returns
   * false when another open file description holds a conflicting lock (EWOULDBLOCK).
   */
  flock(fd: number, op: "exclusive" | "shared" | "unlock"): boolean;
}

/** Decodes a raw wait(2) status: the exit code, or 128+signal like a shell (SIGKILL -> 137). */
export function decodeWaitStatus(raw: number): WaitStatus {
  const termsig = raw & 0x7f;
  if (termsig === 0) return { status: (raw >> 8) & 0xff, raw };
  if (termsig !== 0x7f) return { status: 128 + termsig, signal: termsig, raw };
  // Stopped or continued: the process has not ended; callers never ask for these (no WUNTRACED).
  return { status: (raw >> 8) & 0xff, raw };
}

/** The WaitStatus of a normal exit with `code` (for fakes and tests). */
export function exitedStatus(code: number): WaitStatus {
  return decodeWaitStatus((code & 0xff) << 8);
}

/** The WaitStatus of a death by signal `signal` (for fakes and tests). */
export function signaledStatus(signal: number): WaitStatus {
  return decodeWaitStatus(signal & 0x7f);
}
