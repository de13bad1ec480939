#!/bin/bash
# SPDX-License-Identifier: MIT
# postcopy through migwire on QEMU 7.2: tests/e2e/postcopy_qemu10.sh with E2E_QEMU=7.2.
E2E_QEMU=7.2 exec "$(dirname "$0")/postcopy_qemu10.sh" "$@"
