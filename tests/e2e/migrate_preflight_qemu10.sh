#!/bin/bash
# SPDX-License-Identifier: MIT
# (v) migwire migrate's receiver preflight on QEMU 10.0: the receiver
# missing, its --tls-authz refusing the source's certificate, another CA:
# exit 1 with one line, no migration started, the VM running, the receiver
# still waiting (tests/e2e/migrate_preflight.py).
. "$(dirname "$0")/lib.sh"
[ -x "$MIGWIRE" ] || skip "no migwire binary at $MIGWIRE"
q10=$(e2e_qemu10)
python3 "$(dirname "$0")/migrate_preflight.py" "$MIGWIRE" "$q10" "$e2e_logdir"
