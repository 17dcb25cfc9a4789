// libbunker: the few kernel calls Bun lacks, for src/sys/ffi.ts (the only caller).
// Convention: every function returns >= 0 on success and -errno on failure; results that are not
// the return value go through caller-owned out pointers. No global state, no allocation kept; the
// one thread (bk_poller_start) owns only the fds it was given.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define RET(expr) ((expr) < 0 ? -errno : 0)

int bk_set_subreaper(int on) { return RET(prctl(PR_SET_CHILD_SUBREAPER, on ? 1 : 0, 0, 0, 0)); }

int bk_get_subreaper(void) {
  int on = 0;
  if (prctl(PR_GET_CHILD_SUBREAPER, &on, 0, 0, 0) < 0) return -errno;
  return on ? 1 : 0;
}

// Reaps pid if it has exited: returns pid (raw wait status in *status), 0 if it still runs, or -errno.
int bk_reap(int pid, int *status) {
  if (pid <= 0) return -EINVAL; // never a catch-all wait: that would steal Bun's children
  int r;
  do r = waitpid(pid, status, WNOHANG);
  while (r < 0 && errno == EINTR);
  return r < 0 ? -errno : r;
}

static int is_excluded(int pid, const int *exclude, int nexclude) {
  for (int i = 0; i < nexclude; i++)
    if (exclude[i] == pid) return 1;
  return 0;
}

struct sweep {
  const int *exclude;
  int nexclude;
  int *pids, *statuses, cap, n;
};

// Reaps pid unless excluded; returns 1 when the out arrays are full.
static int sweep_one(struct sweep *s, int pid) {
  int st = 0;
  if (pid <= 0 || is_excluded(pid, s->exclude, s->nexclude)) return 0;
  if (bk_reap(pid, &st) == pid) {
    s->pids[s->n] = pid;
    s->statuses[s->n] = st;
    s->n++;
  }
  return s->n >= s->cap;
}

// Parses the space-separated pids of /proc/self/task/TID/children, in chunks of any size.
static int sweep_children_file(struct sweep *s, int fd) {
  char buf[4096];
  int pid = 0;
  ssize_t len;
  while ((len = read(fd, buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < len; i++) {
      if (buf[i] >= '0' && buf[i] <= '9') {
        pid = pid * 10 + (buf[i] - '0');
      } else {
        if (sweep_one(s, pid)) return 1;
        pid = 0;
      }
    }
  }
  return sweep_one(s, pid);
}

// Kernels without CONFIG_PROC_CHILDREN: every process whose parent is us (slower, same result).
static int sweep_proc_scan(struct sweep *s) {
  DIR *proc = opendir("/proc");
  if (!proc) return -errno;
  int self = getpid(), full = 0;
  struct dirent *e;
  while (!full && (e = readdir(proc))) {
    char path[64], stat[512];
    int pid = atoi(e->d_name);
    if (pid <= 0) continue;
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t len = read(fd, stat, sizeof stat - 1);
    close(fd);
    if (len <= 0) continue;
    stat[len] = 0;
    char *rp = strrchr(stat, ')'); // comm may contain spaces and parentheses
    int ppid = 0;
    if (rp && sscanf(rp + 1, " %*c %d", &ppid) == 1 && ppid == self) full = sweep_one(s, pid);
  }
  closedir(proc);
  return full;
}

// One pass over every thread's children (orphans attach to any live thread of a subreaper).
static int sweep_pass(struct sweep *s) {
  DIR *tasks = opendir("/proc/self/task");
  if (!tasks) return -errno;
  int full = 0, found = 0;
  struct dirent *e;
  while (!full && (e = readdir(tasks))) {
    int tid = atoi(e->d_name);
    if (tid <= 0) continue;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/children", tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue; // the thread just exited
    found = 1;
    full = sweep_children_file(s, fd);
    close(fd);
  }
  closedir(tasks);
  return found ? full : sweep_proc_scan(s);
}

// Reaps every exited child whose pid is not in exclude (Bun.spawn's children, which Bun reaps
// itself), without ever calling a catch-all wait. Writes up to cap pids and raw statuses and
// returns their count; a caller that gets cap back calls again. Passes repeat until one reaps
// nothing, because the children files may skip entries while the list changes under them.
int bk_reap_sweep(const int *exclude, int nexclude, int *pids, int *statuses, int cap) {
  struct sweep s = {exclude, nexclude < 0 ? 0 : nexclude, pids, statuses, cap, 0};
  if (cap <= 0) return -EINVAL;
  for (;;) {
    int before = s.n;
    int r = sweep_pass(&s);
    if (r < 0) return s.n > 0 ? s.n : r;
    if (r > 0 || s.n == before) return s.n;
  }
}

int bk_send_fd(int sock, int fd, const void *msg, int len) {
  char one = 0;
  struct iovec iov = {(void *)(len > 0 ? msg : &one), len > 0 ? (size_t)len : 1};
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } c;
  memset(&c, 0, sizeof c);
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf, .msg_controllen = sizeof c.buf};
  struct cmsghdr *h = CMSG_FIRSTHDR(&m);
  h->cmsg_level = SOL_SOCKET;
  h->cmsg_type = SCM_RIGHTS;
  h->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(h), &fd, sizeof(int));
  ssize_t r;
  do r = sendmsg(sock, &m, MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  return r < 0 ? -errno : (int)r;
}

// Receives one message of at most cap bytes carrying one fd (close-on-exec) into *fd. Returns the
// byte count. No fd in the message (or EOF) is -EBADMSG; extra fds beyond the first are closed.
int bk_recv_fd(int sock, void *buf, int cap, int *fd, int dontwait) {
  struct iovec iov = {buf, (size_t)cap};
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int) * 4)];
  } c;
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf, .msg_controllen = sizeof c.buf};
  ssize_t r;
  *fd = -1;
  do r = recvmsg(sock, &m, MSG_CMSG_CLOEXEC | (dontwait ? MSG_DONTWAIT : 0));
  while (r < 0 && errno == EINTR);
  if (r < 0) return -errno;
  for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
    if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) continue;
    int n = (int)((h->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    for (int i = 0; i < n; i++) {
      int got;
      memcpy(&got, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
      if (*fd < 0) *fd = got;
      else close(got);
    }
  }
  if (*fd < 0) return -EBADMSG;
  return (int)r;
}

int bk_socketpair(int *fds) { return RET(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds)); }

int bk_mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data) {
  return RET(mount(source, target, fstype, flags, data));
}

int bk_umount2(const char *target, int flags) { return RET(umount2(target, flags)); }

// containerd's mount.UnmountAll: detach until the target is no longer a mount point (EINVAL) or
// is gone (ENOENT); any other error is returned.
int bk_unmount_all(const char *target) {
  for (;;) {
    if (umount2(target, MNT_DETACH) == 0) continue;
    if (errno == EINVAL || errno == ENOENT) return 0;
    if (errno != EINTR) return -errno;
  }
}

int bk_mkfifo(const char *path, int mode) { return RET(mkfifo(path, (mode_t)mode)); }

// dup2 semantics (newfd is not close-on-exec); dup3 refuses oldfd == newfd, dup2 checks oldfd.
int bk_dup2(int oldfd, int newfd) {
  if (oldfd == newfd) return fcntl(oldfd, F_GETFD) < 0 ? -errno : newfd;
  int r;
  do r = dup3(oldfd, newfd, 0);
  while (r < 0 && errno == EINTR);
  return r < 0 ? -errno : r;
}

// out = {pid, uid, gid} of the peer of a connected unix socket.
int bk_peercred(int fd, int *out) {
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return -errno;
  out[0] = cred.pid;
  out[1] = (int)cred.uid;
  out[2] = (int)cred.gid;
  return 0;
}

int bk_set_winsize(int fd, int rows, int cols) {
  struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
  return RET(ioctl(fd, TIOCSWINSZ, &ws));
}

// out = {rows, cols} of the terminal fd refers to (the CLI's own, for ResizePty on SIGWINCH).
int bk_get_winsize(int fd, int *out) {
  struct winsize ws;
  if (ioctl(fd, TIOCGWINSZ, &ws) < 0) return -errno;
  out[0] = ws.ws_row;
  out[1] = ws.ws_col;
  return 0;
}

// Linux closes the fd even when close reports EINTR, so a retry could close someone else's fd.
int bk_close(int fd) { return close(fd) < 0 && errno != EINTR ? -errno : 0; }

int bk_pidfd_open(int pid) {
  long r = syscall(SYS_pidfd_open, pid, 0);
  return r < 0 ? -errno : (int)r;
}

// O_NONBLOCK on or off (a pty master received from runc comes blocking; Bun polls only
// non-blocking fds and would otherwise pread it like a file).
int bk_set_nonblock(int fd, int on) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return -errno;
  int want = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
  return want == fl ? 0 : RET(fcntl(fd, F_SETFL, want));
}

int bk_pipe(int *fds) { return RET(pipe2(fds, O_CLOEXEC)); }

// EFD_* flags pass through (EFD_CLOEXEC is always added).
int bk_eventfd(unsigned int initval, int flags) {
  int fd = eventfd(initval, flags | EFD_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

// A non-blocking, close-on-exec unix stream socket listening at path (which must not exist).
int bk_listen_unix(const char *path, int backlog) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  size_t len = strlen(path);
  if (len == 0) return -EINVAL;
  if (len >= sizeof addr.sun_path) return -ENAMETOOLONG;
  memcpy(addr.sun_path, path, len + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, backlog) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

// accept4 of one pending connection (close-on-exec; non-blocking when `nonblock`); -EAGAIN when
// none is pending on a non-blocking listener.
int bk_accept(int fd, int nonblock) {
  int r;
  do r = accept4(fd, NULL, NULL, SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0));
  while (r < 0 && errno == EINTR);
  return r < 0 ? -errno : r;
}

// Readiness of many fds for one Bun stream. Bun can only wait on an fd by reading it, and a pending
// read costs tens of KiB each: a shim serving hundreds of containers would pay that per stdio pipe.
// Instead the fds go into an epoll set (EPOLLONESHOT: one event per arming), and one thread writes
// each ready fd's 8-byte token to a pipe the JS side reads as a single stream.
int bk_epoll_create(void) {
  int fd = epoll_create1(EPOLL_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

int bk_epoll_ctl(int epfd, int op, int fd, unsigned int events, uint64_t token) {
  struct epoll_event ev = {.events = events, .data.u64 = token};
  return RET(epoll_ctl(epfd, op, fd, op == EPOLL_CTL_DEL ? NULL : &ev));
}

struct poller {
  int epfd;
  int notify_fd;
};

static void *poller_main(void *arg) {
  struct poller p = *(struct poller *)arg;
  free(arg);
  struct epoll_event ev[64];
  for (;;) {
    int n = epoll_wait(p.epfd, ev, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break; // the epoll fd was closed: nothing left to watch
    }
    for (int i = 0; i < n; i++) {
      uint64_t token = ev[i].data.u64;
      const char *b = (const char *)&token;
      size_t off = 0;
      while (off < sizeof token) {
        ssize_t w = write(p.notify_fd, b + off, sizeof token - off);
        if (w < 0) {
          if (errno == EINTR) continue;
          return NULL; // the reader is gone: the process is ending
        }
        off += (size_t)w;
      }
    }
  }
  return NULL;
}

// Starts the thread that turns epfd's events into tokens on notify_fd (a blocking pipe write end).
// The thread blocks every signal: SIGCHLD and the rest stay with Bun's threads.
int bk_poller_start(int epfd, int notify_fd) {
  struct poller *p = malloc(sizeof *p);
  if (!p) return -ENOMEM;
  p->epfd = epfd;
  p->notify_fd = notify_fd;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old); // the new thread inherits this mask
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  pthread_t t;
  int r = pthread_create(&t, &attr, poller_main, p);
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (r != 0) {
    free(p);
    return -r;
  }
  return 0;
}

// Files an image layer holds that Node's fs cannot make: device nodes and FIFOs (mknod), extended
// attributes on the entry itself, never a symlink's target (l*xattr), and the cross-process lock
// the content and snapshot stores take (flock: released by the kernel when the holder dies).
int bk_mknod(const char *path, int mode, unsigned int major, unsigned int minor) {
  return RET(mknod(path, (mode_t)mode, makedev(major, minor)));
}

int bk_lsetxattr(const char *path, const char *name, const void *value, int len) {
  return RET(lsetxattr(path, name, value, (size_t)len, 0));
}

// The value's length (copied into buf when it fits in cap), or -errno (-ENODATA: no such attribute).
int bk_lgetxattr(const char *path, const char *name, void *buf, int cap) {
  ssize_t n = lgetxattr(path, name, buf, (size_t)cap);
  return n < 0 ? -errno : (int)n;
}

// The NUL-separated list's length (copied into buf when it fits in cap), or -errno.
int bk_llistxattr(const char *path, char *buf, int cap) {
  ssize_t n = llistxattr(path, buf, (size_t)cap);
  return n < 0 ? -errno : (int)n;
}

// flock(2) with LOCK_NB always: a blocking flock would stall Bun's one JavaScript thread, so
// callers retry on -EWOULDBLOCK with a timer instead.
int bk_flock(int fd, int op) {
  int r;
  do r = flock(fd, op | LOCK_NB);
  while (r < 0 && errno == EINTR);
  return r < 0 ? -errno : 0;
}
