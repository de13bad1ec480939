#!/bin/bash
# SPDX-License-Identifier: MIT
# (m) nbd_qemu10 on Debian's QEMU 7.2: NBD storage copy through migwire.
E2E_NBD_QEMU=qemu-system-x86_64
. "$(dirname "$0")/nbd_qemu10.sh"
