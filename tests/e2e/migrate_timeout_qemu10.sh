#!/bin/bash
# SPDX-License-Identifier: MIT
# (t) migwire migrate --timeout 2 with a guest that dirties faster than
# --max-bandwidth 20M carries: the VM is paused at 2 s, as virsh migrate
# --timeout does, and the migration completes; QEMU 10.0, RAM identical.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-migrate.sh"
q10=$(e2e_qemu10)
e2e_migrate_cmd "$q10" "--max-bandwidth 20M --timeout 2" \
	"pausing the VM|paused by --timeout for the last" \
	--mem 256 --ws 64 --rate 30
