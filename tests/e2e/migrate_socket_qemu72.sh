#!/bin/bash
# SPDX-License-Identifier: MIT
# (w) migrate_socket_qemu10.sh on Debian's QEMU 7.2, whose destination
# takes the first connection it accepts as the main channel.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-migrate.sh"
e2e_migrate_socket "$(command -v qemu-system-x86_64)"
