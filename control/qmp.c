/* SPDX-License-Identifier: MIT */
/*
 * A QMP client over a unix socket, with json-c. QMP is one JSON object per
 * line: a greeting, then replies ({"return": ...} or {"error": ...}, with
 * the id the command carried) and events ({"event": ...}) at any time.
 * One command is in flight at a time, so the reply is the next line with
 * our id; events before it are counted and dropped. Context: the thread
 * that owns the struct mw_qmp (the main thread).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "control_int.h"

#define QMP_TIMEOUT_MS 60000

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The next line from QEMU, parsed, by the deadline. Returns 0 with *out
 * (a reference the caller puts) or -errno / -MW_E_PROTO / -MW_E_TIMEOUT.
 */
static int read_msg(struct mw_qmp *q, int64_t deadline,
		    struct json_object **out, struct mw_err *err)
{
	*out = NULL;
	for (;;) {
		char *nl = memchr(q->buf, '\n', q->len);
		struct pollfd pfd = { .fd = q->fd, .events = POLLIN };
		int64_t left = deadline - now_ms();
		ssize_t n;
		int ret;

		if (nl) {
			size_t used = (size_t)(nl - q->buf) + 1;

			*nl = '\0';
			*out = json_tokener_parse(q->buf);
			memmove(q->buf, q->buf + used, q->len - used);
			q->len -= used;
			if (!*out ||
			    !json_object_is_type(*out, json_type_object)) {
				json_object_put(*out);
				return mw_err_set(err, -MW_E_PROTO,
						  "QMP: a line that is not a "
						  "JSON object");
			}
			return 0;
		}
		if (q->len == sizeof(q->buf) - 1)
			return mw_err_set(err, -MW_E_PROTO,
					  "QMP: a line longer than %zu bytes",
					  sizeof(q->buf));
		if (left <= 0)
			return mw_err_set(err, -MW_E_TIMEOUT,
					  "QMP: no reply within %d s",
					  q->timeout_ms / 1000);
		ret = poll(&pfd, 1, (int)left);
		if (ret < 0 && errno == EINTR)
			continue; /* the reply still comes; the caller decides */
		if (ret < 0)
			return mw_err_set(err, -errno, "QMP: poll: %s",
					  strerror(errno));
		if (!ret)
			continue;
		n = read(q->fd, q->buf + q->len, sizeof(q->buf) - 1 - q->len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return mw_err_set(err, -errno, "QMP: read: %s",
					  strerror(errno));
		if (!n)
			return mw_err_set(err, -MW_E_CLOSED,
					  "QMP: QEMU closed the connection");
		q->len += (size_t)n;
	}
}

static int write_all(int fd, const char *p, size_t n, struct mw_err *err)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return mw_err_set(err, -errno, "QMP: write: %s",
					  strerror(errno));
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int mw_qmp_exec(struct mw_qmp *q, const char *cmd, struct json_object *args,
		struct json_object **ret, struct mw_err *err)
{
	struct json_object *req = json_object_new_object();
	int64_t deadline = now_ms() + q->timeout_ms;
	uint64_t id = q->next_id++;
	const char *txt;
	int r;

	json_object_object_add(req, "execute", json_object_new_string(cmd));
	if (args)
		json_object_object_add(req, "arguments", args);
	json_object_object_add(req, "id", json_object_new_int64((int64_t)id));
	txt = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	r = write_all(q->fd, txt, strlen(txt), err);
	if (!r)
		r = write_all(q->fd, "\n", 1, err);
	json_object_put(req);
	while (!r) {
		struct json_object *msg = NULL, *e;

		r = read_msg(q, deadline, &msg, err);
		if (r)
			break;
		if (mw_json_int(msg, "id", -1) != (int64_t)id) {
			q->events++; /* an event, or a reply we gave up on */
			json_object_put(msg);
			continue;
		}
		e = mw_json_obj(msg, "error");
		if (e) {
			r = mw_err_set(err, -MW_E_PEER, "%s: %s", cmd,
				       mw_json_str(e, "desc", "(no text)"));
		} else if (ret) {
			*ret = json_object_get(mw_json_obj(msg, "return"));
		}
		json_object_put(msg);
		return r;
	}
	return r;
}

int mw_qmp_open_fd(struct mw_qmp *q, int fd, struct mw_err *err)
{
	struct json_object *greet = NULL, *ver;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	int ret;

	memset(q, 0, sizeof(*q));
	q->fd = fd;
	q->next_id = 1;
	q->timeout_ms = QMP_TIMEOUT_MS;
	/* exec: makes QEMU the parent of migwire send, which then keeps its
	 * pipeline off QEMU's vCPUs; --qemu-pid names the same QEMU */
	q->peer_uid = (uid_t)-1;
	if (!getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen)) {
		q->peer_pid = cred.pid;
		q->peer_uid = cred.uid;
	}
	ret = read_msg(q, now_ms() + q->timeout_ms, &greet, err);
	if (ret)
		goto err_close;
	ver = mw_json_obj(mw_json_obj(mw_json_obj(greet, "QMP"), "version"),
			  "qemu");
	if (!ver) {
		json_object_put(greet);
		ret = mw_err_set(err, -MW_E_PROTO,
				 "not a QMP socket (no QMP greeting)");
		goto err_close;
	}
	q->major = (int)mw_json_int(ver, "major", 0);
	q->minor = (int)mw_json_int(ver, "minor", 0);
	q->micro = (int)mw_json_int(ver, "micro", 0);
	json_object_put(greet);
	ret = mw_qmp_exec(q, "qmp_capabilities", NULL, NULL, err);
	if (ret)
		goto err_close;
	return 0;
err_close:
	close(fd);
	q->fd = -1;
	return ret;
}

int mw_qmp_connect(struct mw_qmp *q, const char *path, struct mw_err *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	q->fd = -1;
	if (strlen(path) >= sizeof(sa.sun_path))
		return mw_err_set(err, -ENAMETOOLONG,
				  "cannot connect to QMP at %s: path longer "
				  "than %zu bytes",
				  path, sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return mw_err_set(err, -errno,
				  "cannot connect to QMP at %s: %s", path,
				  strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int e = errno;

		close(fd);
		return mw_err_set(err, -e, "cannot connect to QMP at %s: %s%s",
				  path, strerror(e),
				  e == ECONNREFUSED ?
					  " (is QEMU running with -qmp "
					  "unix:PATH,server=on,wait=off?)" :
					  "");
	}
	return mw_qmp_open_fd(q, fd, err);
}

void mw_qmp_close(struct mw_qmp *q)
{
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
}

struct json_object *mw_json_obj(struct json_object *obj, const char *key)
{
	struct json_object *v = NULL;

	if (!obj || !json_object_object_get_ex(obj, key, &v))
		return NULL;
	return v;
}

/* The member key when it is a number, else NULL. */
static struct json_object *json_num(struct json_object *obj, const char *key)
{
	struct json_object *v = mw_json_obj(obj, key);

	if (v && (json_object_is_type(v, json_type_int) ||
		  json_object_is_type(v, json_type_double)))
		return v;
	return NULL;
}

int64_t mw_json_int(struct json_object *obj, const char *key, int64_t dflt)
{
	struct json_object *v = json_num(obj, key);

	return v ? json_object_get_int64(v) : dflt;
}

double mw_json_double(struct json_object *obj, const char *key, double dflt)
{
	struct json_object *v = json_num(obj, key);

	return v ? json_object_get_double(v) : dflt;
}

const char *mw_json_str(struct json_object *obj, const char *key,
			const char *dflt)
{
	struct json_object *v = mw_json_obj(obj, key);

	if (!v || !json_object_is_type(v, json_type_string))
		return dflt;
	return json_object_get_string(v);
}
