/* SPDX-License-Identifier: MIT */
/*
 * What the `migwire send` that QEMU runs says about itself: its
 * --stats-file (one JSON line a second, a final one at the end) gives the
 * progress line the wire rate and compression ratio, which QEMU cannot
 * know. When the operator gave no --stats-file and QEMU runs as our own
 * user, a private file in a fresh 0700 directory is used; a QEMU running
 * as another user could not write there, and a send that cannot open its
 * stats file fails, so then there are no wire figures. Main thread.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control_int.h"

int mw_send_stats_setup(struct mw_send_stats *ss, struct migrate_opts *o,
			const struct mw_qmp *q)
{
	const char *tmp = getenv("TMPDIR");
	int i;

	memset(ss, 0, sizeof(*ss));
	for (i = 0; i < o->nsend; i++)
		if (!strcmp(o->send[i].name, "stats-file")) {
			snprintf(ss->path, sizeof(ss->path), "%s",
				 o->send[i].arg);
			return 0;
		}
	/* in socket mode send is ours and runs as we do */
	if ((q->peer_uid != getuid() && !o->listen) ||
	    o->nsend == MW_MIGRATE_SEND_MAX)
		return 0;
	if (!tmp || !*tmp || strlen(tmp) > 256)
		tmp = "/tmp";
	snprintf(ss->dir, sizeof(ss->dir), "%s/migwire-migrate.XXXXXX", tmp);
	if (!mkdtemp(ss->dir)) {
		ss->dir[0] = '\0';
		return 0; /* no wire figures, nothing worse */
	}
	snprintf(ss->path, sizeof(ss->path), "%s/send-stats.json", ss->dir);
	o->send[o->nsend].name = "stats-file";
	o->send[o->nsend++].arg = ss->path;
	return 0;
}

void mw_send_stats_cleanup(struct mw_send_stats *ss)
{
	if (!ss->dir[0])
		return;
	unlink(ss->path);
	rmdir(ss->dir);
	ss->dir[0] = '\0';
}

struct json_object *mw_send_stats_last(const struct mw_send_stats *ss)
{
	char buf[8192], *end, *start;

	if (!ss->path[0] || mw_file_tail(ss->path, buf, sizeof(buf)) <= 0)
		return NULL;
	/* the last complete line: send writes each with one write(2) */
	end = strrchr(buf, '\n');
	if (!end)
		return NULL;
	*end = '\0';
	start = strrchr(buf, '\n');
	return json_tokener_parse(start ? start + 1 : buf);
}
