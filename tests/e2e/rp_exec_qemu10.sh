#!/bin/bash
# SPDX-License-Identifier: MIT
# (i) rp_exec_qemu72 on QEMU 10.0: precopy with return-path over exec:,
# migwire relays the return path; stats show reverse bytes.
E2E_RP_QEMU10=1
. "$(dirname "$0")/rp_exec_qemu72.sh"
