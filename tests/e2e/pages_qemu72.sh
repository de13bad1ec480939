#!/bin/bash
# SPDX-License-Identifier: MIT
# (ab) QEMU 7.2 through migwire with TLS, zstd, 2 channels and --pages auto
# on both sides: the stream is page-encoded, memory identical, the guest
# resumes. The guest is idle: 7.2 under TCG loses dirty pages of a busy
# guest (DESIGN.md, "QEMU versions"), so references and deltas are not
# required here; pages_qemu10 requires them.
. "$(dirname "$0")/lib.sh"
e2e_transport --channels 2 --compress zstd --pages auto -v --tls-creds @PKI@ \
	--tls-hostname localhost -- --pages auto --tls-creds @PKI@
e2e_migrate --mem 256 --ws 64
e2e_pages_check 0
