/* SPDX-License-Identifier: MIT */
/*
 * QEMU's avail-switchover-bandwidth (QEMU >= 8.2), kept equal to what
 * migwire carries. QEMU predicts the downtime of the last pass from the
 * rate at which its stream drains; left alone it measures how fast
 * migwire's pipe takes bytes in bursts, not what the wire sustains once
 * compressed. What send actually takes from QEMU per second (its stats
 * file's bytes_in, the wire rate times the compression ratio) is that
 * rate, measured over the last few seconds, so that it follows a link or
 * a ratio that changes but not one second's jitter. It is set again only
 * when it moved by more than a tenth, so QMP is not asked every second.
 * Main thread, once per watch tick.
 */
#include <inttypes.h>
#include <string.h>

#include "control_int.h"
#include "mw_log.h"

#define MIB (1024.0 * 1024.0)
/* the moving window, and the shortest span a rate is taken over */
#define WINDOW_S 5.0
#define MIN_SPAN_S 1.0
/* set again when the measurement moved by more than this fraction */
#define CHANGE 0.10

void mw_switchover_init(struct mw_switchover *sw, bool on, uint64_t initial)
{
	memset(sw, 0, sizeof(*sw));
	sw->on = on;
	sw->set_bps = initial;
}

static void drop_oldest(struct mw_switchover *sw)
{
	sw->n--;
	memmove(sw->t, sw->t + 1, (size_t)sw->n * sizeof(*sw->t));
	memmove(sw->b, sw->b + 1, (size_t)sw->n * sizeof(*sw->b));
}

uint64_t mw_switchover_feed(struct mw_switchover *sw, struct json_object *line)
{
	double t, b, span, rate;

	/* the final line averages the whole run: not a moving rate */
	if (!line || json_object_get_boolean(mw_json_obj(line, "final")))
		return 0;
	t = mw_json_double(line, "elapsed_s", -1);
	b = mw_json_double(line, "bytes_in", -1);
	/* send writes a line a second; a tick may see the same one again */
	if (t < 0 || b < 0 || (sw->n && t <= sw->t[sw->n - 1]))
		return 0;
	if (sw->n == MW_SWITCHOVER_SAMPLES)
		drop_oldest(sw);
	sw->t[sw->n] = t;
	sw->b[sw->n++] = b;
	/* the window: the span stays at least WINDOW_S once it can */
	while (sw->n > 2 && t - sw->t[1] >= WINDOW_S)
		drop_oldest(sw);
	if (sw->n < 2)
		return 0;
	span = sw->t[sw->n - 1] - sw->t[0];
	if (span < MIN_SPAN_S)
		return 0;
	rate = (sw->b[sw->n - 1] - sw->b[0]) / span;
	/* nothing moved (QEMU between passes, or stopped): no rate, and
	 * 0 would tell QEMU to go back to its own estimate */
	if (rate < 1.0)
		return 0;
	/* measured whether or not QEMU takes it: the convergence
	 * prediction (preflight.c) reads it too */
	sw->rate_bps = rate;
	sw->span_s = span;
	if (!sw->on)
		return 0;
	if (sw->set_bps && rate <= (double)sw->set_bps * (1.0 + CHANGE) &&
	    rate >= (double)sw->set_bps * (1.0 - CHANGE))
		return 0;
	return (uint64_t)rate;
}

void mw_switchover_tick(struct mw_switchover *sw, struct mw_qmp *q,
			struct json_object *line)
{
	uint64_t bps = mw_switchover_feed(sw, line);
	struct json_object *p;
	struct mw_err err = { 0 };

	if (!bps)
		return;
	p = json_object_new_object();
	json_object_object_add(p, "avail-switchover-bandwidth",
			       json_object_new_int64((int64_t)bps));
	if (mw_qmp_exec(q, "migrate-set-parameters", p, NULL, &err)) {
		/* once: the migration goes on with QEMU's own estimate */
		MW_LOG(MW_LOG_WARN, "%s: no longer tracking it", err.msg);
		sw->on = false;
		return;
	}
	sw->set_bps = bps;
	sw->measured = true;
	MW_LOG(MW_LOG_INFO, "switchover bandwidth %.1f MiB/s (measured)",
	       (double)bps / MIB);
}
