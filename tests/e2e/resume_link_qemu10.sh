#!/bin/bash
# SPDX-License-Identifier: MIT
# (ad) The link between source and destination goes down for 40 s in the
# middle of a migration (QEMU 10.0, busy guest, TLS + zstd, 2 channels, each
# side in its own network namespace): longer than the TCP user timeout (the
# default --timeout 30), so every channel is lost. The sender stops reading
# QEMU meanwhile, redials, and the channels resume once the link is back: the
# migration completes, memory identical, the destination resumed, and send's
# stats count the reconnects (recv the same resumes). Before protocol 3 this
# failed ("recv: Connection timed out"). MW_E2E_FAULT=0 runs the same
# migration without the outage (the baseline figures of docs/reliability.md).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-netns.sh"
e2e_netns_migwire
fault=()
if [ "${MW_E2E_FAULT:-1}" != 0 ]; then
	fault=(--on-progress 40M "$(e2e_link_cmd down); (sleep 40; $(e2e_link_cmd up)) >/dev/null 2>&1 &")
fi
e2e_migrate "${E2E_BUSY[@]}" "${fault[@]}"
e2e_figures
if [ "${MW_E2E_FAULT:-1}" != 0 ]; then
	e2e_check_stats 's["reconnects"] >= 1 and r["resumes"] == s["reconnects"]' ||
		fail "the stats do not count the resumed channels"
fi
