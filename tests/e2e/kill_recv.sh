#!/bin/bash
# SPDX-License-Identifier: MIT
# (e) The receiver is killed mid-migration: the migration fails, the source VM
# keeps running (heartbeats continue), and a second migration succeeds.
# max-bandwidth 32 MiB/s stretches the first pass to ~4 s so the kill lands
# in the middle. To the sender a killed receiver is a lost channel it redials
# for --reconnect-timeout (default 60 s) before it gives up; 5 s here.
. "$(dirname "$0")/lib.sh"
e2e_transport --channels 2 --compress zstd --no-tls --reconnect-timeout 5 -- \
	--no-tls
e2e_migrate --mem 256 --ws 64 --max-bandwidth 32 --kill-recv-after 40M \
	--expect failed --retry
