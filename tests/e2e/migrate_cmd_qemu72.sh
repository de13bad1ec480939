#!/bin/bash
# SPDX-License-Identifier: MIT
# (r) migwire migrate runs the whole migration (exec: mode, --no-tls, zstd,
# 2 channels, --max-downtime 300), idle guest, QEMU 7.2: exit 0, guest RAM
# identical, the destination runs on (tests/e2e/migrate_cmd.py).
. "$(dirname "$0")/lib.sh"
[ -x "$MIGWIRE" ] || skip "no migwire binary at $MIGWIRE"
MW_E2E_NAME=$e2e_name MW_E2E_LOGDIR=$(dirname "$e2e_logdir") \
	MW_MIGRATE_ARGS="--compress zstd --channels 2" \
	python3 "$(dirname "$0")/migrate_cmd.py" "$MIGWIRE" qemu-system-x86_64 \
	--mem 256 --ws 64 >"$e2e_logdir/report.json"
