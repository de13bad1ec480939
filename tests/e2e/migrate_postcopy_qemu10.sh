#!/bin/bash
# SPDX-License-Identifier: MIT
# (u) migwire migrate --postcopy-after 2 over exec: (the return path runs
# through migwire): the destination has postcopy-ram (harness --caps), the
# guest dirties faster than --max-bandwidth 20M, the switch happens at 2 s
# and postcopy completes; QEMU 10.0, RAM identical.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-migrate.sh"
q10=$(e2e_qemu10)
e2e_migrate_cmd "$q10" \
	"--max-bandwidth 20M --postcopy-after 2 --compress none" \
	"switching to postcopy|(postcopy)" \
	--mem 256 --ws 64 --rate 30 --caps postcopy-ram
