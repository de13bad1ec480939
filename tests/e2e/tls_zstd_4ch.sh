#!/bin/bash
# SPDX-License-Identifier: MIT
# (a) Idle guest on QEMU 7.2 through migwire with mutual X.509 TLS, zstd and
# 4 channels: completes, guest memory identical, the destination runs on.
. "$(dirname "$0")/lib.sh"
e2e_transport --channels 4 --compress zstd --tls-creds @PKI@ --tls-hostname localhost \
	-- --tls-creds @PKI@
e2e_migrate --mem 256 --ws 64
