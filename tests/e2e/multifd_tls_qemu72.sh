#!/bin/bash
# SPDX-License-Identifier: MIT
# multifd 4 over 2 TLS+zstd channels on QEMU 7.2: tests/e2e/multifd_tls_qemu10.sh with E2E_QEMU=7.2.
E2E_QEMU=7.2 exec "$(dirname "$0")/multifd_tls_qemu10.sh" "$@"
