# SPDX-License-Identifier: MIT
# Socket-mode helpers for the end-to-end tests (sourced after lib.sh's
# variables are wanted: this file sources lib.sh itself). In socket mode the
# source QEMU migrates to unix:{tmp}/src.sock where `migwire send --listen`
# accepts every connection it opens (main, multifd, NBD), and `migwire recv
# --connect` opens one destination connection per stream to the destination
# QEMU's unix:{tmp}/dst.sock (and its NBD server's {tmp}/nbd-dst.sock).
# tools/mw-migrate starts both migwire sides itself (--send-bg/--recv-bg) and
# reports their exit status and last stderr lines.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Serialise with any other QEMU migration run by hand or by another ctest
# (ctest's RESOURCE_LOCK only covers one ctest process).
exec 9>>"${TMPDIR:-/tmp}/mw-e2e-qemu.lock"
flock -w 900 9 || skip "could not take the QEMU lock in ${TMPDIR:-/tmp}/mw-e2e-qemu.lock"

# e2e_socket_transport [--nbd] [--refuse] [send options] -- [recv options]
# Sets SOCK_ARGS (mw-migrate options). --nbd adds the NBD endpoint pair;
# --refuse points recv's main --connect at a path nothing listens on.
e2e_socket_transport() {
	local send_opts=() recv_opts=() side=send nbd=0 refuse=0 dst_main
	while [ $# -gt 0 ]; do
		case $1 in
		--nbd) nbd=1; shift; continue ;;
		--refuse) refuse=1; shift; continue ;;
		esac
		break
	done
	for o in "$@"; do
		if [ "$o" = "--" ]; then side=recv; continue; fi
		if [ $side = send ]; then send_opts+=("$o"); else recv_opts+=("$o"); fi
	done
	[ "$MW_E2E_TRANSPORT" = migwire ] ||
		skip "socket-mode tests need MW_E2E_TRANSPORT=migwire"
	[ -x "$MIGWIRE" ] || skip "no migwire binary at $MIGWIRE"
	if printf '%s\n' "${send_opts[@]}" | grep -q -- '--tls-creds'; then
		e2e_pki
		send_opts=("${send_opts[@]/@PKI@/$e2e_tmp/pki}")
		recv_opts=("${recv_opts[@]/@PKI@/$e2e_tmp/pki}")
	fi
	dst_main='{tmp}/dst.sock'
	[ $refuse = 1 ] && dst_main='{tmp}/nobody-listens.sock'
	local listen="--listen unix:{tmp}/src.sock" connect="--connect unix:$dst_main"
	if [ $nbd = 1 ]; then
		listen+=" --listen unix:{tmp}/nbd-src.sock"
		connect+=" --connect unix:{tmp}/nbd-dst.sock"
	fi
	SOCK_ARGS=(--src-uri 'unix:{tmp}/src.sock' --dst-uri 'unix:{tmp}/dst.sock'
		--send-bg "$MIGWIRE send --to 127.0.0.1:{port} $listen ${send_opts[*]} --stats-file {logdir}/send-stats.json"
		--recv-bg "$MIGWIRE recv --listen 127.0.0.1:{port} $connect ${recv_opts[*]} --stats-file {logdir}/recv-stats.json"
		--stats-file '{logdir}/send-stats.json' --recv-stats-file '{logdir}/recv-stats.json')
	[ $nbd = 1 ] && SOCK_ARGS+=(--nbd)
	return 0
}

# e2e_socket_migrate [mw-migrate options...]: like e2e_migrate, socket mode.
e2e_socket_migrate() {
	local rc=0
	say "socket mode, accel $MW_ACCEL, logs in $e2e_logdir"
	"$e2e_tools/mw-migrate" --accel "$MW_ACCEL" --log-dir "$e2e_logdir" \
		"${SOCK_ARGS[@]}" "$@" >"$e2e_logdir/report.json" || rc=$?
	cat "$e2e_logdir/report.json"
	[ $rc -eq 77 ] && skip "mw-migrate reported a missing prerequisite"
	return $rc
}

# e2e_check 'PYTHON EXPRESSION' MESSAGE: evaluate against the report (r),
# the last migration (m), send's and recv's final stats (s, v) and their
# streams (ss, vs); fail with MESSAGE unless true.
e2e_check() {
	python3 - "$e2e_logdir/report.json" "$1" <<'EOF' || fail "$2"
import json, sys
r = json.load(open(sys.argv[1]))
m = (r.get("migrations") or [{}])[-1]
s = m.get("stats") or {}
v = m.get("recv_stats") or {}
ss, vs = s.get("streams") or [], v.get("streams") or []
kinds = lambda st: sorted(x["kind"] for x in st)
ok = eval(sys.argv[2])
if not ok:
    print("check failed: %s" % sys.argv[2], file=sys.stderr)
    print("send streams: %s" % ss, file=sys.stderr)
    print("recv streams: %s" % vs, file=sys.stderr)
sys.exit(0 if ok else 1)
EOF
}
