#!/bin/bash
# SPDX-License-Identifier: MIT
# (u) migwire migrate --postcopy-after 2 over exec: (the return path runs
# through migwire): the destination has postcopy-ram (harness --caps), the
# guest dirties faster than --max-bandwidth 20M, the switch happens at 2 s
# and postcopy completes; QEMU 10.0, RAM identical.
. "$(dirname "$0")/lib.sh"
[ -x "$MIGWIRE" ] || skip "no migwire binary at $MIGWIRE"
q10=$(e2e_qemu10)
MW_E2E_NAME=$e2e_name MW_E2E_LOGDIR=$(dirname "$e2e_logdir") \
	MW_MIGRATE_ARGS="--max-bandwidth 20M --postcopy-after 2 --compress none" \
	MW_MIGRATE_EXPECT="switching to postcopy|(postcopy)" \
	python3 "$(dirname "$0")/migrate_cmd.py" "$MIGWIRE" "$q10" \
	--mem 256 --ws 64 --rate 30 --caps postcopy-ram >"$e2e_logdir/report.json"
