/* Name lookups off the loop's thread: getaddrinfo_a with no notification, polled by its owner
 * (the client connect and the Redis connection poll it from their timers), so there is no
 * thread of ours and no signal. */
#ifndef WS_DNS_H
#define WS_DNS_H

#include <netdb.h>
#include <sys/socket.h>

#define WS_DNS_HOST_MAX 255 /* a DNS name's limit */

struct ws_dns;

/* Starts looking up host (at most WS_DNS_HOST_MAX bytes) and service with hints. Returns the
 * lookup, or NULL with *gai set to getaddrinfo_a's error (0: out of memory). */
struct ws_dns *ws_dns_start(const char *host, const char *service, const struct addrinfo *hints, int *gai);

/* EAI_INPROGRESS while the lookup runs, then 0 (the addresses are ws_dns_result's) or its error. */
int ws_dns_status(struct ws_dns *d);
const struct addrinfo *ws_dns_result(struct ws_dns *d);

/* Ends a lookup, finished or not. One glibc cannot cancel waits on a list until glibc no longer
 * writes into it, and is freed by a later ws_dns_reap. */
void ws_dns_drop(struct ws_dns *d);
void ws_dns_reap(void);

/* Copies the first max addresses of a lookup's result (res may be NULL) into addrs and lens, to
 * be tried in turn; returns how many. */
int ws_dns_addresses(const struct addrinfo *res, struct sockaddr_storage *addrs, socklen_t *lens, int max);

#endif
