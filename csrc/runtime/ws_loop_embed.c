/* Driving the loop from a host's own poll (ws.pollfd / ws.step): the backend's descriptor to
 * watch, and one iteration with a bounded wait. libev has no call that returns its backend
 * descriptor, but an ev_embed watcher started on a scratch loop watches exactly that
 * descriptor, so it is read from there. */
#include "ws_rt_internal.h"

int ws_loop_backend_fd(ws_loop *loop) {
  struct ev_loop *ev = ws_loop_ev(loop);
  /* Only backends that can be embedded (epoll, kqueue, ports) have one descriptor that
   * becomes readable for every event of the loop. */
  if (!(ev_backend(ev) & ev_embeddable_backends())) return -1;
  struct ev_loop *scratch = ev_loop_new(EVBACKEND_SELECT | EVFLAG_NOENV | EVFLAG_NOSIGMASK);
  if (!scratch) return -1;
  ev_embed embed;
  ev_embed_init(&embed, NULL, ev); /* no callback: the scratch loop never runs */
  ev_embed_start(scratch, &embed);
  int fd = embed.io.fd;
  ev_embed_stop(scratch, &embed);
  ev_loop_destroy(scratch);
  return fd;
}

static void on_step_timeout(struct ev_loop *ev, ev_timer *w, int revents) {
  (void)ev; (void)w; (void)revents; /* only here to end the wait */
}

int ws_loop_step(ws_loop *loop, double timeout) {
  struct ev_loop *ev = ws_loop_ev(loop);
  if (!(timeout > 0)) return ev_run(ev, EVRUN_NOWAIT);
  ev_timer limit;
  ev_now_update(ev); /* the clock stood still while the host was polling */
  ev_timer_init(&limit, on_step_timeout, timeout, 0.);
  ev_timer_start(ev, &limit);
  ev_unref(ev); /* the limit alone is no work: with nothing else the loop does not wait */
  int active = ev_run(ev, EVRUN_ONCE);
  ev_ref(ev);
  ev_timer_stop(ev, &limit);
  return active;
}
