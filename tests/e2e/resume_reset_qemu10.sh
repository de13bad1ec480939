#!/bin/bash
# SPDX-License-Identifier: MIT
# (ae) One channel's TCP connection is destroyed in the middle of a migration
# (ss -K inside the source's network namespace, as a firewall or NAT that
# loses its state would: the sender sees "Software caused connection abort",
# the receiver a reset). QEMU 10.0, busy guest, TLS + zstd, 2 channels: the
# channel is resumed, the migration completes, memory identical, the
# destination resumed; exactly one reconnect counted on each side.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-netns.sh"
e2e_netns_migwire
# the first established connection to recv's port: its local port, then it
kill_one="lp=\$(ip netns exec $E2E_SNS ss -Htn state established '( dport = :{port} )' | awk 'NR==1 { n = split(\$3, a, \":\"); print a[n] }');"
kill_one+=" echo \"killing the channel from port \$lp\" >>{logdir}/link.log;"
kill_one+=" ip netns exec $E2E_SNS ss -K -tn state established \"( dport = :{port} and sport = :\$lp )\" >>{logdir}/link.log 2>&1"
e2e_migrate "${E2E_BUSY[@]}" --on-progress 40M "$kill_one"
e2e_figures
cat "$e2e_logdir/link.log" >&2
# (no count of resent chunks: unlike the proxy's cut, ss -K may land while
# every chunk the channel carried is confirmed)
e2e_check_stats 's["reconnects"] == 1 and r["resumes"] == 1 and r["lost"] == 1' ||
	fail "want exactly one reconnect (send), one loss and one resume (recv)"
