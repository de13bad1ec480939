/* SPDX-License-Identifier: MIT */
/*
 * `migwire migrate --json`: the result as one JSON object on stdout, for
 * scripts (the lines on stderr are for people). QEMU's figures from the
 * last query-migrate, send's from its final stats line, and what migrate
 * itself did. Main thread, once, at the end.
 */
#include <stdio.h>

#include "control_int.h"

static void add_int(struct json_object *r, const char *key,
		    struct json_object *from, const char *from_key)
{
	struct json_object *v = mw_json_obj(from, from_key);

	json_object_object_add(
		r, key,
		v ? json_object_new_int64(mw_json_int(from, from_key, 0)) :
		    NULL);
}

void mw_migrate_report_json(FILE *f, struct json_object *m,
			    struct json_object *send,
			    const struct mw_migrate_outcome *out)
{
	struct json_object *r = json_object_new_object();
	struct json_object *ram = mw_json_obj(m, "ram");
	bool final = send &&
		     json_object_get_boolean(mw_json_obj(send, "final"));

	json_object_object_add(
		r, "status",
		json_object_new_string(mw_json_str(m, "status", "unknown")));
	json_object_object_add(r, "error",
			       mw_json_str(m, "error-desc", NULL) ?
				       json_object_new_string(mw_json_str(
					       m, "error-desc", "")) :
				       NULL);
	add_int(r, "total_time_ms", m, "total-time");
	add_int(r, "downtime_ms", m, "downtime");
	add_int(r, "transferred_bytes", ram, "transferred");
	add_int(r, "ram_total_bytes", ram, "total");
	add_int(r, "dirty_sync_count", ram, "dirty-sync-count");
	json_object_object_add(r, "wall_s",
			       json_object_new_double(out->wall_s));
	json_object_object_add(r, "postcopy",
			       json_object_new_boolean(out->postcopy));
	json_object_object_add(
		r, "paused_by_timeout_s",
		out->paused ? json_object_new_double(out->paused_s) : NULL);
	json_object_object_add(r, "cancelled_by_migrate",
			       json_object_new_boolean(out->cancelled));
	json_object_object_add(
		r, "dirty_rate_MiBps",
		out->dirty_mib_s >= 0 ?
			json_object_new_double(out->dirty_mib_s) :
			NULL);
	json_object_object_add(r, "wire_bytes",
			       final ? json_object_new_int64(mw_json_int(
					       send, "bytes_wire", 0)) :
				       NULL);
	json_object_object_add(r, "ratio",
			       final ? json_object_new_double(mw_json_double(
					       send, "ratio", 0)) :
				       NULL);
	json_object_object_add(r, "send_result",
			       final ? json_object_new_string(mw_json_str(
					       send, "result", "")) :
				       NULL);
	json_object_object_add(
		r, "switchover_bandwidth_Bps",
		out->switchover_bps ?
			json_object_new_int64((int64_t)out->switchover_bps) :
			NULL);
	/* the exit status is 1 then, though QEMU says "completed" */
	json_object_object_add(r, "send_error",
			       out->send_error ?
				       json_object_new_string(out->send_error) :
				       NULL);
	fprintf(f, "%s\n",
		json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN));
	fflush(f);
	json_object_put(r);
}
