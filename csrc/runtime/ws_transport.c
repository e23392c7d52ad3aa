/* The plain-socket transport. A TLS transport implements the same table (ws_rt.h) and sets
 * s->want to EV_WRITE when a read needs a write first, or EV_READ for a write. */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ws_rt_internal.h"

static ssize_t plain_read(ws_stream *s, void *p, size_t n) {
  ssize_t r;
  do r = recv(s->fd, p, n, 0); while (r < 0 && errno == EINTR);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    errno = EAGAIN;
    s->want = EV_READ;
  }
  return r;
}

static ssize_t plain_writev(ws_stream *s, const struct iovec *iov, int iovcnt) {
  struct msghdr m = {0};
  ssize_t r;
  m.msg_iov = (struct iovec *)iov;
  m.msg_iovlen = (size_t)iovcnt;
  /* MSG_NOSIGNAL: a peer that went away is an EPIPE for this connection, not a SIGPIPE.
   * One buffer (an echo, a flush of one output) goes with send: the kernel then skips copying
   * and checking a msghdr and an iovec array from user memory on every write. */
  if (iovcnt == 1) {
    do r = send(s->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL); while (r < 0 && errno == EINTR);
  } else {
    do r = sendmsg(s->fd, &m, MSG_NOSIGNAL); while (r < 0 && errno == EINTR);
  }
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    errno = EAGAIN;
    s->want = EV_WRITE;
  }
  return r;
}

static void plain_shutdown(ws_stream *s) { shutdown(s->fd, SHUT_WR); }

const ws_transport ws_transport_plain = {
  "tcp", NULL, plain_read, plain_writev, NULL, plain_shutdown, NULL
};
