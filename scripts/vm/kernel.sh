# Kernel images and their modules for vmtest (sourced by scripts/vmtest.sh,
# bash; needs common.sh).
#
# Debian's kernel comes from the linux-image-amd64 metapackage of this
# machine's apt sources (Debian 12: linux-image-6.1.0-NN-amd64), fetched
# with `apt-get download` and unpacked with `dpkg-deb -x` into the cache,
# never installed on the host. The unpacked tree is kept, so later runs need
# neither the network nor dpkg.

# Name and version of the package linux-image-amd64 points at, from the
# local apt lists (no network); empty when the lists do not know it.
vm_debian_kernel_pkg() {
	local pkg ver
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
	[ -n "$pkg" ] || return 1
	ver=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null | awk '$1 == "Version:" { print $2; exit }')
	[ -n "$ver" ] || return 1
	printf '%s %s\n' "$pkg" "$ver"
}

# Prints the cache directory of Debian's kernel (boot/vmlinuz-*,
# lib/modules/*), downloading and unpacking it on first use.
vm_debian_kernel() { # CACHE
	local cache=$1 pkg ver dir deb tmp
	if ! read -r pkg ver < <(vm_debian_kernel_pkg); then
		vm_log "apt lists do not know linux-image-amd64: apt-get update"
		apt-get update -qq >&2 || true
		read -r pkg ver < <(vm_debian_kernel_pkg) || pkg=
	fi
	if [ -z "$pkg" ]; then
		# Offline and no lists: the newest kernel already in the cache.
		dir=$(ls -d "$cache"/kernels/linux-image-*/.complete 2>/dev/null | sort -V | tail -n 1)
		[ -n "$dir" ] || vm_die "cannot resolve linux-image-amd64 with apt and no kernel is cached"
		dirname "$dir"
		return
	fi
	dir=$cache/kernels/${pkg}_$ver
	if [ -f "$dir/.complete" ]; then
		echo "$dir"
		return
	fi
	mkdir -p "$cache/debs"
	deb=$(ls "$cache/debs/${pkg}_${ver//:/%3a}_"*.deb 2>/dev/null | head -n 1)
	if [ -z "$deb" ]; then
		vm_log "downloading $pkg $ver (apt-get download, not installed)"
		# apt's _apt sandbox user may not write here; the download then
		# runs as root, which apt reports with a warning we drop.
		(cd "$cache/debs" && apt-get download -q "$pkg=$ver" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) ||
			vm_die "apt-get download $pkg=$ver failed"
		deb=$(ls "$cache/debs/${pkg}_"*.deb 2>/dev/null | head -n 1)
		[ -n "$deb" ] || vm_die "apt-get download $pkg=$ver left no .deb in $cache/debs"
	fi
	vm_log "unpacking $(basename "$deb")"
	tmp=$dir.tmp.$$
	mkdir -p "$cache/kernels"
	rm -rf "$tmp"
	dpkg-deb -x "$deb" "$tmp" || vm_die "dpkg-deb -x $deb failed"
	touch "$tmp/.complete"
	if [ -f "$dir/.complete" ]; then
		rm -rf "$tmp" # another run unpacked it meanwhile
	else
		rm -rf "$dir"
		mv "$tmp" "$dir"
	fi
	echo "$dir"
}

# Resolves the modules of LIST (scripts/vm/modules.list) and their
# dependencies in MODDIR (a lib/modules/VERSION directory) and copies them,
# decompressed, into OUT, writing OUT/load.list ("path required|optional"
# in load order). Modules built into the kernel are skipped. Works without
# modules.dep (Debian's package ships none; depmod runs at install), reading
# each module's dependencies with modinfo.
vm_collect_modules() { # MODDIR LIST OUT
	local moddir=$1 list=$2 out=$3 name need f
	declare -A path=() builtin=() seen=()
	# Parameter expansion, not basename: a fork per module (thousands of
	# them) costs minutes on a busy machine.
	while IFS= read -r f; do
		name=${f##*/}; name=${name%%.ko*}
		path[${name//-/_}]=$f
	done < <(find "$moddir" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz')
	if [ -f "$moddir/modules.builtin" ]; then
		while IFS= read -r f; do
			name=${f##*/}; name=${name%.ko}
			builtin[${name//-/_}]=1
		done <"$moddir/modules.builtin"
	fi
	mkdir -p "$out"
	: >"$out/load.list"

	add_module() { # NAME NEED
		local n=${1//-/_} dep
		[ -n "${seen[$n]:-}" ] && return 0
		seen[$n]=1
		[ -n "${builtin[$n]:-}" ] && return 0
		if [ -z "${path[$n]:-}" ]; then
			[ "$2" = optional ] && { vm_log "module $n: not in $moddir (optional, skipped)"; return 0; }
			vm_log "module $n: neither built in nor in $moddir"
			return 1
		fi
		for dep in $(modinfo -F depends "${path[$n]}" | tr ',' ' '); do
			add_module "$dep" "$2" || return 1
		done
		case ${path[$n]} in
		*.xz) xz -dc "${path[$n]}" ;;
		*.zst) zstd -qdc "${path[$n]}" ;;
		*.gz) gzip -dc "${path[$n]}" ;;
		*) cat "${path[$n]}" ;;
		esac >"$out/$n.ko" || return 1
		echo "$n.ko $2" >>"$out/load.list"
	}

	while read -r name need; do
		case $name in ''|'#'*) continue ;; esac
		add_module "$name" "${need:-required}" || return 1
	done <"$list"
}
