#!/bin/bash
# SPDX-License-Identifier: MIT
# (f) The destination QEMU is killed mid-migration: migwire send exits
# non-zero with one clear line on stderr (in the source QEMU's log), the
# migration fails and the source VM keeps running.
. "$(dirname "$0")/lib.sh"
e2e_transport --channels 2 --compress zstd --no-tls -- --no-tls
e2e_migrate --mem 256 --ws 64 --max-bandwidth 32 --kill-dst-after 40M \
	--expect failed
rc=$(e2e_exit_status send)
[ -n "$rc" ] || fail "send's exit status was not logged (did it hang?)"
[ "$rc" -ne 0 ] || fail "send exited 0 although the destination died"
case $MW_E2E_TRANSPORT in
migwire) pat='migwire' ;;
socat) pat='socat\[[0-9]+\] E ' ;;
esac
line=$(grep -v '^#' "$e2e_logdir/src-qemu.log" | grep -E -m1 "$pat" || true)
[ -n "$line" ] || fail "send printed no error line; see $e2e_logdir/src-qemu.log"
say "send exited $rc: $line"
