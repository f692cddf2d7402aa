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

/*
 * Where a probe goes. Most are the named function's entry; TLS_AT_WRITE_CORE
 * is the function the library's write API functions all end in, when it is
 * recognised: find_ssl_write_core(), find_gnutls_send_core().
 */
enum tls_at {
	TLS_AT_NAMED,     /* always on func */
	TLS_AT_NAMED_API, /* on func unless the library's write core was found */
	TLS_AT_WRITE_CORE /* on the write core, if found */
};

struct tls_probe_spec {
	unsigned kind;     /* TLS_LIB_* */
	const char *func;  /* symbol in the library */
	const char *prog;  /* program in tls_uprobe.bpf.c */
	bool retprobe;
	bool required;     /* write path: without it the library is not covered */
	enum tls_at at;
};

/* In attach order: returns and teardown before entries (see top). */
static const struct tls_probe_spec tls_specs[] = {
	{ TLS_LIB_OPENSSL, "SSL_write", "tls_ssl_write_ret", true, true, TLS_AT_NAMED_API },
	{ TLS_LIB_OPENSSL, "SSL_write_ex", "tls_ssl_write_ex_ret", true, true, TLS_AT_NAMED_API },
	/* The core takes SSL_write_ex's arguments and returns > 0 with the
	 * byte count in *written: SSL_write_ex's programs fit it. */
	{ TLS_LIB_OPENSSL, "SSL_write_ex", "tls_ssl_write_ex_ret", true, true, TLS_AT_WRITE_CORE },
	{ TLS_LIB_GNUTLS, "gnutls_record_send", "tls_gnutls_send_ret", true, true, TLS_AT_NAMED_API },
	/* gnutls_record_send2 takes gnutls_record_send's arguments and more,
	 * and returns the same. */
	{ TLS_LIB_GNUTLS, "gnutls_record_send", "tls_gnutls_send_ret", true, true, TLS_AT_WRITE_CORE },
	/* Teardown is optional (a static binary may lack it): the session
	 * cache then ages out by LRU only. */
	{ TLS_LIB_GNUTLS, "gnutls_record_uncork", "tls_gnutls_uncork_ret", true, true, TLS_AT_NAMED },
	{ TLS_LIB_GNUTLS, "gnutls_record_uncork", "tls_gnutls_uncork", false, true, TLS_AT_NAMED },
	{ TLS_LIB_OPENSSL, "SSL_free", "tls_ssl_free", false, false, TLS_AT_NAMED },
	{ TLS_LIB_GNUTLS, "gnutls_deinit", "tls_gnutls_deinit", false, false, TLS_AT_NAMED },
	{ TLS_LIB_OPENSSL, "SSL_write", "tls_ssl_write", false, true, TLS_AT_NAMED_API },
	{ TLS_LIB_OPENSSL, "SSL_write_ex", "tls_ssl_write_ex", false, true, TLS_AT_NAMED_API },
	{ TLS_LIB_OPENSSL, "SSL_write_ex", "tls_ssl_write_ex", false, true, TLS_AT_WRITE_CORE },
	{ TLS_LIB_GNUTLS, "gnutls_record_send", "tls_gnutls_send", false, true, TLS_AT_NAMED_API },
	{ TLS_LIB_GNUTLS, "gnutls_record_send", "tls_gnutls_send", false, true, TLS_AT_WRITE_CORE },
};
/* The uncork pair goes before the send entry: without it a flush of corked
 * records would be sent twice. */
#define TLS_N_SPECS (sizeof(tls_specs) / sizeof(tls_specs[0]))

/* The functions probe points are computed for (names of tls_specs). */
static const char *const tls_funcs[] = { "SSL_write", "SSL_write_ex", "SSL_free",
					 "gnutls_record_send", "gnutls_record_uncork",
					 "gnutls_deinit", "gnutls_record_send2" };
#define TLS_N_FUNCS (sizeof(tls_funcs) / sizeof(tls_funcs[0]))

/*
 * Probe points of one file: file offsets, computed from its ELF symbols and
 * first instructions (tls_plan_lib). Unresolved functions are attached by
 * name, where libbpf resolves them (the entry as the symbol says).
 */
struct tls_plan {
	uint64_t off[TLS_N_FUNCS];
	bool resolved[TLS_N_FUNCS];
	uint64_t core_off[2]; /* write core by kind: [0] OpenSSL, [1] GnuTLS */
	unsigned write_core;  /* TLS_LIB_* whose core_off is set */
};

struct tls_probes {
	struct tls_uprobe *skel;
	struct tls_lib libs[TLS_MAX_LIBS];
	struct tls_plan plans[TLS_MAX_LIBS];
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

/* Calls fn for every function a symbol table of elf defines (named, with
 * an address); both the static and the dynamic table are read. */
static void elf_for_each_func(Elf *elf, void (*fn)(const char *name, const GElf_Sym *sym, void *ctx),
			      void *ctx)
{
	Elf_Scn *scn = NULL;

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
				fn(name, &sym, ctx);
		}
	}
}

static void add_symbol_kinds(const char *name, const GElf_Sym *sym, void *ctx)
{
	(void)sym;
	*(unsigned *)ctx |= kinds_of_symbol(name);
}

static unsigned elf_scan_symbols(Elf *elf)
{
	unsigned kinds = 0;

	elf_for_each_func(elf, add_symbol_kinds, &kinds);
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

/* ---- probe points -------------------------------------------------------- */

/*
 * Where a uprobe sits decides what it costs. On x86 the kernel replaces the
 * probed instruction with int3 and then either emulates the instruction
 * (push, call, jmp, jcc, nop) or single-steps a copy of it out of line,
 * which is a second trap. On the project's VM (a PVM guest: every trap is
 * a trip through the hypervisor) bench/bench_uprobe.c measured about 6 us
 * per call for an emulated first instruction and 22-24 us for a stepped one
 * (`sub $n,%rsp`, as SSL_write_ex starts on Debian 12; endbr64 is stepped
 * too), and 1.7 us more for the return probe. Hence two moves, both only
 * when the code has exactly the expected shape:
 *   - a function that starts with endbr64 (distributions built with
 *     -fcf-protection) is probed just after it: the stack is untouched
 *     there, so a return probe still finds the return address, and every
 *     call goes through it (only indirect branches need the endbr);
 *   - the write cores, see find_ssl_write_core(), find_gnutls_send_core().
 * A function whose symbol cannot be resolved here is attached by name.
 */
#define CODE_PEEK 256 /* bytes of a function read to find its probe point */

/* Indexes in tls_funcs. */
enum { FN_SSL_WRITE, FN_SSL_WRITE_EX, FN_GNUTLS_SEND = 3, FN_GNUTLS_SEND2 = 6 };

static unsigned core_index(unsigned kind)
{
	return kind == TLS_LIB_GNUTLS ? 1 : 0;
}

#if defined(__x86_64__)
/* Bytes of a leading endbr64 (f3 0f 1e fa): 0 or 4. */
static size_t x86_endbr_len(const uint8_t *c, size_t n)
{
	static const uint8_t endbr64[4] = { 0xf3, 0x0f, 0x1e, 0xfa };

	return n >= 4 && memcmp(c, endbr64, 4) == 0 ? 4 : 0;
}

/* push %reg (50+r, or 41 50+r for r8-r15): uprobes emulate it. */
static bool x86_is_push_reg(const uint8_t *c, size_t n)
{
	return (n >= 1 && c[0] >= 0x50 && c[0] <= 0x57) ||
	       (n >= 2 && c[0] == 0x41 && c[1] >= 0x50 && c[1] <= 0x57);
}

/* Target of a call rel32 (e8 xx xx xx xx) at vaddr. */
static uint64_t x86_call_target(uint64_t vaddr, const uint8_t *insn)
{
	int32_t rel;

	memcpy(&rel, insn + 1, sizeof(rel)); /* little endian, as x86 */
	return vaddr + 5 + (uint64_t)(int64_t)rel;
}

/* File offset of an address in an executable segment's file image. */
static int elf_vaddr_off(Elf *elf, uint64_t vaddr, uint64_t *off)
{
	size_t n;

	if (elf_getphdrnum(elf, &n))
		return -ENOEXEC;
	for (size_t i = 0; i < n; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD || !(ph.p_flags & PF_X))
			continue;
		if (vaddr >= ph.p_vaddr && vaddr - ph.p_vaddr < ph.p_filesz) {
			*off = vaddr - ph.p_vaddr + ph.p_offset;
			return 0;
		}
	}
	return -ENOENT;
}

/* Up to max bytes of code at vaddr (fewer if size says the function is
 * shorter); 0 if unreadable. */
static size_t read_code(int fd, Elf *elf, uint64_t vaddr, uint64_t size, uint8_t *buf, size_t max,
			uint64_t *off)
{
	size_t want = size && size < max ? (size_t)size : max;
	ssize_t got;

	if (elf_vaddr_off(elf, vaddr, off))
		return 0;
	got = pread(fd, buf, want, (off_t)*off);
	return got > 0 ? (size_t)got : 0;
}

struct func_syms {
	uint64_t vaddr[TLS_N_FUNCS];
	uint64_t size[TLS_N_FUNCS];
	unsigned state[TLS_N_FUNCS]; /* 0 missing, 1 found, 2 ambiguous */
};

static void note_func(const char *name, const GElf_Sym *sym, void *ctx)
{
	struct func_syms *fs = ctx;

	for (size_t f = 0; f < TLS_N_FUNCS; f++) {
		if (strcmp(name, tls_funcs[f]) != 0)
			continue;
		if (fs->state[f] == 0) {
			fs->state[f] = 1;
			fs->vaddr[f] = sym->st_value;
			fs->size[f] = sym->st_size;
		} else if (fs->vaddr[f] != sym->st_value) {
			fs->state[f] = 2; /* two definitions: let libbpf decide */
		}
	}
}

static void elf_find_funcs(Elf *elf, struct func_syms *fs)
{
	elf_for_each_func(elf, note_func, fs);
}

/*
 * OpenSSL 3.0 (Debian 12: 3.0.x) implements SSL_write and SSL_write_ex as
 * thin wrappers around one internal function, ssl_write_internal(s, buf,
 * num, written), which the SSL BIO (BIO_f_ssl) calls as well. SSL_write_ex
 * starts with `sub $8,%rsp` (stepped: the expensive kind), the internal
 * function with pushes (emulated). The write probes go there instead of on
 * the two wrappers when, and only when, the code has this exact shape:
 *   SSL_write_ex: [endbr64] sub $imm8,%rsp; call CORE - so CORE receives
 *                 SSL_write_ex's four argument registers untouched, and
 *                 SSL_write_ex's own result is CORE's (negative -> 0);
 *   SSL_write:    calls CORE too (a call rel32 to it within its code);
 *   CORE:         [endbr64] push %reg - an emulated first instruction.
 * CORE returns > 0 on success with the byte count in *written, which is
 * what the SSL_write_ex programs read. Any other shape (another OpenSSL
 * version or build) keeps the probes on SSL_write and SSL_write_ex.
 */
static void find_ssl_write_core(int fd, Elf *elf, const struct func_syms *fs,
				struct tls_plan *plan)
{
	uint8_t c[CODE_PEEK];
	uint64_t off, core, core_off;
	size_t n, i;
	bool called = false;

	if (fs->state[FN_SSL_WRITE_EX] != 1 || fs->state[FN_SSL_WRITE] != 1)
		return;
	n = read_code(fd, elf, fs->vaddr[FN_SSL_WRITE_EX], fs->size[FN_SSL_WRITE_EX], c, 16, &off);
	i = x86_endbr_len(c, n);
	if (n < i + 9 || c[i] != 0x48 || c[i + 1] != 0x83 || c[i + 2] != 0xec || c[i + 4] != 0xe8)
		return;
	core = x86_call_target(fs->vaddr[FN_SSL_WRITE_EX] + i + 4, c + i + 4);
	n = read_code(fd, elf, fs->vaddr[FN_SSL_WRITE], fs->size[FN_SSL_WRITE], c, sizeof(c), &off);
	for (size_t p = 0; p + 5 <= n && !called; p++)
		called = c[p] == 0xe8 && x86_call_target(fs->vaddr[FN_SSL_WRITE] + p, c + p) == core;
	if (!called)
		return;
	n = read_code(fd, elf, core, 0, c, 16, &core_off);
	i = x86_endbr_len(c, n);
	if (!x86_is_push_reg(c + i, n - i))
		return;
	plan->core_off[core_index(TLS_LIB_OPENSSL)] = core_off + i;
	plan->write_core |= TLS_LIB_OPENSSL;
}

/* Whether the PLT stub at vaddr (jmp *slot(%rip), ff 25, optionally after
 * endbr64 and a bnd prefix) jumps through the GOT slot of symbol want: the
 * slot's R_X86_64_JUMP_SLOT relocation names it. */
static bool plt_stub_to(int fd, Elf *elf, uint64_t vaddr, const char *want)
{
	uint8_t c[16];
	uint64_t off, slot;
	int32_t disp;
	size_t n = read_code(fd, elf, vaddr, 0, c, sizeof(c), &off), i = x86_endbr_len(c, n);
	Elf_Scn *scn = NULL;

	if (i < n && c[i] == 0xf2)
		i++;
	if (n < i + 6 || c[i] != 0xff || c[i + 1] != 0x25)
		return false;
	memcpy(&disp, c + i + 2, sizeof(disp));
	slot = vaddr + i + 6 + (uint64_t)(int64_t)disp;
	while ((scn = elf_nextscn(elf, scn)) != NULL) {
		GElf_Shdr sh, symsh;
		Elf_Data *data, *syms;
		Elf_Scn *symscn;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_RELA || sh.sh_entsize == 0)
			continue;
		symscn = elf_getscn(elf, sh.sh_link);
		data = elf_getdata(scn, NULL);
		if (!symscn || !gelf_getshdr(symscn, &symsh) || !data)
			continue;
		syms = elf_getdata(symscn, NULL);
		for (size_t r = 0; syms && r < sh.sh_size / sh.sh_entsize; r++) {
			GElf_Rela rela;
			GElf_Sym sym;
			const char *name;

			if (!gelf_getrela(data, (int)r, &rela) || rela.r_offset != slot ||
			    GELF_R_TYPE(rela.r_info) != R_X86_64_JUMP_SLOT)
				continue;
			if (!gelf_getsym(syms, (int)GELF_R_SYM(rela.r_info), &sym))
				return false;
			name = elf_strptr(elf, symsh.sh_link, sym.st_name);
			return name && strcmp(name, want) == 0;
		}
	}
	return false;
}

/*
 * GnuTLS (3.6.3 on; Debian 12: 3.7.9) implements gnutls_record_send(s, data,
 * size) as gnutls_record_send2(s, data, size, 0, 0): two register clears
 * (stepped) and a jump. gnutls_record_send2 starts with pushes (emulated).
 * The send probes go on gnutls_record_send2 when, and only when:
 *   gnutls_record_send: [endbr64] xor %r8d,%r8d; xor %ecx,%ecx; jmp T, where
 *                       T is gnutls_record_send2 or a PLT stub whose slot
 *                       is gnutls_record_send2's (the first three argument
 *                       registers reach it untouched, and its result is
 *                       gnutls_record_send's);
 *   gnutls_record_send2: [endbr64] push %reg.
 * Calls made to gnutls_record_send2 directly are then seen too.
 */
static void find_gnutls_send_core(int fd, Elf *elf, const struct func_syms *fs,
				  struct tls_plan *plan)
{
	static const uint8_t clears[5] = { 0x45, 0x31, 0xc0, 0x31, 0xc9 };
	uint8_t c[16];
	uint64_t off, target, send2_off;
	size_t n, i;

	if (fs->state[FN_GNUTLS_SEND] != 1 || fs->state[FN_GNUTLS_SEND2] != 1)
		return;
	n = read_code(fd, elf, fs->vaddr[FN_GNUTLS_SEND], fs->size[FN_GNUTLS_SEND], c, sizeof(c),
		      &off);
	i = x86_endbr_len(c, n);
	if (n < i + 10 || memcmp(c + i, clears, sizeof(clears)) != 0 || c[i + 5] != 0xe9)
		return;
	target = x86_call_target(fs->vaddr[FN_GNUTLS_SEND] + i + 5, c + i + 5); /* e9: same form */
	if (target != fs->vaddr[FN_GNUTLS_SEND2] &&
	    !plt_stub_to(fd, elf, target, tls_funcs[FN_GNUTLS_SEND2]))
		return;
	n = read_code(fd, elf, fs->vaddr[FN_GNUTLS_SEND2], fs->size[FN_GNUTLS_SEND2], c, sizeof(c),
		      &send2_off);
	i = x86_endbr_len(c, n);
	if (!x86_is_push_reg(c + i, n - i))
		return;
	plan->core_off[core_index(TLS_LIB_GNUTLS)] = send2_off + i;
	plan->write_core |= TLS_LIB_GNUTLS;
}
#endif

/* Probe points of the file at path; an empty plan (attach by name) when
 * it is not an x86-64 ELF file or cannot be read. */
static void tls_plan_lib(const char *path, struct tls_plan *plan)
{
	memset(plan, 0, sizeof(*plan));
#if defined(__x86_64__)
	struct func_syms fs = { 0 };
	GElf_Ehdr eh;
	Elf *elf;
	int fd;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!elf || elf_kind(elf) != ELF_K_ELF || !gelf_getehdr(elf, &eh) ||
	    eh.e_machine != EM_X86_64)
		goto out;
	elf_find_funcs(elf, &fs);
	for (size_t f = 0; f < TLS_N_FUNCS; f++) {
		uint8_t c[16];
		uint64_t off;
		size_t n;

		if (fs.state[f] != 1)
			continue;
		n = read_code(fd, elf, fs.vaddr[f], fs.size[f], c, sizeof(c), &off);
		if (n == 0)
			continue;
		plan->off[f] = off + x86_endbr_len(c, n);
		plan->resolved[f] = true;
	}
	find_ssl_write_core(fd, elf, &fs, plan);
	find_gnutls_send_core(fd, elf, &fs, plan);
out:
	if (elf)
		elf_end(elf);
	close(fd);
#else
	(void)path;
#endif
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
		tls_plan_lib(paths[i], &tp->plans[tp->n_libs]);
		tp->libs[tp->n_libs].write_core = tp->plans[tp->n_libs].write_core;
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
	for (size_t i = 0; opts->wrappers_only && i < tp->n_libs; i++)
		tp->plans[i].write_core = tp->libs[i].write_core = 0;
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

static size_t func_index(const char *func)
{
	for (size_t f = 0; f < TLS_N_FUNCS; f++)
		if (strcmp(tls_funcs[f], func) == 0)
			return f;
	return TLS_N_FUNCS;
}

static bool spec_applies(const struct tls_plan *plan, const struct tls_probe_spec *s)
{
	switch (s->at) {
	case TLS_AT_NAMED_API:
		return !(plan->write_core & s->kind);
	case TLS_AT_WRITE_CORE:
		return plan->write_core & s->kind;
	default:
		return true;
	}
}

static int attach_spec(struct tls_probes *tp, size_t lib_i, const struct tls_probe_spec *s)
{
	LIBBPF_OPTS(bpf_uprobe_opts, uo, .retprobe = s->retprobe);
	struct bpf_program *prog = bpf_object__find_program_by_name(tp->skel->obj, s->prog);
	const struct tls_plan *plan = &tp->plans[lib_i];
	struct tls_lib *lib = &tp->libs[lib_i];
	size_t f = func_index(s->func);
	uint64_t off = 0;
	struct bpf_link *link;

	if (!prog)
		return -ENOENT;
	if (s->at == TLS_AT_WRITE_CORE)
		off = plan->core_off[core_index(s->kind)];
	else if (f < TLS_N_FUNCS && plan->resolved[f])
		off = plan->off[f];
	else
		uo.func_name = s->func; /* libbpf finds it */
	link = bpf_program__attach_uprobe_opts(prog, -1 /* every process */, lib->path, off, &uo);
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

			if (failed[i] || !(lib->kinds & tls_specs[s].kind) ||
			    !spec_applies(&tp->plans[i], &tls_specs[s]))
				continue;
			err = attach_spec(tp, i, &tls_specs[s]);
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
