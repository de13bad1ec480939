#!/bin/bash
# SPDX-License-Identifier: MIT
# (n) The destination refuses a stream: migwire recv --connect points at a
# path nothing listens on. The session fails with one clear line on both
# migwire sides (both exit non-zero), the source QEMU's migration fails and
# the source VM keeps running (heartbeats continue). QEMU 10.0, socket mode.
. "$(dirname "$0")/lib-socket.sh"
qemu10=$(e2e_qemu10)
e2e_socket_transport --refuse --channels 2 --compress zstd --no-tls -- --no-tls
e2e_socket_migrate --qemu "$qemu10" --mem 256 --ws 64 --expect failed
e2e_check "m['source_status'] == 'running' and m['source_heartbeats_continue']" \
	"the source VM did not keep running"
e2e_check "m['recv_bg']['exit'] not in (0, None) and m['send_bg']['exit'] not in (0, None)" \
	"a migwire side exited 0 (or hung) although the session failed"
e2e_check "m['recv_bg']['stderr_tail'][-1].startswith('migwire recv:') and 'nobody-listens.sock' in m['recv_bg']['stderr_tail'][-1]" \
	"recv's last line does not name the refused endpoint"
e2e_check "m['send_bg']['stderr_tail'][-1].startswith('migwire send:') and 'nobody-listens.sock' in m['send_bg']['stderr_tail'][-1]" \
	"send's last line does not carry the receiver's reason"
say "recv: $(tail -n1 "$e2e_logdir/recv-bg.log")"
say "send: $(tail -n1 "$e2e_logdir/send-bg.log")"
