// Flag bits for the Syscalls methods that take them (Linux values from <sys/mount.h>).

export const MS = {
  RDONLY: 0x1,
  NOSUID: 0x2,
  NODEV: 0x4,
  NOEXEC: 0x8,
  REMOUNT: 0x20,
  NOATIME: 0x400,
  BIND: 0x1000,
  MOVE: 0x2000,
  REC: 0x4000,
  PRIVATE: 0x40000,
  SLAVE: 0x80000,
  SHARED: 0x100000,
} as const;

export const MNT = {
  FORCE: 0x1,
  DETACH: 0x2,
  EXPIRE: 0x4,
  NOFOLLOW: 0x8,
} as const;

/** eventfd(2) flags (EFD_CLOEXEC is always set by Syscalls.eventfd). */
export const EFD = {
  SEMAPHORE: 0x1,
  NONBLOCK: 0x800,
} as const;

/** epoll_ctl(2) operations and event bits (<sys/epoll.h>). */
export const EPOLL = {
  CTL_ADD: 1,
  CTL_DEL: 2,
  CTL_MOD: 3,
  IN: 0x1,
  OUT: 0x4,
  ERR: 0x8,
  HUP: 0x10,
  ONESHOT: 0x40000000,
} as const;
