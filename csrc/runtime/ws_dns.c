/* Name lookups with getaddrinfo_a, polled by their owner (see ws_dns.h). A lookup whose owner
 * goes away first and that glibc cannot cancel stays on the orphan list until it ends. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "ws_dns.h"

struct ws_dns {
  struct gaicb cb;
  struct addrinfo hints;
  char host[WS_DNS_HOST_MAX + 1];
  char service[8];
  struct ws_dns *next;
};
static struct ws_dns *orphans;

static void dns_free(struct ws_dns *d) {
  if (d->cb.ar_result) freeaddrinfo(d->cb.ar_result);
  free(d);
}

struct ws_dns *ws_dns_start(const char *host, const char *service, const struct addrinfo *hints, int *gai) {
  size_t hlen = strlen(host), slen = strlen(service);
  *gai = 0;
  if (hlen > WS_DNS_HOST_MAX || slen >= sizeof ((struct ws_dns *)0)->service) {
    *gai = EAI_OVERFLOW;
    return NULL;
  }
  struct ws_dns *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  memcpy(d->host, host, hlen + 1);
  memcpy(d->service, service, slen + 1);
  d->hints = *hints;
  d->cb.ar_name = d->host;
  d->cb.ar_service = d->service;
  d->cb.ar_request = &d->hints;
  struct gaicb *list[1] = { &d->cb };
  struct sigevent sev;
  memset(&sev, 0, sizeof sev);
  sev.sigev_notify = SIGEV_NONE; /* polled by the owner: no signal, no thread of ours */
  int rc = getaddrinfo_a(GAI_NOWAIT, list, 1, &sev);
  if (rc != 0) {
    free(d);
    *gai = rc;
    return NULL;
  }
  return d;
}

int ws_dns_status(struct ws_dns *d) {
  return gai_error(&d->cb);
}

const struct addrinfo *ws_dns_result(struct ws_dns *d) {
  return d->cb.ar_result;
}

void ws_dns_drop(struct ws_dns *d) {
  if (!d) return;
  gai_cancel(&d->cb);
  if (gai_error(&d->cb) == EAI_INPROGRESS) { /* glibc still writes into it: park it */
    d->next = orphans;
    orphans = d;
  } else {
    dns_free(d);
  }
}

int ws_dns_addresses(const struct addrinfo *res, struct sockaddr_storage *addrs, socklen_t *lens, int max) {
  int n = 0;
  for (const struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
    if (ai->ai_addrlen > sizeof addrs[0]) continue;
    memcpy(&addrs[n], ai->ai_addr, ai->ai_addrlen);
    lens[n] = ai->ai_addrlen;
    n++;
  }
  return n;
}

void ws_dns_reap(void) {
  struct ws_dns **pp = &orphans;
  while (*pp) {
    struct ws_dns *d = *pp;
    if (gai_error(&d->cb) == EAI_INPROGRESS) { pp = &d->next; continue; }
    *pp = d->next;
    dns_free(d);
  }
}
