#!/bin/bash
# SPDX-License-Identifier: MIT
# (o) Busy guest on QEMU 10.0 through migwire with TLS, zstd --adaptive and
# 2 channels: on loopback the channels outrun the codec, so the stream mixes
# raw and compressed chunks (tests/integ/adaptive.py checks the mix); the
# migration converges, memory is identical and the guest resumes.
. "$(dirname "$0")/lib.sh"
qemu10=$(e2e_qemu10)
e2e_transport --channels 2 --compress zstd --adaptive --tls-creds @PKI@ \
	--tls-hostname localhost -- --tls-creds @PKI@
# auto-converge as in busy_qemu10: a shared 2-core CI box must not turn
# convergence into a coin toss
e2e_migrate --qemu "$qemu10" --mem 256 --ws 64 --rate 100 --caps auto-converge \
	--migrate-timeout 300
