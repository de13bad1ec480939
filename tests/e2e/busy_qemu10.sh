#!/bin/bash
# SPDX-License-Identifier: MIT
# (b) Busy guest (about 100 MiB/s of dirtying) on QEMU 10.0 through migwire
# with TLS, zlib and 2 channels: converges, memory identical, resumes.
# Memory identity of busy guests is only tested on 10.0: 7.2 under TCG loses
# dirty pages (see DESIGN.md, "QEMU versions").
. "$(dirname "$0")/lib.sh"
qemu10=$(e2e_qemu10)
e2e_transport --channels 2 --compress zlib --compress-level 1 --tls-creds @PKI@ \
	--tls-hostname localhost -- --tls-creds @PKI@
# zlib on two shared cores carries about as much as the guest dirties, so
# without help convergence at a 300 ms downtime limit is a coin toss (one CI
# run still had 20-50 MiB left after 300 s and 549 passes). auto-converge,
# what an operator turns on for such a guest, throttles the vCPU until it does.
e2e_migrate --qemu "$qemu10" --mem 256 --ws 64 --rate 100 --caps auto-converge \
	--migrate-timeout 300
