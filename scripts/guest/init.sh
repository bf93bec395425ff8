#!/bin/sh
# PID 1 of the test guest. scripts/guest/image.mjs fills in the @NAME@
# placeholders and stores the result as /init in the base image.
#
# It mounts the kernel file systems, loads the kernel modules, starts udev
# when the run requests it, runs the per-run command script with its output
# on the second serial port (ttyS1), writes "@EXIT_MARKER_PREFIX@ STATUS@@"
# there and powers off.
# Its own messages go to the console (ttyS0), and the host copies the
# lines that start with "dm-guest:" to its stderr.

export PATH=@GUEST_PATH@
export HOME=/root

mount -t proc proc /proc
mount -t sysfs sysfs /sys
# Unless the run requests udev, devtmpfs is the only source of device nodes:
# /dev/dm-N and /dev/loopN, but no /dev/mapper/NAME links. Of /dev/mapper,
# devtmpfs creates only /dev/mapper/control, once dm_mod is loaded.
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
exec </dev/null >/dev/console 2>&1

while read -r module; do
  [ -n "$module" ] || continue
  modprobe "$module" || echo "dm-guest: modprobe $module failed"
done <@MODULE_LIST@

ip link set lo up || echo "dm-guest: could not bring up the loopback interface"

# A run that requests udev (DM_GUEST_UDEV) gets systemd-udevd with lvm2's dm
# rules, as on a normal host. It starts here, before the command opens ttyS1,
# so udevd and the programs its rules run write only to the console.
if [ -f @UDEV_MODE_FILE@ ]; then
  if [ "$(cat @UDEV_MODE_FILE@)" = no-notify ]; then
    rm -f @DM_NOTIFY_RULE@
  fi
  if @UDEVD@ --daemon; then
    udevadm trigger --type=subsystems --action=add
    udevadm trigger --type=devices --action=add
    udevadm settle --timeout=120 || echo "dm-guest: udevadm settle timed out"
  fi
  [ -S /run/udev/control ] || echo "dm-guest: systemd-udevd did not start: /run/udev/control is missing"
fi

# Keep ttyS1 open in fd 3 so the raw mode set here applies to every write.
# Closing the last reference to it at the end waits until the UART has sent
# everything, unless a background process of the command still has it open.
output=/dev/ttyS1
exec 3<>"$output"
# Raw mode stops the tty from turning "\n" into "\r\n".
stty -F "$output" raw -echo || echo "dm-guest: stty on $output failed, so output lines may end in CR LF"

cd @PROJECT_DIR@ 2>/dev/null || cd /
if [ -f @COMMAND_SCRIPT@ ]; then
  /bin/sh @COMMAND_SCRIPT@ </dev/null >&3 2>&3 3>&-
  status=$?
else
  # The per-run archive comes last in the initrd, so it is what a failed
  # unpack ("Initramfs unpacking failed" in the console log) loses.
  echo "dm-guest: @COMMAND_SCRIPT@ is missing because the initramfs did not unpack completely: give the guest more memory with --mem MIB"
  status=125
fi
printf '%s %d@@\n' '@EXIT_MARKER_PREFIX@' "$status" >&3
exec 3>&-

sync
poweroff -f
# poweroff returns only if it failed. The sysrq trigger powers off directly.
# If that fails too, PID 1 exits and the kernel panics. panic=-1 on the
# kernel command line turns the panic into a reboot, and QEMU's -no-reboot
# turns the reboot into an exit.
echo "dm-guest: poweroff -f failed"
echo o >/proc/sysrq-trigger
