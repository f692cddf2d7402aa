# Booting a kernel in QEMU for vmtest (sourced by scripts/vmtest.sh, bash;
# needs common.sh). The guest has no network device (-nic none, and
# -nodefaults adds none): everything the tests need is inside it.

VM_QEMU=${VM_QEMU:-qemu-system-x86_64}
VM_MEM=${VM_MEM:-1024}
VM_PROBE_TIMEOUT=${VM_PROBE_TIMEOUT:-60}

# Runs QEMU with KERNEL, INITRD and the command line APPEND, serial console
# on stdout, killed after TIMEOUT seconds. ACCEL is "kvm" or "tcg".
vm_qemu() { # ACCEL TIMEOUT KERNEL INITRD APPEND
	local accel=$1 timeout=$2 kernel=$3 initrd=$4 append=$5 cpu
	case $accel in
	kvm) cpu=host ;;
	*) cpu=max ;;
	esac
	# --foreground: QEMU stays in our process group, so ^C reaches it.
	timeout --foreground -k 5 "$timeout" \
		"$VM_QEMU" -accel "$accel" -cpu "$cpu" -smp 2 -m "$VM_MEM" \
		-nodefaults -no-user-config -nographic -no-reboot -nic none \
		-serial stdio -monitor none \
		-kernel "$kernel" -initrd "$initrd" \
		-append "console=ttyS0 panic=-1 loglevel=4 edd=off $append" </dev/null
}

# Chooses the accelerator: KVM only when /dev/kvm is usable and a probe
# boot of KERNEL reaches the init script (a paravirtual KVM can exist and
# still not boot a stock kernel), else TCG. Prints "kvm" or "tcg" and logs
# why. The verdict is cached per kernel, so a failing KVM costs the probe
# only once.
vm_pick_accel() { # CACHE KERNEL INITRD FORCED
	local cache=$1 kernel=$2 initrd=$3 forced=$4 key verdict out
	if [ -n "$forced" ]; then
		vm_log "accelerator: $forced (--accel)"
		echo "$forced"
		return
	fi
	if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
		vm_log "accelerator: tcg (-accel tcg -cpu max): no usable /dev/kvm"
		echo tcg
		return
	fi
	key=$(vm_hash --str "$(uname -r)" --str "$("$VM_QEMU" --version | head -n 1)" "$kernel")
	verdict=$cache/accel-$key
	if [ ! -f "$verdict" ]; then
		vm_log "probing KVM: booting $(basename "$kernel") with -accel kvm (at most ${VM_PROBE_TIMEOUT}s)"
		out=$(vm_qemu kvm "$VM_PROBE_TIMEOUT" "$kernel" "$initrd" vmtest.mode=probe 2>&1 | tr -d '\r')
		if grep -q '^VMTEST-PROBE-OK' <<<"$out"; then echo kvm >"$verdict"; else echo tcg >"$verdict"; fi
	fi
	if [ "$(cat "$verdict")" = kvm ]; then
		vm_log "accelerator: kvm (-accel kvm -cpu host): probe boot succeeded"
	else
		vm_log "accelerator: tcg (-accel tcg -cpu max): /dev/kvm present but the probe boot did not reach init (verdict cached in $verdict)"
	fi
	cat "$verdict"
}
