/* SPDX-License-Identifier: MIT */
/*
 * TCP sockets: connect with a deadline, listen, per-channel tuning. Called by
 * the channel threads (connect) and the listener (listen, accept).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "mw_parse.h"
#include "mw_thread.h"
#include "net.h"

void mw_net_addr_name(const struct sockaddr_storage *ss, char *buf, size_t cap)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		port = ntohs(a->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		port = ntohs(a->sin6_port);
	}
	snprintf(buf, cap, ss->ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u",
		 host, port);
}

void mw_net_peer_name(int fd, char *buf, size_t cap)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len = sizeof(ss);

	if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
		ss.ss_family = AF_UNSPEC;
	mw_net_addr_name(&ss, buf, cap);
}

void mw_net_tune(int fd, uint32_t timeout_s)
{
	int one = 1, idle = 5, intvl = 2, cnt = 3;
	unsigned int uto = timeout_s * 1000u;
	int buf = 4 << 20;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	/* a dead peer fails the write instead of hanging for 15 minutes */
	if (uto)
		setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &uto,
			   sizeof(uto));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
}

/* poll() for ev on fd until deadline, and with w for its eventfd: when
 * that is readable it is drained, then w->stop() asked. 0, -MW_E_TIMEOUT,
 * -MW_E_CANCEL (stop) or -errno. */
static int wait_watch(int fd, short ev, unsigned long long deadline,
		      const struct mw_net_watch *w)
{
	struct pollfd p[2] = { { .fd = fd, .events = ev },
			       { .fd = w ? w->efd : -1, .events = POLLIN } };

	for (;;) {
		int ms = -1, r;

		if (deadline) {
			unsigned long long now = mw_now_ns();

			if (now >= deadline)
				return -MW_E_TIMEOUT;
			ms = (int)((deadline - now) / 1000000ull) + 1;
		}
		r = poll(p, w ? 2 : 1, ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -MW_E_TIMEOUT;
		if (w && (p[1].revents & POLLIN)) {
			uint64_t v;

			/* drained before asking: a stop set after this
			 * read pokes it again */
			if (read(w->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				return -errno;
			if (w->stop(w->arg))
				return -MW_E_CANCEL;
		}
		if (p[0].revents)
			return 0;
	}
}

int mw_net_wait(int fd, short ev, unsigned long long deadline)
{
	return wait_watch(fd, ev, deadline, NULL);
}

int mw_net_connect_watch(const char *host, uint16_t port,
			 unsigned long long deadline, char *peer,
			 size_t peer_cap, struct mw_err *err,
			 const struct mw_net_watch *w)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	char portstr[8];
	int fd = -1, ret = -ECONNREFUSED, gai;

	snprintf(portstr, sizeof(portstr), "%u", port);
	gai = getaddrinfo(host, portstr, &hints, &res);
	if (gai)
		return mw_err_set(err, -EHOSTUNREACH, "cannot resolve '%s': %s",
				  host, gai_strerror(gai));
	for (ai = res; ai; ai = ai->ai_next) {
		socklen_t l;
		int soerr = 0;

		fd = socket(ai->ai_family,
			    ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			    ai->ai_protocol);
		if (fd < 0) {
			ret = -errno;
			continue;
		}
		if (w)
			w->publish(w->arg, fd);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
		    errno == EINPROGRESS) {
			ret = wait_watch(fd, POLLOUT, deadline, w);
			if (!ret) {
				l = sizeof(soerr);
				getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr,
					   &l);
				ret = -soerr;
			}
			if (!ret)
				break;
		} else {
			ret = -errno;
		}
		if (w)
			w->publish(w->arg, -1);
		close(fd);
		fd = -1;
		if (ret == -MW_E_CANCEL)
			break;
	}
	freeaddrinfo(res);
	if (ret == -MW_E_CANCEL)
		return mw_err_set(err, ret, "stopped");
	if (fd < 0)
		return mw_err_set(err, ret, "connect to %s:%u: %s", host, port,
				  mw_strerror(ret));
	/* back to blocking: handshakes use poll, data uses the ring (ring.h:
	 * its poll backend sends and receives with MSG_DONTWAIT) */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	mw_net_peer_name(fd, peer, peer_cap);
	return fd;
}

int mw_net_connect(const char *host, uint16_t port, unsigned long long deadline,
		   char *peer, size_t peer_cap, struct mw_err *err)
{
	return mw_net_connect_watch(host, port, deadline, peer, peer_cap, err,
				    NULL);
}

int mw_net_listen(const char *host, uint16_t port, struct mw_err *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE },
			*res;
	char portstr[8];
	int fd, one = 1, gai, ret;

	snprintf(portstr, sizeof(portstr), "%u", port);
	gai = getaddrinfo(*host ? host : NULL, portstr, &hints, &res);
	if (gai)
		return mw_err_set(err, -EADDRNOTAVAIL,
				  "cannot resolve listen address '%s': %s",
				  host, gai_strerror(gai));
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC,
		    res->ai_protocol);
	if (fd < 0) {
		ret = -errno;
		goto err_res;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 128)) {
		ret = -errno;
		close(fd);
		goto err_res;
	}
	freeaddrinfo(res);
	return fd;
err_res:
	freeaddrinfo(res);
	return mw_err_set(err, ret, "listen on %s:%u: %s", *host ? host : "*",
			  port, mw_strerror(ret));
}

int mw_endpoint_parse(const char *s, struct mw_endpoint *out)
{
	memset(out, 0, sizeof(*out));
	if (!strncmp(s, "unix:", 5)) {
		const char *path = s + 5;
		size_t n = strlen(path);

		/* sockaddr_un has 108 bytes; libvirt writes unix:///path */
		while (n > 1 && path[0] == '/' && path[1] == '/') {
			path++;
			n--;
		}
		if (!n || n >= sizeof(((struct sockaddr_un *)0)->sun_path))
			return -EINVAL;
		out->type = MW_EP_UNIX;
		memcpy(out->addr, path, n + 1);
		return 0;
	}
	if (!strncmp(s, "tcp:", 4)) {
		out->type = MW_EP_TCP;
		if (mw_parse_hostport(s + 4, out->addr, sizeof(out->addr),
				      &out->port) ||
		    !out->addr[0])
			return -EINVAL;
		return 0;
	}
	return -EINVAL;
}

const char *mw_ep_name(const struct mw_endpoint *ep, char *buf, size_t cap)
{
	if (ep->type == MW_EP_UNIX)
		snprintf(buf, cap, "unix:%s", ep->addr);
	else
		snprintf(buf, cap, "tcp:%s:%u", ep->addr, ep->port);
	return buf;
}

int mw_ep_listen(const struct mw_endpoint *ep, struct mw_err *err)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char name[300];
	int fd, ret;

	if (ep->type == MW_EP_TCP)
		return mw_net_listen(ep->addr, ep->port, err);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return mw_err_set(err, -errno, "socket: %s", strerror(errno));
	memcpy(sun.sun_path, ep->addr, strlen(ep->addr) + 1);
	/* a stale socket file from an earlier run would make bind fail;
	 * anything else at that path is not ours to remove */
	if (access(ep->addr, F_OK) == 0) {
		struct stat st;

		if (stat(ep->addr, &st) == 0 && S_ISSOCK(st.st_mode)) {
			unlink(ep->addr);
		} else {
			close(fd);
			return mw_err_set(err, -EEXIST,
					  "listen on %s: the path exists and "
					  "is not a socket; remove it or "
					  "choose another",
					  mw_ep_name(ep, name, sizeof(name)));
		}
	}
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) || listen(fd, 64)) {
		ret = -errno;
		close(fd);
		return mw_err_set(err, ret, "listen on %s: %s",
				  mw_ep_name(ep, name, sizeof(name)),
				  strerror(-ret));
	}
	return fd;
}

int mw_ep_connect(const struct mw_endpoint *ep, unsigned long long deadline,
		  struct mw_err *err)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char peer[MW_PEER_MAX], name[300];
	int fd, ret;

	if (ep->type == MW_EP_TCP) {
		fd = mw_net_connect(ep->addr, ep->port, deadline, peer,
				    sizeof(peer), err);
		if (fd >= 0) {
			int one = 1;

			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
				   sizeof(one));
		}
		return fd;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return mw_err_set(err, -errno, "socket: %s", strerror(errno));
	memcpy(sun.sun_path, ep->addr, strlen(ep->addr) + 1);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		ret = -errno;
		close(fd);
		return mw_err_set(err, ret, "connect to %s: %s",
				  mw_ep_name(ep, name, sizeof(name)),
				  strerror(-ret));
	}
	return fd;
}

/* ---- --allow-from ---- */

int mw_cidr_parse(const char *s, struct mw_cidr *out)
{
	char host[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	uint32_t bits;

	if (n == 0 || n >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, n);
	host[n] = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, host, out->addr) == 1)
		out->af = AF_INET;
	else if (inet_pton(AF_INET6, host, out->addr) == 1)
		out->af = AF_INET6;
	else
		return -EINVAL;
	bits = out->af == AF_INET ? 32 : 128;
	if (slash && mw_parse_u32(slash + 1, 0, bits, &bits))
		return -EINVAL;
	out->bits = bits;
	return 0;
}

static bool prefix_eq(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;
	uint8_t mask = (uint8_t)(0xffu << (8 - rest));

	if (memcmp(a, b, full))
		return false;
	return !rest || ((a[full] ^ b[full]) & mask) == 0;
}

bool mw_cidr_match(const struct mw_cidr *allow, unsigned n,
		   const struct sockaddr_storage *ss)
{
	static const uint8_t v4mapped[12] = { [10] = 0xff, [11] = 0xff };
	const uint8_t *v4 = NULL, *v6 = NULL;
	unsigned i;

	if (ss->ss_family == AF_INET) {
		v4 = (const uint8_t *)&((const struct sockaddr_in *)ss)
			     ->sin_addr;
	} else if (ss->ss_family == AF_INET6) {
		v6 = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
		if (!memcmp(v6, v4mapped, sizeof(v4mapped)))
			v4 = v6 + 12;
	}
	for (i = 0; i < n; i++) {
		const struct mw_cidr *c = &allow[i];

		if (c->af == AF_INET && v4 && prefix_eq(v4, c->addr, c->bits))
			return true;
		if (c->af == AF_INET6 && v6 && prefix_eq(v6, c->addr, c->bits))
			return true;
	}
	return false;
}

bool mw_net_is_loopback(int fd)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len = sizeof(ss);
	struct mw_cidr lo[2];

	if (getsockname(fd, (struct sockaddr *)&ss, &len) ||
	    mw_cidr_parse("127.0.0.0/8", &lo[0]) ||
	    mw_cidr_parse("::1", &lo[1]))
		return false;
	return mw_cidr_match(lo, 2, &ss);
}
