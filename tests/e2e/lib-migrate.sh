# SPDX-License-Identifier: MIT
# Shared by the `migwire migrate` end-to-end tests (sourced after lib.sh).

# e2e_migrate_cmd QEMU MIGRATE_ARGS EXPECT [mw-migrate options...]: boot the
# (MW_MIGRATE_TLS=1 in the environment: X.509 TLS instead of --no-tls)
# test guest on QEMU, let `migwire migrate MIGRATE_ARGS` run the migration,
# compare RAM and resume (migrate_cmd.py); EXPECT lists, '|'-separated,
# texts migrate's output must hold. The report goes to report.json.
e2e_migrate_cmd() {
	local qemu=$1 args=$2 expect=$3
	shift 3
	[ -x "$MIGWIRE" ] || skip "no migwire binary at $MIGWIRE"
	MW_E2E_NAME=$e2e_name MW_E2E_LOGDIR=$(dirname "$e2e_logdir") \
		MW_MIGRATE_ARGS=$args MW_MIGRATE_EXPECT=$expect \
		python3 "$(dirname "${BASH_SOURCE[0]}")/migrate_cmd.py" \
		"$MIGWIRE" "$qemu" "$@" >"$e2e_logdir/report.json"
}

# e2e_migrate_socket QEMU: migwire migrate in socket mode with
# --qemu-multifd 2 (migrate runs send --listen unix:{tmp}/src.sock itself;
# the harness starts the destination with -incoming defer, multifd 2 and
# migrate-incoming unix:{tmp}/dst.sock, and recv --connect to it), X.509
# TLS, a busy guest; RAM identical, and recv must have carried one main
# and two multifd streams.
e2e_migrate_socket() {
	MW_MIGRATE_TLS=1 e2e_migrate_cmd "$1" \
		"--listen unix:{tmp}/src.sock --qemu-multifd 2 --channels 2" "" \
		--mem 256 --ws 64 --rate 10 --multifd 2 \
		--src-uri 'unix:{tmp}/src.sock' --dst-uri 'unix:{tmp}/dst.sock' \
		--recv-bg "$MIGWIRE recv --listen 127.0.0.1:{port} --connect unix:{tmp}/dst.sock @TLS@ --stats-file {logdir}/recv-stats.json" \
		--recv-stats-file '{logdir}/recv-stats.json'
	python3 - "$e2e_logdir/report.json" <<'PY' ||
import json, sys
r = json.load(open(sys.argv[1]))
v = ((r.get("migrations") or [{}])[-1].get("recv_stats") or {})
kinds = sorted(x["kind"] for x in v.get("streams") or [])
print("recv streams:", kinds, file=sys.stderr)
sys.exit(0 if kinds == ["main", "multifd", "multifd"] else 1)
PY
		fail "recv did not carry 1 main + 2 multifd streams"
}
