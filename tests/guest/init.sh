#!/bin/busybox sh
# SPDX-License-Identifier: MIT
# /init of the test guest's initramfs: mount what guest-counter reads, keep mlocked pages where
# they are (compaction may otherwise move them: the test reads them by guest-physical address),
# run the counter on the serial console, and power off if it ever ends.
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
echo 0 >/proc/sys/vm/compact_unevictable_allowed
/bin/guest-counter </dev/console >/dev/console 2>&1
echo "gc exited with status $?" >/dev/console
/bin/busybox poweroff -f
