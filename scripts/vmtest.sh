#!/usr/bin/env bash
# Kernel-level tests on other kernels: boots Debian 12's stock kernel (6.1,
# package linux-image-amd64, or any image given with --kernel) in QEMU with
# a generated initramfs holding the freshly built rcptwall and BPF tests,
# runs tests/vm/run-suite.sh there (BPF_PROG_TEST_RUN tests and one
# network-namespace end-to-end check), and then the same suite on the host
# kernel: in QEMU when the host's kernel image is a file we can boot, else
# directly on this machine. Fails when any run fails or its result marker is
# missing. See README.md, "Testing on other kernels (VM)".
set -euo pipefail

usage() {
	cat <<'USAGE'
Usage: scripts/vmtest.sh [OPTIONS]

  --kernel PATH    boot this kernel image (bzImage/vmlinuz) instead of Debian's 6.1
  --modules DIR    modules for --kernel: its lib/modules/VERSION directory
  --no-host        skip the run on the host kernel
  --no-vm          only the run on the host kernel
  --accel kvm|tcg  force the accelerator (default: KVM if a probe boot works, else TCG)
  --break          corrupt the BPF programs embedded in the staged binaries, so
                   the verifier rejects every load: shows that this script fails
  --timeout SECS   limit for one guest run (default 600)

Environment: BUILD (build directory, default build), VMTEST_CACHE (default .cache/vmtest).
USAGE
}

SRC=$(cd "$(dirname "$0")/.." && pwd)
source "$SRC/scripts/vm/common.sh"
source "$SRC/scripts/vm/kernel.sh"
source "$SRC/scripts/vm/initramfs.sh"
source "$SRC/scripts/vm/qemu.sh"

BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$SRC/$BUILD
CACHE=${VMTEST_CACHE:-$SRC/.cache/vmtest}
kernel= modules= no_host= no_vm= accel= break_mode= timeout=600

while [ $# -gt 0 ]; do
	case $1 in
	--kernel) kernel=${2:?--kernel needs a path}; shift 2 ;;
	--modules) modules=${2:?--modules needs a directory}; shift 2 ;;
	--no-host) no_host=1; shift ;;
	--no-vm) no_vm=1; shift ;;
	--accel) accel=${2:?--accel needs kvm or tcg}; shift 2 ;;
	--break) break_mode=1; shift ;;
	--timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
	-h|--help) usage; exit 0 ;;
	*) usage >&2; vm_die "unknown option $1" ;;
	esac
done
case $accel in ''|kvm|tcg) ;; *) vm_die "--accel must be kvm or tcg" ;; esac
[ -z "$kernel" ] || [ -f "$kernel" ] || vm_die "--kernel $kernel: no such file"
[ -z "$modules" ] || [ -d "$modules" ] || vm_die "--modules $modules: no such directory"
[ "$(id -u)" -eq 0 ] || vm_die "must run as root (BPF, network namespaces)"

work=$BUILD/vmtest
mkdir -p "$work" "$CACHE"
summary=()

# Summary line of one run from its log: kernel, how it ran, each test.
record() { # LABEL HOW STATUS LOG SECONDS
	local label=$1 how=$2 status=$3 log=$4 secs=$5 kver tests
	kver=$(sed -n 's/^=== kernel \([^ ]*\) .*/\1/p' "$log" | head -n 1)
	tests=$(sed -n 's/^VMTEST-TEST \(.*\)/\1/p' "$log" | paste -sd ';' - | sed 's/;/; /g')
	summary+=("$(printf '%-5s %-9s kernel %-20s %-32s %3ss  tests: %s' \
		"$([ "$status" -eq 0 ] && echo PASS || echo FAIL)" "$label" "${kver:-?}" "($how)" "$secs" "${tests:-none ran}")")
}

# One guest run: builds the initrd for MODDIR, boots IMAGE, reads the marker.
run_vm() { # LABEL IMAGE MODDIR
	local label=$1 image=$2 moddir=$3 base initrd log acc status start=$SECONDS
	# Called in an || list, where set -e does not apply: check each step.
	base=$(vm_base_initramfs "$CACHE" "$moddir") || return 1
	initrd=$work/initrd-$label.cpio
	cat "$base" "$work/project.cpio" >"$initrd" || return 1
	acc=$(vm_pick_accel "$CACHE" "$image" "$base" "$accel") || return 1
	log=$work/$label.log
	vm_log "booting $image ($label, $acc) with $(du -h "$initrd" | cut -f1) initramfs"
	echo "----- guest console ($label) -----"
	set +e
	vm_qemu "$acc" "$timeout" "$image" "$initrd" "" 2>&1 |
		sed -u 's/\r//g; s/\x1b\[[0-9;?]*[a-zA-Z]//g' | tee "$log"
	local qemu_rc=${PIPESTATUS[0]}
	set -e
	echo "----- end of guest console ($label) -----"
	status=$(sed -n 's/^VMTEST-RESULT: \([0-9]*\)$/\1/p' "$log" | tail -n 1)
	if [ -z "$status" ]; then
		[ "$qemu_rc" -eq 124 ] && vm_log "$label: guest timed out after ${timeout}s" ||
			vm_log "$label: no VMTEST-RESULT line from the guest (qemu exit $qemu_rc)"
		status=1
	fi
	record "$label" "qemu, $acc" "$status" "$log" $((SECONDS - start))
	return "$status"
}

# The same suite directly on this machine's kernel, for when its image
# cannot be booted in QEMU.
run_host_direct() { # REASON
	local log=$work/host.log status start=$SECONDS top=$work/stage/opt/rcptwall
	vm_log "host kernel $(uname -r): $1; running the suite directly on the host, WITHOUT a VM"
	echo "----- host run (no VM) -----"
	set +e
	busybox sh "$top/vm/run-suite.sh" "$top" 2>&1 | tee "$log"
	status=${PIPESTATUS[0]}
	set -e
	echo "----- end of host run -----"
	record host "host kernel, no VM" "$status" "$log" $((SECONDS - start))
	return "$status"
}

# The host's kernel image and modules, when they exist as files.
host_kernel_image() {
	local f
	for f in "/boot/vmlinuz-$(uname -r)" "/lib/modules/$(uname -r)/vmlinuz"; do
		[ -r "$f" ] && { echo "$f"; return 0; }
	done
	return 1
}

vm_stage_project "$SRC" "$BUILD" "$work/stage"
if [ -n "$break_mode" ]; then
	bins=("$work/stage/opt/rcptwall/rcptwall")
	for f in "$work"/stage/opt/rcptwall/tests/*; do [ -f "$f" ] && bins+=("$f"); done
	/usr/bin/python3 "$SRC/scripts/vm/break-bpf.py" "${bins[@]}" ||
		vm_die "--break found no BPF program to corrupt"
fi
vm_pack_cpio "$work/stage" "$work/project.cpio"
failed=0

if [ -z "$no_vm" ]; then
	if [ -n "$kernel" ]; then
		run_vm custom "$kernel" "$modules" || failed=1
	else
		kdir=$(vm_debian_kernel "$CACHE")
		image=$(ls "$kdir"/boot/vmlinuz-* | head -n 1)
		moddir=$(ls -d "$kdir"/lib/modules/* | head -n 1)
		vm_log "Debian kernel: $(basename "$kdir") ($image)"
		run_vm debian "$image" "$moddir" || failed=1
	fi
fi

if [ -z "$no_host" ]; then
	if ! image=$(host_kernel_image); then
		run_host_direct "no image of it in /boot or /lib/modules/$(uname -r), so it cannot be booted in QEMU" || failed=1
	elif [ -n "$no_vm" ]; then
		run_host_direct "--no-vm given" || failed=1
	else
		hostmods=/lib/modules/$(uname -r)
		[ -d "$hostmods" ] || hostmods= # a kernel with what it needs built in
		run_vm host "$image" "$hostmods" || failed=1
	fi
fi

echo
echo "vmtest summary:"
printf '  %s\n' "${summary[@]}"
[ "$failed" -eq 0 ]
