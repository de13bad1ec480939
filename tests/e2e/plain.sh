#!/bin/bash
# SPDX-License-Identifier: MIT
# (c) Plaintext, no compression (--no-tls --compress none), idle guest, QEMU 7.2.
. "$(dirname "$0")/lib.sh"
e2e_transport --no-tls --compress none -- --no-tls
e2e_migrate --mem 256 --ws 64
