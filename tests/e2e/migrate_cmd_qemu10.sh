#!/bin/bash
# SPDX-License-Identifier: MIT
# (s) migwire migrate with a busy guest (~20 MiB/s dirtied) on QEMU 10.0,
# X.509 TLS (tools/mw-mkcerts; --tls-creds passed through to send):
# --max-bandwidth (applied by send; avail-switchover-bandwidth set in QEMU,
# and at the end either that or the measured value --json reports),
# --auto-converge, the dirty rate predicted against the cap; exit 0, guest
# RAM identical, the destination runs on (tests/e2e/migrate_cmd.py).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-migrate.sh"
q10=$(e2e_qemu10)
MW_MIGRATE_TLS=1 e2e_migrate_cmd "$q10" \
	"--compress zstd --channels 2 --max-bandwidth 400M --auto-converge --json" \
	"well under --max-bandwidth" --mem 256 --ws 64 --rate 20
