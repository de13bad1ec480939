#!/bin/bash
# SPDX-License-Identifier: MIT
# (r) migwire migrate runs the whole migration (exec: mode, --no-tls, zstd,
# 2 channels, --max-downtime 300, --json), idle guest, QEMU 7.2: exit 0,
# the dirty rate printed without a guessed prediction (no --max-bandwidth;
# the migration is over before a measured one),
# the JSON report, guest RAM identical, the destination runs on
# (tests/e2e/migrate_cmd.py).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-migrate.sh"
e2e_migrate_cmd qemu-system-x86_64 "--compress zstd --channels 2 --json" \
	"follows once migwire has measured what it carries" --mem 256 --ws 64
