# Helpers shared by scripts/vmtest.sh and scripts/vm/*.sh (sourced, bash).

vm_log() { printf 'vmtest: %s\n' "$*" >&2; }
vm_die() { printf 'vmtest: error: %s\n' "$*" >&2; exit 1; }

# sha256 of the given files' contents plus any extra words; used as cache keys,
# so a changed input (script, module list, busybox) builds a new cache entry.
vm_hash() { # [--str WORD]... FILE...
	{
		while [ $# -gt 0 ]; do
			if [ "$1" = --str ]; then printf '%s\n' "$2"; shift 2; continue; fi
			printf '%s\n' "$1"; cat -- "$1"; shift
		done
	} | sha256sum | cut -c1-16
}

# Copies FILE into the tree ROOT at the same path, following symlinks so the
# guest gets a real file (a library's soname symlink keeps its name).
vm_copy_into() { # ROOT FILE [DEST]
	local root=$1 src=$2 dst=${3:-$2}
	mkdir -p "$root/$(dirname "$dst")"
	cp -L "$src" "$root/$dst"
}

# Copies an executable and every shared library ldd lists for it, plus the
# dynamic loader, into ROOT.
vm_copy_with_libs() { # ROOT FILE [DEST]
	local root=$1 bin=$2 lib
	vm_copy_into "$root" "$bin" "${3:-$bin}"
	while read -r lib; do
		[ -n "$lib" ] && [ ! -e "$root/$lib" ] && vm_copy_into "$root" "$lib"
	done < <(vm_ldd_paths "$bin")
	return 0
}

# Absolute paths of the libraries and loader a dynamic executable needs;
# nothing for a static one.
vm_ldd_paths() { # FILE
	ldd "$1" 2>/dev/null | awk '
		$2 == "=>" && $3 ~ /^\// { print $3 }
		$1 ~ /^\// { print $1 }'
}

# Packs the tree ROOT into an uncompressed newc cpio at OUT (the kernel
# unpacks concatenated archives in order; uncompressed is fastest to unpack
# under TCG). Written to a temporary name first so a failure leaves no half
# archive in the cache.
vm_pack_cpio() { # ROOT OUT
	(cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) > "$2.tmp.$$"
	mv "$2.tmp.$$" "$2"
}
