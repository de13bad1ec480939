#!/bin/bash
# SPDX-License-Identifier: MIT
# (w) migwire migrate in socket mode with --qemu-multifd 2 on QEMU 10.0:
# migrate runs `migwire send --listen unix:...` itself and QEMU migrates to
# it (main + 2 multifd connections, as under libvirt's --migrateuri
# unix://); recv --connect opens them to the destination's unix socket.
# X.509 TLS, a busy guest; exit 0 only once send had the receiver's ACK;
# RAM identical (lib-migrate.sh, e2e_migrate_socket).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-migrate.sh"
e2e_migrate_socket "$(e2e_qemu10)"
