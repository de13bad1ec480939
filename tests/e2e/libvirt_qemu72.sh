#!/bin/bash
# SPDX-License-Identifier: MIT
# (z) libvirt: `virsh migrate --live --migrateuri unix:///run/migwire-e2e/mig.sock`
# between two libvirtd (Debian's 9.0, system mode, QEMU 7.2 TCG) on this
# host, through migwire's socket mode with X.509 TLS (docs/libvirt.md).
# Each daemon runs in its own mount namespace, where /etc/libvirt,
# /run/libvirt, /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt and
# /run/migwire-e2e are its own directories, and with its own host UUID
# (libvirt refuses a migration to the same host). libvirt uses the same
# socket path on both sides; the namespaces make it two sockets: the
# source QEMU connects to `migwire send --listen`, `migwire recv --connect`
# reaches the destination QEMU's. Pass: virsh exits 0, the domain runs on
# the destination and is gone from the source, send and recv exit 0 (every
# byte acknowledged), and the guest's heartbeats go on after the switch.
# Skips without libvirtd/virsh (packages libvirt-daemon,
# libvirt-daemon-driver-qemu, libvirt-clients), without root (unshare -m),
# or without the libvirt-qemu user libvirtd insists on even when qemu.conf
# says user = "root" (libvirt-daemon-system creates it).
. "$(dirname "$0")/lib.sh"
[ -x "$MIGWIRE" ] || skip "no migwire binary at $MIGWIRE"
for tool in libvirtd virsh unshare; do
	command -v "$tool" >/dev/null || skip "$tool is not installed"
done
[ "$(id -u)" = 0 ] || skip "needs root for the daemons' mount namespaces"
id libvirt-qemu >/dev/null 2>&1 ||
	skip "no libvirt-qemu user (libvirtd 9.0 resolves it before reading qemu.conf)"
e2e_pki
vm=$("$e2e_tools/mkvm") || skip "tools/mkvm failed"
read -r kernel initrd _ <<<"$(echo $vm)"

lv=$e2e_tmp/lv
mnt=/run/migwire-e2e
pids=()
cleanup() {
	for s in a b; do
		virsh -c "$(uri $s)" destroy mwlv >/dev/null 2>&1 || true
	done
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rmdir "$mnt" 2>/dev/null || true
	rm -rf "$e2e_tmp"
}
trap cleanup EXIT
uri() { echo "qemu:///system?socket=$lv/$1/run/libvirt-sock"; }

# one system-mode daemon: its config, its namespace
start_daemon() { # NAME UUID-SUFFIX
	local d=$lv/$1
	mkdir -p "$d"/{etc,run,lib,log,cache,mig}
	cp -r /etc/libvirt/. "$d/etc/"
	cat >"$d/etc/libvirtd.conf" <<EOF
host_uuid = "6a5c1f0e-0000-4000-8000-0000000000$2"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
EOF
	# QEMU as root without cgroups, labels, its own namespace or
	# virtlogd: what a container allows; the migration path is the same
	cat >"$d/etc/qemu.conf" <<'EOF'
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
migrate_tls_force = 0
stdio_handler = "file"
EOF
	unshare -m --propagation private bash -c "
		set -e
		mkdir -p /run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt $mnt
		mount --bind $d/etc /etc/libvirt
		mount --bind $d/run /run/libvirt
		mount --bind $d/lib /var/lib/libvirt
		mount --bind $d/log /var/log/libvirt
		mount --bind $d/cache /var/cache/libvirt
		mount --bind $d/mig $mnt
		exec libvirtd --config /etc/libvirt/libvirtd.conf \
			--pid-file /run/libvirt/libvirtd.pid
	" >"$e2e_logdir/libvirtd-$1.out" 2>&1 &
	pids+=($!)
}
start_daemon a 0a
start_daemon b 0b
for s in a b; do
	for _ in $(seq 150); do
		virsh -c "$(uri $s)" version >/dev/null 2>&1 && break
		sleep 0.1
	done
	virsh -c "$(uri $s)" version >/dev/null 2>&1 || {
		cp "$lv/$s/log/libvirtd.log" "$e2e_logdir/libvirtd-$s.log" 2>/dev/null
		fail "libvirtd $s did not come up; see $e2e_logdir/libvirtd-$s.log"
	}
done

serial=$e2e_logdir/serial.log
cat >"$e2e_tmp/dom.xml" <<EOF
<domain type='qemu'>
  <name>mwlv</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$kernel</kernel>
    <initrd>$initrd</initrd>
    <cmdline>console=ttyS0 panic=-1 mw.ws=16 mw.rate=4</cmdline>
  </os>
  <cpu mode='custom'><model>qemu64</model></cpu>
  <on_poweroff>destroy</on_poweroff>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>$(command -v qemu-system-x86_64)</emulator>
    <serial type='file'><source path='$serial' append='on'/><target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
virsh -c "$(uri a)" create "$e2e_tmp/dom.xml" >/dev/null ||
	fail "virsh create failed"
beat() { sed -n 's/^mw-heartbeat \([0-9]*\) .*/\1/p' "$serial" | tail -n1; }
for _ in $(seq 600); do [ -n "$(beat)" ] && break; sleep 0.1; done
[ -n "$(beat)" ] || fail "the guest did not boot under libvirt; see $serial"

# migwire's two sides, socket mode, one stream pair per QEMU connection
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tls=(--tls-creds "$e2e_tmp/pki")
"$MIGWIRE" recv --listen "127.0.0.1:$port" "${tls[@]}" \
	--connect "unix:$lv/b/mig/mig.sock" -v 2>"$e2e_logdir/recv.err" &
recv=$!
pids+=($recv)
"$MIGWIRE" send --to "127.0.0.1:$port" "${tls[@]}" --tls-hostname localhost \
	--listen "unix:$lv/a/mig/mig.sock" --wait 30 -v 2>"$e2e_logdir/send.err" &
send=$!
pids+=($send)
for _ in $(seq 100); do [ -S "$lv/a/mig/mig.sock" ] && break; sleep 0.1; done
[ -S "$lv/a/mig/mig.sock" ] || fail "send did not listen: $(cat "$e2e_logdir/send.err")"

before=$(beat)
say "virsh migrate --live mwlv (heartbeat $before)"
rc=0
timeout 180 virsh -c "$(uri a)" migrate --live --verbose mwlv "$(uri b)" \
	--migrateuri "unix://$mnt/mig.sock" >"$e2e_logdir/virsh.log" 2>&1 || rc=$?
cat "$e2e_logdir/virsh.log" >&2
src=0 dst=0
wait "$send" || src=$?
wait "$recv" || dst=$?
cat "$e2e_logdir/send.err" "$e2e_logdir/recv.err" >&2
[ $rc -eq 0 ] || fail "virsh migrate exited $rc"
[ $src -eq 0 ] && [ $dst -eq 0 ] || fail "send exited $src, recv $dst"
state=$(virsh -c "$(uri b)" domstate mwlv 2>&1)
[ "$state" = running ] || fail "on the destination the domain is '$state'"
virsh -c "$(uri a)" domstate mwlv >/dev/null 2>&1 &&
	fail "the domain is still defined on the source"
after=$before
for _ in $(seq 100); do
	after=$(beat)
	[ "$after" -gt $((before + 2)) ] && break
	sleep 0.1
done
[ "$after" -gt $((before + 2)) ] ||
	fail "no heartbeat after the migration (last $after, before $before)"
say "PASS: migrated through migwire under libvirt; heartbeat $before -> $after"
