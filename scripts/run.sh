#!/usr/bin/env bash
# `make run`: start kivad (if it is not running), build the busybox image offline, launch demo-1
# and show `kiva list`. Safe to run again: it reuses what exists.
set -euo pipefail
export PATH=/usr/local/bin:$PATH

if ! kiva info >/dev/null 2>&1; then
	echo "Starting kivad (state in /var/lib/kiva, log in /var/lib/kiva/kivad.log)"
	kivad --daemon
fi
if ! kiva query /1.0/images/aliases/busybox >/dev/null 2>&1; then
	echo "Building the busybox image (offline, from busybox-static)"
	kiva image build busybox
fi
if ! kiva list --format csv | grep -q '^demo-1,'; then
	echo "Launching demo-1"
	kiva launch busybox demo-1
elif kiva list --format csv | grep -q '^demo-1,STOPPED'; then
	kiva start demo-1
fi
kiva exec demo-1 -- sh -c 'echo "hello from $(hostname)"'
kiva list
