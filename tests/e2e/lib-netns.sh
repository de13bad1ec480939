# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Shared by the end-to-end tests of network faults (sourced after lib.sh):
# the source QEMU (so its exec: send) in one network namespace, the
# destination (so its exec: recv) in another, joined by a veth pair:
#   source      $E2E_SNS  $E2E_SDEV  198.18.1.2/30
#   destination $E2E_DNS  $E2E_DDEV  198.18.1.1/30  ($E2E_HOST: recv listens)
# Both are removed when the test exits, also on failure. Needs root.

e2e_netns() {
	[ "$(id -u)" = 0 ] || skip "needs root (ip netns)"
	command -v ip >/dev/null || skip "ip (iproute2) is not installed"
	local tag=mwe$$
	E2E_SNS=${tag}s E2E_DNS=${tag}d E2E_SDEV=${tag}s E2E_DDEV=${tag}d
	E2E_HOST=198.18.1.1
	# namespaces left by an earlier run whose process is gone
	local ns pid
	for ns in $(ip netns list | awk '{print $1}'); do
		case $ns in mwe*[sd]) ;; *) continue ;; esac
		pid=${ns#mwe}
		pid=${pid%?}
		case $pid in '' | *[!0-9]*) continue ;; esac
		[ -d "/proc/$pid" ] || ip netns del "$ns" 2>/dev/null || true
	done
	trap 'ip netns del "$E2E_SNS" 2>/dev/null; ip netns del "$E2E_DNS" 2>/dev/null; rm -rf "$e2e_tmp"' EXIT
	if ! ip netns add "$E2E_SNS" || ! ip netns add "$E2E_DNS"; then
		skip "ip netns add failed"
	fi
	ip link add "$E2E_SDEV" netns "$E2E_SNS" type veth peer name "$E2E_DDEV" \
		netns "$E2E_DNS" || fail "could not make the veth pair"
	ip -n "$E2E_SNS" addr add 198.18.1.2/30 dev "$E2E_SDEV"
	ip -n "$E2E_DNS" addr add 198.18.1.1/30 dev "$E2E_DDEV"
	for ns in "$E2E_SNS" "$E2E_DNS"; do
		ip -n "$ns" link set lo up
	done
	ip -n "$E2E_SNS" link set "$E2E_SDEV" up
	ip -n "$E2E_DNS" link set "$E2E_DDEV" up
	say "namespaces $E2E_SNS (source, 198.18.1.2) and $E2E_DNS (destination, $E2E_HOST)"
	NETNS_ARGS=(--src-netns "$E2E_SNS" --dst-netns "$E2E_DNS")
}

# e2e_netns_migwire [options for both sides...]: QEMU 10.0 ($qemu10), the
# namespaces, and migwire with 2 channels, zstd and X.509 TLS between them;
# E2E_BUSY: the guest and migration settings the fault tests share (a busy
# guest that converges on two shared cores under TCG, with 32 MiB/s
# stretching the first pass so that a fault at 40M lands in it).
e2e_netns_migwire() {
	qemu10=$(e2e_qemu10)
	e2e_netns
	e2e_transport --channels 2 --compress zstd --tls-creds @PKI@ \
		--tls-hostname localhost "$@" -- --tls-creds @PKI@ "$@"
	E2E_BUSY=(--qemu "$qemu10" "${NETNS_ARGS[@]}" --mem 256 --ws 64 --rate 20
		--caps auto-converge --max-bandwidth 32 --migrate-timeout 300)
}

# e2e_link_cmd up|down: the command that sets the source's end of the link
e2e_link_cmd() {
	echo "ip -n $E2E_SNS link set $E2E_SDEV $1; echo \"\$(date +%s.%N) link $1\" >>{logdir}/link.log"
}

# e2e_check_stats EXPR: a python expression over s (send's last stats line)
# and r (recv's) of the last migration must hold; prints both counters.
e2e_check_stats() {
	python3 - "$e2e_logdir/report.json" "$1" <<'PY'
import json, sys
rep = json.load(open(sys.argv[1]))
m = (rep.get("migrations") or [{}])[0]
s, r = m.get("stats") or {}, m.get("recv_stats") or {}
keys = ("reconnects", "resent_chunks", "resent_bytes", "paused_s", "resumes",
        "lost", "dup_dropped_chunks")
print("send:", {k: s.get(k) for k in keys if k in s},
      "recv:", {k: r.get(k) for k in keys if k in r}, file=sys.stderr)
try:
    ok = eval(sys.argv[2])
except Exception as e:  # a counter missing
    print("stats check %s: %r" % (sys.argv[2], e), file=sys.stderr)
    ok = False
sys.exit(0 if ok else 1)
PY
}

# e2e_figures: total time and downtime of the migration, for the logs
e2e_figures() {
	python3 - "$e2e_logdir/report.json" <<'PY' >&2
import json, sys
r = json.load(open(sys.argv[1]))
m = (r.get("migrations") or [{}])[-1]
print("figures: status %s, total %s ms, downtime %s ms (end to end %s ms), "
      "%s bytes, wall %s s" % (m.get("status"), m.get("total_time_ms"),
      m.get("downtime_ms"), m.get("e2e_downtime_ms"),
      m.get("transferred_bytes"), m.get("migrate_wall_s")))
PY
}
