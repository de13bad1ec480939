#!/bin/bash
# SPDX-License-Identifier: MIT
# (y) migwire migrate --timeout 2 --timeout-action cancel on QEMU 10.0: a
# guest that dirties faster than --max-bandwidth 20M carries is not
# migrated; at 2 s the migration is cancelled, migrate exits 1 saying the
# source VM keeps running, and its heartbeats go on there.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-migrate.sh"
e2e_migrate_cmd "$(e2e_qemu10)" \
	"--max-bandwidth 20M --timeout 2 --timeout-action cancel" \
	"--timeout 2 s: cancelling the migration" \
	--mem 256 --ws 64 --rate 30 --expect cancelled
