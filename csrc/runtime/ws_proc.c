/* Processes for the workers mode: forking a worker with a usable libev loop, and the few
 * calls the master's supervision needs (its signals, a bounded wait for them, a worker's
 * status). The master runs no event loop: it waits in ws_proc_sigwait. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "ws_random.h"
#include "ws_rt_internal.h"

static sigset_t saved_mask; /* before ws_proc_master(1); a forked worker gets it back */
static int masked;

static void master_set(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGCHLD);
  sigaddset(set, SIGINT);
  sigaddset(set, SIGTERM);
}

int ws_proc_master(int on) {
  sigset_t set;
  if (on == masked) return 0;
  master_set(&set);
  if (on) {
    if (sigprocmask(SIG_BLOCK, &set, &saved_mask) < 0) return -1;
  } else if (sigprocmask(SIG_SETMASK, &saved_mask, NULL) < 0) {
    return -1;
  }
  masked = on;
  return 0;
}

pid_t ws_proc_fork(ws_loop *loop) {
  pid_t master = getpid();
  fflush(NULL); /* what is buffered is written once, by the master */
  pid_t pid = fork();
  if (pid != 0) return pid;
#ifdef __linux__
  prctl(PR_SET_PDEATHSIG, SIGTERM); /* a master killed with SIGKILL leaves no orphans... */
  if (getppid() != master) raise(SIGTERM); /* ... even if it died before the line above */
#else
  (void)master;
#endif
  if (masked) {
    sigprocmask(SIG_SETMASK, &saved_mask, NULL);
    masked = 0;
  }
  ev_loop_fork(ws_loop_ev(loop)); /* epoll and libev's signal pipe are the master's: renewed */
  ws_random_forget(); /* masking keys drawn in the master stay there */
  return 0;
}

int ws_proc_sigwait(double timeout) {
  sigset_t set;
  struct timespec ts;
  if (!(timeout > 0)) timeout = 0;
  if (timeout > 86400) timeout = 86400;
  ts.tv_sec = (time_t)timeout;
  ts.tv_nsec = (long)((timeout - (double)ts.tv_sec) * 1e9);
  master_set(&set);
  int sig = sigtimedwait(&set, NULL, &ts);
  if (sig >= 0) return sig;
  if (errno == EAGAIN || errno == EINTR) return 0;
  return -1;
}

int ws_proc_status(pid_t pid, int *code) {
  int st;
  pid_t r;
  do r = waitpid(pid, &st, WNOHANG); while (r < 0 && errno == EINTR);
  if (r < 0) return -1;
  if (r == 0) return 0;
  if (WIFSIGNALED(st)) { *code = WTERMSIG(st); return 2; }
  *code = WIFEXITED(st) ? WEXITSTATUS(st) : 0;
  return 1;
}

int ws_proc_cores(void) {
#ifdef CPU_COUNT
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}
