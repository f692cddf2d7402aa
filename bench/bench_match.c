/*
 * Matcher throughput on one core against 1,000 protected entries, side by
 * side with the straightforward implementation (Damerau-Levenshtein of the
 * registrable domain against every protected entry) on the same inputs in
 * the same run, once with the textbook full distance and once with the
 * distance cut off past the bound (the stricter baseline). Targets
 * (issue 4): >= 2 million checks/s and >= 50x.
 *
 * Inputs: plausible recipient domains, 90 % unrelated names (the common
 * case on a mail host) and 10 % one-edit typos of protected ones, some as
 * user@domain and with subdomains. Both sides normalise with the same
 * domain_normalize(), so the ratio measures the lookup design, not parsing.
 */
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "domain.h"
#include "match.h"
#include "match_edit.h"

#define N_PROTECTED 1000
#define N_INPUTS 20000
#define FAST_ROUNDS 50
#define CHUNK 2000 /* N_INPUTS is a multiple; large enough that the rounds do not run from a warm cache */

static const char *const syllables[] = {
	"ka", "to", "ri", "ne", "mo", "sa", "lu", "vi", "de", "po", "gra", "tel", "mar", "net",
	"sol", "bri", "fin", "zon", "mail", "com", "ex", "pro", "tech", "data", "cloud", "bank",
	"shop", "west", "nor", "sun", "star", "lab", "med", "tra", "ver", "qui", "bo", "fa",
};
static const char *const suffixes[] = {
	"com", "com", "com", "net", "org", "de", "fr", "co.uk", "io", "nl", "it", "es", "com.au",
};

static void random_label(unsigned *seed, char *out, size_t cap)
{
	size_t n = 0;
	int parts = 2 + rand_r(seed) % 3;
	out[0] = '\0';
	for (int i = 0; i < parts; i++) {
		const char *s = syllables[rand_r(seed) % (sizeof(syllables) / sizeof(syllables[0]))];
		n += (size_t)snprintf(out + n, cap - n, "%s", s);
	}
}

static void random_domain(unsigned *seed, char *out, size_t cap)
{
	char label[64];
	random_label(seed, label, sizeof(label));
	snprintf(out, cap, "%s.%s", label,
		 suffixes[rand_r(seed) % (sizeof(suffixes) / sizeof(suffixes[0]))]);
}

/* One random edit (insert, delete, substitute, transpose) in the label. */
static void typo_of(unsigned *seed, const char *domain, char *out, size_t cap)
{
	const char *dot = strchr(domain, '.');
	size_t n = (size_t)(dot - domain), k = (size_t)rand_r(seed) % n;
	char label[80];
	memcpy(label, domain, n);
	label[n] = '\0';
	char c = (char)('a' + rand_r(seed) % 26);
	switch (rand_r(seed) % 4) {
	case 0: memmove(label + k + 1, label + k, n - k + 1); label[k] = c; break;
	case 1: if (n > 3) memmove(label + k, label + k + 1, n - k); break;
	case 2: label[k] = c; break;
	default: if (k + 1 < n) { char t = label[k]; label[k] = label[k + 1]; label[k + 1] = t; } break;
	}
	snprintf(out, cap, "%s%s", label, dot);
}

/* CPU time of this thread, not wall time: the machine is shared (other
 * builds and tests run at the same time), and "checks per second on one
 * core" is what the core spends on them, not how long the scheduler made
 * us wait. */
static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The straightforward matcher: normalise, then the distance of the
 * registrable domain to every protected one (the same bound: 1, or 2 for
 * labels of 8+ characters). */
struct naive {
	struct domain_ctx *dom;
	char (*prot)[DOMAIN_ASCII_MAX];
	size_t n;
};

static int naive_check(const struct naive *nv, const char *in, bool bounded)
{
	struct domain_name d;
	const char *why, *at = strrchr(in, '@');
	const char *s = at ? at + 1 : in;
	if (domain_normalize(nv->dom, s, strlen(s), &d, &why) < 0 || !d.has_registrable)
		return -1;
	const char *reg = d.ascii + d.reg_off;
	size_t rn = d.ascii_len - d.reg_off;
	for (size_t i = 0; i < nv->n; i++) {
		size_t pn = strlen(nv->prot[i]);
		int max = rn >= 8 ? 2 : 1;
		/* full: the textbook distance; bounded: stops once past max, like
		 * the matcher's, so the ratio measures the scan, not the DP */
		int dist = edit_distance(nv->prot[i], pn, reg, rn, bounded ? max : EDIT_LABEL_MAX);
		if (dist > 0 && dist <= max)
			return 1;
	}
	return 0;
}

static void pin_to_one_core(void)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		perror("sched_setaffinity (continuing unpinned)");
}

int main(void)
{
	static char prot[N_PROTECTED][DOMAIN_ASCII_MAX];
	static char inputs[N_INPUTS][DOMAIN_ASCII_MAX + 16];
	unsigned seed = 42;
	char path[] = "/tmp/rw-bench-match-XXXXXX", err[512];
	int fd = mkstemp(path);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		perror("bench_match: temporary protected list");
		return 1;
	}
	for (size_t i = 0; i < N_PROTECTED; i++) {
		bool dup;
		do { /* N_PROTECTED distinct names */
			random_domain(&seed, prot[i], sizeof(prot[i]));
			dup = false;
			for (size_t k = 0; k < i && !dup; k++)
				dup = !strcmp(prot[k], prot[i]);
		} while (dup);
		fprintf(f, "%s\n", prot[i]);
	}
	fclose(f);
	struct match_policy_files files = {.protect = path, .allow = NULL, .block = NULL};
	struct matcher *m = matcher_new(&files, err, sizeof(err));
	unlink(path);
	if (!m) {
		fprintf(stderr, "bench_match: %s\n", err);
		return 1;
	}
	for (size_t i = 0; i < N_INPUTS; i++) {
		char d[DOMAIN_ASCII_MAX];
		if (i % 10 == 0)
			typo_of(&seed, prot[rand_r(&seed) % N_PROTECTED], d, sizeof(d));
		else
			random_domain(&seed, d, sizeof(d));
		const char *prefix = i % 3 == 0 ? "user@" : i % 7 == 0 ? "mx." : "";
		snprintf(inputs[i], sizeof(inputs[i]), "%s%s", prefix, d);
	}
	pin_to_one_core();

	struct naive nv = {.prot = prot, .n = N_PROTECTED};
	nv.dom = domain_ctx_new(err, sizeof(err));
	if (!nv.dom) {
		fprintf(stderr, "bench_match: %s\n", err);
		return 1;
	}
	for (size_t i = 0; i < N_PROTECTED; i++) {
		struct domain_name d;
		const char *why;
		if (domain_normalize(nv.dom, prot[i], strlen(prot[i]), &d, &why) == 0)
			memmove(prot[i], d.ascii + d.reg_off, d.ascii_len - d.reg_off + 1);
	}

	/* The three run interleaved, chunk by chunk over the same inputs, so a
	 * burst of load on the shared machine hits all of them alike and the
	 * ratios stay meaningful. */
	struct match_verdict *v = malloc(sizeof(*v));
	size_t flagged = 0, naive_flagged[2] = {0, 0};
	double fast_s = 0, naive_s[2] = {0, 0};
	for (size_t c = 0; v && c < N_INPUTS; c += CHUNK) {
		double t0 = now_s();
		for (int r = 0; r < FAST_ROUNDS; r++)
			for (size_t i = c; i < c + CHUNK; i++)
				flagged += matcher_check(m, inputs[i], v) == MATCH_FLAG;
		fast_s += now_s() - t0;
		for (int b = 0; b < 2; b++) {
			t0 = now_s();
			for (size_t i = c; i < c + CHUNK; i++)
				naive_flagged[b] += naive_check(&nv, inputs[i], b == 1) == 1;
			naive_s[b] += now_s() - t0;
		}
	}
	double fast_rate = (double)FAST_ROUNDS * N_INPUTS / fast_s;
	double naive_rate[2] = {N_INPUTS / naive_s[0], N_INPUTS / naive_s[1]};

	struct matcher_info info;
	matcher_info(m, &info);
	double ratio_full = fast_rate / naive_rate[0], ratio = fast_rate / naive_rate[1];
	printf("protected entries: %zu, inputs: %d (10 %% typos of protected names)\n",
	       info.protected_entries, N_INPUTS);
	printf("matcher:               %10.0f checks/s (one core, CPU time, %d rounds, %.1f %% flagged)\n",
	       fast_rate, FAST_ROUNDS, 100.0 * (double)flagged / (FAST_ROUNDS * N_INPUTS));
	printf("naive, full DL:        %10.0f checks/s (same inputs, %.1f %% flagged)  ratio %6.1f x\n",
	       naive_rate[0], 100.0 * (double)naive_flagged[0] / N_INPUTS, ratio_full);
	printf("naive, bounded DL:     %10.0f checks/s (same inputs, %.1f %% flagged)  ratio %6.1f x\n",
	       naive_rate[1], 100.0 * (double)naive_flagged[1] / N_INPUTS, ratio);
	printf("memory:                %10zu bytes for %zu entries (%.0f bytes per entry)\n",
	       info.mem_bytes, info.protected_entries,
	       (double)info.mem_bytes / (double)info.protected_entries);
	bool met = fast_rate >= 2e6 && ratio >= 50;
	printf("targets (>= 2,000,000 checks/s, >= 50x the bounded scan): %s\n", met ? "met" : "NOT MET");
	free(v);
	domain_ctx_free(nv.dom);
	matcher_free(m);
	return met ? 0 : 1;
}
