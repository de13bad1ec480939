#!/bin/bash
# SPDX-License-Identifier: MIT
# (q) inspect_qemu72 on QEMU 10.0: `migwire inspect` on a real stream.
E2E_INSPECT_QEMU10=1
. "$(dirname "$0")/inspect_qemu72.sh"
