# The guest's root file system: a generated initramfs made of two
# concatenated cpio archives (the kernel unpacks them in order):
#   base     busybox-static, iproute2's ip and tc with their libraries, the
#            kernel's modules, /init. Cached per kernel and input hashes.
#   project  the freshly built rcptwall, the BPF test binaries, tests/vm,
#            and their shared libraries. Rebuilt on every run.
# Sourced by scripts/vmtest.sh (bash; needs common.sh and kernel.sh).

VM_DIR=${VM_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
# ldconfig (static) because rcptwall finds the TLS libraries with
# `ldconfig -p`, as on a real host.
VM_TOOLS=(/bin/busybox /usr/sbin/ip /usr/sbin/tc /sbin/ldconfig)

# Prints the path of the base archive for MODDIR (empty: no modules, the
# kernel has what the tests need built in), building it when not cached.
vm_base_initramfs() { # CACHE MODDIR
	local cache=$1 moddir=$2 key root out t
	for t in "${VM_TOOLS[@]}"; do
		[ -x "$t" ] || vm_die "$t missing (scripts/install-deps.sh installs busybox-static and iproute2)"
	done
	key=$(vm_hash --str "$moddir" "$VM_DIR/init" "$VM_DIR/common.sh" "$VM_DIR/initramfs.sh" \
		"$VM_DIR/kernel.sh" "$VM_DIR/modules.list" "${VM_TOOLS[@]}")
	out=$cache/initramfs/base-$key.cpio
	if [ -f "$out" ]; then
		touch "$out" # in use: kept by the pruning below
		echo "$out"
		return
	fi
	# Every change of an input makes a new archive: drop the ones no run
	# has used for two weeks, so the cache does not grow without bound.
	find "$cache/initramfs" -name 'base-*.cpio' -mtime +14 -delete 2>/dev/null || true
	vm_log "building base initramfs ($out)"
	root=$(mktemp -d "${TMPDIR:-/tmp}/rw-vmtest-base.XXXXXX")
	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,root,etc,lib/modules/vmtest}
	for t in "${VM_TOOLS[@]}"; do vm_copy_with_libs "$root" "$t"; done
	install -m 0755 "$VM_DIR/init" "$root/init"
	echo vmtest >"$root/etc/hostname"
	if [ -n "$moddir" ]; then
		vm_collect_modules "$moddir" "$VM_DIR/modules.list" "$root/lib/modules/vmtest" ||
			{ rm -rf "$root"; vm_die "resolving modules in $moddir"; }
	else
		: >"$root/lib/modules/vmtest/load.list"
	fi
	mkdir -p "$(dirname "$out")"
	vm_pack_cpio "$root" "$out"
	rm -rf "$root"
	echo "$out"
}

# Names of the BPF program tests: one per tests/bpf/test_*.c, as the
# Makefile builds them.
vm_bpf_test_names() { # SRCDIR
	local f
	for f in "$1"/tests/bpf/test_*.c; do
		[ -f "$f" ] && basename "$f" .c
	done
	return 0
}

# Stages the project files under STAGE/opt/rcptwall (the layout
# tests/vm/run-suite.sh expects, in the guest and on the host) with their
# libraries under STAGE; vm_pack_cpio STAGE makes the project archive.
vm_stage_project() { # SRCDIR BUILD STAGE
	local src=$1 build=$2 stage=$3 top t bin
	top=$stage/opt/rcptwall
	rm -rf "$stage"
	mkdir -p "$top/tests" "$top/vm"
	[ -x "$build/rcptwall" ] || vm_die "$build/rcptwall is not built (run: make BUILD=$build test-build)"
	vm_copy_with_libs "$stage" "$build/rcptwall" /opt/rcptwall/rcptwall
	vm_bpf_test_names "$src" >"$top/bpf-tests.list"
	while read -r t; do
		bin=$build/tests/$t
		# A listed test that was not built is reported missing by the suite.
		[ -x "$bin" ] && vm_copy_with_libs "$stage" "$bin" "/opt/rcptwall/tests/$t"
	done <"$top/bpf-tests.list"
	cp "$src"/tests/vm/*.sh "$top/vm/"
	# libpsl reads the public suffix list from here when it is installed.
	if [ -d /usr/share/publicsuffix ]; then
		mkdir -p "$stage/usr/share"
		cp -r /usr/share/publicsuffix "$stage/usr/share/"
	fi
	# The guest's /etc/ld.so.cache, listing the libraries staged here, for
	# `ldconfig -p` (the base part only adds libraries of ip and tc).
	mkdir -p "$stage/etc/ld.so.conf.d"
	echo 'include /etc/ld.so.conf.d/*.conf' >"$stage/etc/ld.so.conf"
	printf '/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n' >"$stage/etc/ld.so.conf.d/multiarch.conf"
	ldconfig -r "$stage" || vm_die "ldconfig -r $stage failed"
}
