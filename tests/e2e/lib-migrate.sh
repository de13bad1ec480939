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
