#!/bin/bash
# SPDX-License-Identifier: MIT
# (t) migwire migrate --timeout 2 with a guest that dirties faster than
# --max-bandwidth 20M carries: the VM is paused at 2 s, as virsh migrate
# --timeout does, and the migration completes; QEMU 10.0, RAM identical.
. "$(dirname "$0")/lib.sh"
[ -x "$MIGWIRE" ] || skip "no migwire binary at $MIGWIRE"
q10=$(e2e_qemu10)
MW_E2E_NAME=$e2e_name MW_E2E_LOGDIR=$(dirname "$e2e_logdir") \
	MW_MIGRATE_ARGS="--max-bandwidth 20M --timeout 2" \
	MW_MIGRATE_EXPECT="pausing the VM|paused by --timeout for the last" \
	python3 "$(dirname "$0")/migrate_cmd.py" "$MIGWIRE" "$q10" \
	--mem 256 --ws 64 --rate 30 >"$e2e_logdir/report.json"
