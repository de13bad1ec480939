#!/bin/bash
# SPDX-License-Identifier: MIT
# (aa) Busy guest on QEMU 10.0 that dirties pages the mixed way (half whole
# pages, half 16-256 bytes at a few places: mw.dirty=mixed) through migwire
# with TLS, zstd, 2 channels and --pages auto on both sides: converges,
# memory identical, the guest resumes, and send -v says re-sent pages went
# as references and deltas (the stage was on the stream, not beside it).
. "$(dirname "$0")/lib.sh"
qemu10=$(e2e_qemu10)
e2e_transport --channels 2 --compress zstd --pages auto -v --tls-creds @PKI@ \
	--tls-hostname localhost -- --pages auto --tls-creds @PKI@
# auto-converge as in busy_qemu10: a shared 2-core box must not turn
# convergence into a coin toss
# --max-bandwidth 60 (MiB/s): several passes, so that pages are sent again
e2e_migrate --qemu "$qemu10" --mem 256 --ws 64 --rate 60 --caps auto-converge \
	--max-bandwidth 60 \
	--append "mw.dirty=mixed" --migrate-timeout 300
e2e_pages_check 1
