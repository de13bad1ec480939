#!/bin/bash
# SPDX-License-Identifier: MIT
# (x) migwire migrate --timeout 2 --timeout-action postcopy on QEMU 7.2: a
# guest that dirties faster than --max-bandwidth 20M carries is switched to
# postcopy at 2 s (the destination has postcopy-ram) and the migration
# completes over exec:, the return path through migwire; RAM identical.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-migrate.sh"
e2e_migrate_cmd qemu-system-x86_64 \
	"--max-bandwidth 20M --timeout 2 --timeout-action postcopy" \
	"--timeout 2 s: switching to postcopy|(postcopy)" \
	--mem 256 --ws 64 --rate 30 --caps postcopy-ram
