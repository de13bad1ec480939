/* SPDX-License-Identifier: MIT */
/* Sockets: the network side and the local (QEMU) endpoints (net.c). */
#ifndef MW_NET_H
#define MW_NET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "mw_err.h"
#include "mw_xport.h"

/* "host:port" of a peer, "[v6]:port" included */
#define MW_PEER_MAX 80u

int mw_net_connect(const char *host, uint16_t port, unsigned long long deadline,
		   char *peer, size_t peer_cap, struct mw_err *err);

/*
 * What a connect that teardown may have to end early watches (the sender's
 * channels): publish(arg, fd) is told each socket right after it is made
 * and publish(arg, -1) before it is closed, so another thread may shut it
 * down meanwhile (the callback's lock makes that safe: no shutdown of a
 * reused fd number). The wait for the connection also polls efd: when it
 * is readable it is drained and stop(arg) asked; true ends the connect with
 * -MW_E_CANCEL ("stopped").
 */
struct mw_net_watch {
	int efd;
	void (*publish)(void *arg, int fd);
	bool (*stop)(void *arg);
	void *arg;
};

/* mw_net_connect() under a watch (NULL: none). */
int mw_net_connect_watch(const char *host, uint16_t port,
			 unsigned long long deadline, char *peer,
			 size_t peer_cap, struct mw_err *err,
			 const struct mw_net_watch *w);
int mw_net_listen(const char *host, uint16_t port, struct mw_err *err);
/* Socket options every channel gets: nodelay, keepalive, user timeout,
 * larger buffers. */
void mw_net_tune(int fd, uint32_t timeout_s);
void mw_net_peer_name(int fd, char *buf, size_t cap);
/* "host:port" ("[v6]:port") of an address; "?:0" when it is neither. */
void mw_net_addr_name(const struct sockaddr_storage *ss, char *buf, size_t cap);
/* Is the peer ss inside one of the n networks of allow (--allow-from)? */
bool mw_cidr_match(const struct mw_cidr *allow, unsigned n,
		   const struct sockaddr_storage *ss);
/* Is the socket bound to a loopback address (127/8, ::1, or 127/8 mapped
 * into IPv6)? An unspecified address (0.0.0.0, ::) is not. */
bool mw_net_is_loopback(int fd);
/* poll() for ev until deadline: 0, -MW_E_TIMEOUT or -errno. */
int mw_net_wait(int fd, short ev, unsigned long long deadline);

/* Local endpoints (QEMU side). */
/* Listens on a unix: or tcp: endpoint; returns fd or -errno (text in err). */
int mw_ep_listen(const struct mw_endpoint *ep, struct mw_err *err);
/* Connects to an endpoint (blocking, bounded by deadline). */
int mw_ep_connect(const struct mw_endpoint *ep, unsigned long long deadline,
		  struct mw_err *err);
/* "unix:/path" or "tcp:host:port" */
const char *mw_ep_name(const struct mw_endpoint *ep, char *buf, size_t cap);
#endif
