/*
 * TLS library discovery and uprobe attach/detach for bpf/tls_uprobe.bpf.c.
 *
 * Attach order matters: the syscall hook and the return probes go in before
 * the entry probes, so a call that enters a probed function always finds
 * its return probe; detaching runs in reverse (entries first). A call that
 * is in flight while attaching leaves at most one stale per-thread entry,
 * which the LRU map recycles.
 *
 * The same file reached by two paths (/lib and /usr/lib on a merged-/usr
 * system, libssl.so and libssl.so.3) is attached once: uprobes sit on the
 * inode, and twice would send every write twice.
 */
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "tls_uprobe.skel.h"

/* `ldconfig -p` lists a few thousand lines; more than this is not ldconfig. */
#define LDCONFIG_OUTPUT_MAX (4u << 20)

/* The sonames rcptwall knows how to probe. */
static const char *const tls_sonames[] = { "libssl.so.3", "libgnutls.so.30" };

/* ldconfig's tag for libraries of this process's ABI. */
#if defined(__x86_64__)
#define LDCONFIG_ABI_TAG "x86-64"
#elif defined(__aarch64__)
#define LDCONFIG_ABI_TAG "AArch64"
#else
#define LDCONFIG_ABI_TAG NULL /* accept any entry */
#endif

struct tls_probe_spec {
	unsigned kind;     /* TLS_LIB_* */
	const char *func;  /* symbol in the library */
	const char *prog;  /* program in tls_uprobe.bpf.c */
	bool retprobe;
	bool required;     /* write path: without it the library is not covered */
};

/* In attach order: returns and teardown before entries (see top). */
static const struct tls_probe_spec tls_specs[] = {
	{ TLS_LIB_OPENSSL, "SSL_write", "tls_ssl_write_ret", true, true },
	{ TLS_LIB_OPENSSL, "SSL_write_ex", "tls_ssl_write_ex_ret", true, true },
	{ TLS_LIB_GNUTLS, "gnutls_record_send", "tls_gnutls_send_ret", true, true },
	/* Teardown is optional (a static binary may lack it): the session
	 * cache then ages out by LRU only. */
	{ TLS_LIB_GNUTLS, "gnutls_record_uncork", "tls_gnutls_uncork_ret", true, true },
	{ TLS_LIB_GNUTLS, "gnutls_record_uncork", "tls_gnutls_uncork", false, true },
	{ TLS_LIB_OPENSSL, "SSL_free", "tls_ssl_free", false, false },
	{ TLS_LIB_GNUTLS, "gnutls_deinit", "tls_gnutls_deinit", false, false },
	{ TLS_LIB_OPENSSL, "SSL_write", "tls_ssl_write", false, true },
	{ TLS_LIB_OPENSSL, "SSL_write_ex", "tls_ssl_write_ex", false, true },
	{ TLS_LIB_GNUTLS, "gnutls_record_send", "tls_gnutls_send", false, true },
};
/* The uncork pair goes before the send entry: without it a flush of corked
 * records would be sent twice. */
#define TLS_N_SPECS (sizeof(tls_specs) / sizeof(tls_specs[0]))

struct tls_probes {
	struct tls_uprobe *skel;
	struct tls_lib libs[TLS_MAX_LIBS];
	size_t n_libs;
	struct bpf_link *sys_enter;
	struct bpf_link *links[TLS_MAX_LIBS * TLS_N_SPECS];
	size_t n_links;
};

/* ---- ldconfig -p ----------------------------------------------------------- */

static bool is_wanted_soname(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(tls_sonames) / sizeof(tls_sonames[0]); i++)
		if (strlen(tls_sonames[i]) == len && memcmp(tls_sonames[i], name, len) == 0)
			return true;
	return false;
}

/* One line: "\tlibssl.so.3 (libc6,x86-64) => /lib/x86_64-linux-gnu/libssl.so.3". */
static int parse_ldconfig_line(const char *line, size_t len, char *path_out)
{
	const char *end = line + len, *p = line, *name, *tags, *tags_end, *arrow;
	size_t plen;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	name = p;
	while (p < end && *p != ' ')
		p++;
	if (!is_wanted_soname(name, (size_t)(p - name)))
		return 0;
	tags = memchr(p, '(', (size_t)(end - p));
	tags_end = tags ? memchr(tags, ')', (size_t)(end - tags)) : NULL;
	arrow = tags_end ? memmem(tags_end, (size_t)(end - tags_end), " => ", 4) : NULL;
	if (!arrow)
		return 0;
	if (LDCONFIG_ABI_TAG &&
	    !memmem(tags, (size_t)(tags_end - tags), LDCONFIG_ABI_TAG, strlen(LDCONFIG_ABI_TAG)))
		return 0; /* another ABI's copy (e.g. i386): not mapped by our processes */
	p = arrow + 4;
	plen = (size_t)(end - p);
	while (plen && (p[plen - 1] == ' ' || p[plen - 1] == '\r'))
		plen--;
	if (plen == 0 || p[0] != '/')
		return 0;
	if (plen >= PATH_MAX)
		return -E2BIG;
	memcpy(path_out, p, plen);
	path_out[plen] = '\0';
	return 1;
}

int tls_parse_ldconfig(const char *text, size_t len, char (*paths)[PATH_MAX], size_t max)
{
	const char *p = text, *end = text + len;
	size_t n = 0;

	while (p < end && n < max) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *line_end = nl ? nl : end;
		int r = parse_ldconfig_line(p, (size_t)(line_end - p), paths[n]);

		if (r < 0)
			return r;
		n += (size_t)r;
		p = nl ? nl + 1 : end;
	}
	return (int)n;
}

int tls_discover_libs(char (*paths)[PATH_MAX], size_t max)
{
	/* A fixed command, nothing from outside in it. */
	FILE *f = popen("/sbin/ldconfig -p 2>/dev/null", "r");
	char *buf;
	size_t len = 0, cap = 64 * 1024;
	int status, r;

	if (!f)
		return -errno;
	buf = malloc(cap);
	if (!buf) {
		pclose(f);
		return -ENOMEM;
	}
	for (;;) {
		size_t got;

		if (len == cap) {
			char *nb = cap < LDCONFIG_OUTPUT_MAX ? realloc(buf, cap * 2) : NULL;

			if (!nb)
				break; /* parse what we have */
			buf = nb;
			cap *= 2;
		}
		got = fread(buf + len, 1, cap - len, f);
		if (got == 0)
			break;
		len += got;
	}
	status = pclose(f);
	if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		free(buf);
		return -ECHILD;
	}
	r = tls_parse_ldconfig(buf, len, paths, max);
	free(buf);
	return r;
}

/* ---- ELF symbols --------------------------------------------------------- */

static unsigned kinds_of_symbol(const char *name)
{
	unsigned kinds = 0;

	/* Only the write functions decide: the teardown ones are optional. */
	for (size_t i = 0; i < TLS_N_SPECS; i++)
		if (tls_specs[i].required && strcmp(tls_specs[i].func, name) == 0)
			kinds |= tls_specs[i].kind;
	return kinds;
}

static unsigned elf_scan_symbols(Elf *elf)
{
	Elf_Scn *scn = NULL;
	unsigned kinds = 0;

	while ((scn = elf_nextscn(elf, scn)) != NULL) {
		GElf_Shdr sh;
		Elf_Data *data;

		if (!gelf_getshdr(scn, &sh) || (sh.sh_type != SHT_DYNSYM && sh.sh_type != SHT_SYMTAB) ||
		    sh.sh_entsize == 0)
			continue;
		data = elf_getdata(scn, NULL);
		if (!data)
			continue;
		for (size_t i = 0; i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Sym sym;
			const char *name;

			if (!gelf_getsym(data, (int)i, &sym) || sym.st_shndx == SHN_UNDEF ||
			    GELF_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_value == 0)
				continue;
			name = elf_strptr(elf, sh.sh_link, sym.st_name);
			if (name)
				kinds |= kinds_of_symbol(name);
		}
	}
	return kinds;
}

int tls_lib_kinds(const char *path)
{
	int fd, kinds;
	Elf *elf;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!elf || elf_kind(elf) != ELF_K_ELF) {
		if (elf)
			elf_end(elf);
		close(fd);
		return -ENOEXEC;
	}
	kinds = (int)elf_scan_symbols(elf);
	elf_end(elf);
	close(fd);
	return kinds;
}

/* ---- open / attach / close ----------------------------------------------- */

static bool same_file_listed(const struct tls_probes *tp, const struct stat *st,
			     const struct stat *listed)
{
	for (size_t i = 0; i < tp->n_libs; i++)
		if (listed[i].st_dev == st->st_dev && listed[i].st_ino == st->st_ino)
			return true;
	return false;
}

/* Adds each distinct ELF file that defines a TLS write function. */
static int collect_libs(struct tls_probes *tp, const char *const *paths, size_t n, bool explicit)
{
	struct stat listed[TLS_MAX_LIBS];

	for (size_t i = 0; i < n; i++) {
		struct stat st;
		int kinds;

		if (stat(paths[i], &st) != 0) {
			int err = -errno;

			fprintf(stderr, "tls: library %s: %s\n", paths[i], strerror(-err));
			if (explicit)
				return err;
			continue;
		}
		if (!S_ISREG(st.st_mode)) {
			fprintf(stderr, "tls: library %s: not a regular file\n", paths[i]);
			if (explicit)
				return -EINVAL;
			continue;
		}
		if (same_file_listed(tp, &st, listed))
			continue;
		kinds = tls_lib_kinds(paths[i]);
		if (kinds <= 0) {
			fprintf(stderr, "tls: %s: %s\n", paths[i],
				kinds < 0 ? strerror(-kinds)
					  : "defines none of SSL_write, SSL_write_ex, gnutls_record_send");
			if (explicit)
				return kinds < 0 ? kinds : -ENOENT;
			continue;
		}
		if (tp->n_libs == TLS_MAX_LIBS)
			return -E2BIG;
		if (strlen(paths[i]) >= PATH_MAX)
			return -ENAMETOOLONG;
		strcpy(tp->libs[tp->n_libs].path, paths[i]);
		tp->libs[tp->n_libs].kinds = (unsigned)kinds;
		listed[tp->n_libs++] = st;
	}
	return 0;
}

static int discover_into(struct tls_probes *tp)
{
	char (*found)[PATH_MAX] = calloc(TLS_MAX_LIBS, PATH_MAX);
	const char *ptrs[TLS_MAX_LIBS];
	int n, err;

	if (!found)
		return -ENOMEM;
	n = tls_discover_libs(found, TLS_MAX_LIBS);
	if (n < 0) {
		free(found);
		return n;
	}
	for (int i = 0; i < n; i++)
		ptrs[i] = found[i];
	err = collect_libs(tp, ptrs, (size_t)n, false);
	free(found);
	return err;
}

static int reuse_map(struct bpf_map *map, int fd)
{
	return fd < 0 ? 0 : bpf_map__reuse_fd(map, fd);
}

int tls_probes_open(const struct tls_probe_opts *opts, struct tls_probes **out)
{
	struct tls_probes *tp = calloc(1, sizeof(*tp));
	int err;

	*out = NULL;
	if (!tp)
		return -ENOMEM;
	err = opts->n_lib_paths ? collect_libs(tp, opts->lib_paths, opts->n_lib_paths, true)
				: discover_into(tp);
	if (err)
		goto fail;
	tp->skel = tls_uprobe__open();
	if (!tp->skel) {
		err = -errno;
		goto fail;
	}
	err = reuse_map(tp->skel->maps.rw_ring, opts->ring_fd);
	if (!err)
		err = reuse_map(tp->skel->maps.rw_flows, opts->flows_fd);
	if (!err)
		err = reuse_map(tp->skel->maps.rw_counters, opts->counters_fd);
	if (!err)
		err = tls_uprobe__load(tp->skel);
	if (err)
		goto fail;
	*out = tp;
	return 0;
fail:
	tls_probes_close(tp);
	return err;
}

static int attach_spec(struct tls_probes *tp, struct tls_lib *lib, const struct tls_probe_spec *s)
{
	LIBBPF_OPTS(bpf_uprobe_opts, uo, .func_name = s->func, .retprobe = s->retprobe);
	struct bpf_program *prog = bpf_object__find_program_by_name(tp->skel->obj, s->prog);
	struct bpf_link *link;

	if (!prog)
		return -ENOENT;
	link = bpf_program__attach_uprobe_opts(prog, -1 /* every process */, lib->path, 0, &uo);
	if (!link)
		return -errno;
	tp->links[tp->n_links++] = link;
	lib->n_probes++;
	return 0;
}

/* Attaches spec by spec, on every library that has its kind. A library
 * whose write-path probe fails gets no further probes: since returns go
 * first, it never has an entry probe without its return probe. */
static void attach_libs(struct tls_probes *tp, bool *failed)
{
	for (size_t s = 0; s < TLS_N_SPECS; s++) {
		for (size_t i = 0; i < tp->n_libs; i++) {
			struct tls_lib *lib = &tp->libs[i];
			int err;

			if (failed[i] || !(lib->kinds & tls_specs[s].kind))
				continue;
			err = attach_spec(tp, lib, &tls_specs[s]);
			if (err && tls_specs[s].required) {
				fprintf(stderr, "tls: attach %s%s in %s: %s\n",
					tls_specs[s].retprobe ? "uretprobe " : "uprobe ",
					tls_specs[s].func, lib->path, strerror(-err));
				failed[i] = true;
			}
		}
	}
}

int tls_probes_attach(struct tls_probes *tp)
{
	bool failed[TLS_MAX_LIBS] = { false };
	int attached = 0;

	if (tp->n_libs == 0)
		return -ENOENT;
	tp->sys_enter = bpf_program__attach(tp->skel->progs.tls_sys_enter);
	if (!tp->sys_enter) {
		int err = -errno;

		fprintf(stderr, "tls: attach raw_tp/sys_enter: %s\n", strerror(-err));
		return err;
	}
	attach_libs(tp, failed);
	for (size_t i = 0; i < tp->n_libs; i++)
		attached += !failed[i] && tp->libs[i].n_probes > 0;
	return attached ? attached : -ENOENT;
}

size_t tls_probes_lib_count(const struct tls_probes *tp)
{
	return tp->n_libs;
}

const struct tls_lib *tls_probes_lib(const struct tls_probes *tp, size_t i)
{
	return i < tp->n_libs ? &tp->libs[i] : NULL;
}

int tls_probes_offsets_fd(const struct tls_probes *tp)
{
	return bpf_map__fd(tp->skel->maps.rw_tls_offsets);
}

void tls_probes_close(struct tls_probes *tp)
{
	if (!tp)
		return;
	while (tp->n_links > 0)
		bpf_link__destroy(tp->links[--tp->n_links]);
	bpf_link__destroy(tp->sys_enter);
	tls_uprobe__destroy(tp->skel);
	free(tp);
}
