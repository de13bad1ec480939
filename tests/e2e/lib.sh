# SPDX-License-Identifier: MIT
# Shared by the end-to-end tests (sourced, not run). Each test is
#   tests/e2e/NAME.sh MIGWIRE_BINARY
# and runs tools/mw-migrate once with real QEMUs. Exit 0 pass, 1 fail, 77 skip.
#
# Environment:
#   MW_E2E_TRANSPORT  migwire (default) | socat: swap migwire for a socat
#                     relay over a unix socket, to test the harness itself
#   MW_E2E_LOGDIR     where logs go (default: build/e2e-logs); one dir per test
#   MW_ACCEL          tcg (default) | kvm | auto
#   MW_VM_DIR, MW_QEMU10_DIR  caches for tools/mkvm and tools/get-qemu10

set -euo pipefail

e2e_name=$(basename "$0" .sh)
e2e_src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
e2e_tools=$e2e_src/tools
MIGWIRE=${1:-${MIGWIRE:-$e2e_src/build/tools/migwire}}
MW_E2E_TRANSPORT=${MW_E2E_TRANSPORT:-migwire}
MW_ACCEL=${MW_ACCEL:-tcg}
export MW_ACCEL
e2e_logdir=${MW_E2E_LOGDIR:-$e2e_src/build/e2e-logs}/$e2e_name
rm -rf "$e2e_logdir"
mkdir -p "$e2e_logdir"
e2e_tmp=$(mktemp -d "${TMPDIR:-/tmp}/mw-e2e.XXXXXX")
trap 'rm -rf "$e2e_tmp"' EXIT

say() { echo "$e2e_name: $*" >&2; }
skip() { say "SKIP: $*"; exit 77; }
fail() { say "FAIL: $*"; exit 1; }

for tool in socat python3 qemu-system-x86_64 gcc cpio; do
	command -v "$tool" >/dev/null || skip "$tool is not installed"
done

# The send command's exit status is invisible to QEMU (it ignores it), so
# the exec: wrappers log it on stderr, which QEMU sends to its log file.
e2e_wrap() { # ROLE CMD
	printf '%s; rc=$?; echo "mw-e2e: %s exit status $rc" >&2; exit $rc' "$2" "$1"
}

# e2e_pki: a CA and certificates for both sides in $e2e_tmp/pki (@PKI@).
e2e_pki() {
	[ -x "$e2e_tools/mw-mkcerts" ] || skip "tools/mw-mkcerts is missing"
	"$e2e_tools/mw-mkcerts" "$e2e_tmp/pki" >"$e2e_logdir/mkcerts.log" 2>&1 ||
		fail "mw-mkcerts failed; see $e2e_logdir/mkcerts.log"
}

# e2e_transport [migwire send options...]: set RECV_CMD, SEND_CMD and
# STATS_ARGS for the selected transport; recv listens on $E2E_HOST
# (default 127.0.0.1; lib-netns.sh sets the destination's address). Options after the first "--" go
# to recv, the rest to send. TLS material comes from tools/mw-mkcerts.
e2e_transport() {
	local send_opts=() recv_opts=() side=send
	for o in "$@"; do
		if [ "$o" = "--" ]; then side=recv; continue; fi
		if [ $side = send ]; then send_opts+=("$o"); else recv_opts+=("$o"); fi
	done
	STATS_ARGS=()
	case $MW_E2E_TRANSPORT in
	socat)
		RECV_CMD=$(e2e_wrap recv "socat -u UNIX-LISTEN:{tmp}/mig.sock -")
		SEND_CMD=$(e2e_wrap send "socat -u - UNIX-CONNECT:{tmp}/mig.sock")
		;;
	migwire)
		[ -x "$MIGWIRE" ] || skip "no migwire binary at $MIGWIRE"
		if printf '%s\n' "${send_opts[@]}" | grep -q -- '--tls-creds'; then
			e2e_pki
			send_opts=("${send_opts[@]/@PKI@/$e2e_tmp/pki}")
			recv_opts=("${recv_opts[@]/@PKI@/$e2e_tmp/pki}")
		fi
		RECV_CMD=$(e2e_wrap recv "$MIGWIRE recv --listen ${E2E_HOST:-127.0.0.1}:{port} ${recv_opts[*]} --stats-file {logdir}/recv-stats.json")
		SEND_CMD=$(e2e_wrap send "$MIGWIRE send --to ${E2E_HOST:-127.0.0.1}:{port} ${send_opts[*]} --stats-file {logdir}/send-stats.json")
		STATS_ARGS=(--stats-file "{logdir}/send-stats.json" --recv-stats-file "{logdir}/recv-stats.json")
		;;
	*) fail "MW_E2E_TRANSPORT must be migwire or socat" ;;
	esac
}

# e2e_migrate [mw-migrate options...]: run the driver; the JSON report goes
# to $e2e_logdir/report.json. Returns the driver's status.
e2e_migrate() {
	local rc=0
	say "transport $MW_E2E_TRANSPORT, accel $MW_ACCEL, logs in $e2e_logdir"
	"$e2e_tools/mw-migrate" --accel "$MW_ACCEL" --log-dir "$e2e_logdir" \
		--recv-cmd "$RECV_CMD" --send-cmd "$SEND_CMD" "${STATS_ARGS[@]}" "$@" \
		>"$e2e_logdir/report.json" || rc=$?
	cat "$e2e_logdir/report.json"
	[ $rc -eq 77 ] && skip "mw-migrate reported a missing prerequisite"
	return $rc
}

# e2e_report KEY: one top-level field of the report (JSON-encoded).
e2e_report() {
	python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])).get(sys.argv[2])))' \
		"$e2e_logdir/report.json" "$1"
}

# e2e_exit_status ROLE: last exit status the wrapper logged for send/recv.
e2e_exit_status() {
	local f=$e2e_logdir/src-qemu.log
	[ "$1" = recv ] && f=$e2e_logdir/dst-qemu.log
	sed -n "s/^mw-e2e: $1 exit status \([0-9]*\)\$/\1/p" "$f" | tail -n1
}

e2e_qemu10() {
	local q
	q=$("$e2e_tools/get-qemu10" 2>"$e2e_logdir/get-qemu10.log") || {
		[ $? -eq 77 ] && skip "QEMU 10.0 is unavailable (see $e2e_logdir/get-qemu10.log)"
		fail "get-qemu10 failed; see $e2e_logdir/get-qemu10.log"
	}
	echo "$q"
}

# e2e_pages_check NEED_REUSE: send -v's --pages line (in the source QEMU's
# log in exec: mode, in send's own log in socket mode) must say that chunks were page-encoded; with NEED_REUSE 1 also that
# pages went as references or deltas.
e2e_pages_check() {
	local line
	line=$(cat "$e2e_logdir"/*.log | grep -- '--pages: [0-9]' | tail -n1)
	[ -n "$line" ] || fail "send -v said nothing about --pages"
	say "$line"
	echo "$line" | grep -Eq ' [1-9][0-9]* page-encoded chunks' ||
		fail "no chunk was page-encoded"
	if [ "$1" = 1 ]; then
		echo "$line" | grep -Eq '([1-9][0-9]* sent as references|[1-9][0-9]* as deltas)' ||
			fail "no page went as a reference or a delta"
	fi
	return 0
}
