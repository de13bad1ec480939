#!/bin/bash
# SPDX-License-Identifier: MIT
# (s) migwire migrate with a busy guest (~20 MiB/s dirtied) on QEMU 10.0:
# --max-bandwidth (applied by send; avail-switchover-bandwidth set in QEMU),
# --auto-converge, the dirty rate predicted against the cap; exit 0, guest
# RAM identical, the destination runs on (tests/e2e/migrate_cmd.py).
. "$(dirname "$0")/lib.sh"
[ -x "$MIGWIRE" ] || skip "no migwire binary at $MIGWIRE"
q10=$(e2e_qemu10)
MW_E2E_NAME=$e2e_name MW_E2E_LOGDIR=$(dirname "$e2e_logdir") \
	MW_MIGRATE_ARGS="--compress zstd --channels 2 --max-bandwidth 400M --auto-converge" \
	python3 "$(dirname "$0")/migrate_cmd.py" "$MIGWIRE" "$q10" \
	--mem 256 --ws 64 --rate 20 >"$e2e_logdir/report.json"
grep -q 'well under --max-bandwidth' "$e2e_logdir/migrate.log" ||
	fail "no convergence prediction against --max-bandwidth"
