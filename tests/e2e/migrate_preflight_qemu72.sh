#!/bin/bash
# SPDX-License-Identifier: MIT
# (v) migwire migrate's receiver preflight on Debian's QEMU 7.2: as
# migrate_preflight_qemu10.sh.
. "$(dirname "$0")/lib.sh"
[ -x "$MIGWIRE" ] || skip "no migwire binary at $MIGWIRE"
python3 "$(dirname "$0")/migrate_preflight.py" "$MIGWIRE" \
	"$(command -v qemu-system-x86_64)" "$e2e_logdir"
