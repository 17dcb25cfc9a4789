// bunker-init: the process `bunker run --init` puts at PID 1 of the container, in the role docker
// gives tini (its /sbin/docker-init). Usage: bunker-init [--] CMD [ARG...].
//
// What it does, and why (tini's behaviour, our own code):
// - runs CMD as its only direct child, in a process group of its own that it makes the terminal's
//   foreground group when stdin is a terminal: Ctrl-C then reaches the command once, from the
//   kernel, and not a second time through us;
// - waits for signals synchronously (all blocked, sigwaitinfo): PID 1 of a pid namespace gets no
//   signal it has no handler for, but a blocked one stays pending and is read here. Every signal
//   but SIGCHLD is passed on to the child (SIGKILL and SIGSTOP cannot be caught: the kernel's own);
// - reaps every process that ends up reparented to it (orphans of double forks), so no zombie
//   piles up in a long-lived container;
// - exits when the child does, with its code, or 128+signal when a signal ended it (as a shell
//   and docker report it). A command that cannot be executed gives 127 (not found) or 126 (not
//   executable), docker's codes.
// Static (native/Makefile: gcc -static) because the container's root may have no libc at all
// (busybox-static, a scratch image), and it is bind-mounted there read-only, not installed.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

// Signals raised by the process's own faults: left unblocked, so a bug of ours crashes loudly
// instead of being waited for and forwarded.
static const int SYNCHRONOUS[] = {SIGFPE, SIGILL, SIGSEGV, SIGBUS, SIGABRT, SIGTRAP, SIGSYS};

static void die(const char *what) {
  fprintf(stderr, "bunker-init: %s: %s\n", what, strerror(errno));
  exit(1);
}

static pid_t spawn_child(char **argv, const sigset_t *original) {
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid > 0) return pid;
  // Own process group, and the terminal's foreground one. tcsetpgrp from a background group is
  // allowed here because SIGTTOU is still blocked.
  if (setpgid(0, 0) < 0) die("setpgid");
  if (isatty(STDIN_FILENO) && tcsetpgrp(STDIN_FILENO, getpgrp()) < 0 && errno != ENOTTY && errno != ENXIO) die("tcsetpgrp");
  if (sigprocmask(SIG_SETMASK, original, NULL) < 0) die("sigprocmask");
  execvp(argv[0], argv);
  int err = errno;
  fprintf(stderr, "bunker-init: exec %s: %s\n", argv[0], strerror(err));
  _exit(err == ENOENT ? 127 : 126);
}

/** Reaps every exited process; returns 1 and sets *status once the child itself is among them. */
static int reap(pid_t child, int *status) {
  int found = 0;
  for (;;) {
    int st;
    pid_t pid = waitpid(-1, &st, WNOHANG);
    if (pid <= 0) {
      if (pid < 0 && errno != ECHILD) die("waitpid");
      return found;
    }
    if (pid == child) {
      *status = st;
      found = 1;
    }
  }
}

int main(int argc, char **argv) {
  int first = 1;
  if (first < argc && strcmp(argv[first], "--") == 0) first++;
  if (first >= argc) {
    fprintf(stderr, "usage: %s [--] CMD [ARG...]\n", argv[0]);
    return 1;
  }
  // Outside a pid namespace of our own, still be the parent orphans are given to.
  if (getpid() != 1) prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

  sigset_t all, original;
  sigfillset(&all);
  for (size_t i = 0; i < sizeof SYNCHRONOUS / sizeof SYNCHRONOUS[0]; i++) sigdelset(&all, SYNCHRONOUS[i]);
  if (sigprocmask(SIG_SETMASK, &all, &original) < 0) die("sigprocmask");

  pid_t child = spawn_child(argv + first, &original);
  int status = 0;
  for (;;) {
    siginfo_t info;
    int sig = sigwaitinfo(&all, &info);
    if (sig < 0) {
      if (errno == EINTR) continue;
      die("sigwaitinfo");
    }
    if (sig != SIGCHLD) {
      // ESRCH: the child is gone and its SIGCHLD is on its way
      if (kill(child, sig) < 0 && errno != ESRCH) die("kill");
      continue;
    }
    if (reap(child, &status)) break;
  }
  // Zombies that exited together with the child are collected before we go; anything still alive
  // is killed by the kernel when PID 1 exits.
  reap(child, &status);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}
