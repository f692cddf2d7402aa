/*
 * Ring path throughput: records per second from the tc program, through
 * the BPF ring buffer at its default size, to a user-space consumer
 * (user/capture.c, validation included), with the loss count.
 *
 * The producer is the real program run by BPF_PROG_TEST_RUN (repeat = one
 * batch) on a command-phase SMTP segment; a consumer thread polls the ring
 * as `rcptwall run` does. The producer keeps at most half a ring of
 * records in flight, so the figure is the rate the consumer sustains with
 * zero reserve failures, which the run checks and prints.
 *
 * Both wakeup modes are measured side by side: forced (the default, a
 * wakeup per data record) and adaptive (see loader_opts.adaptive_wakeup).
 *
 * Needs root. Usage: bench_ring [seconds-per-size]   (default 2)
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "capture.h"
#include "loader.h"

#define BATCH 4096

struct consumer {
	struct capture cap;
	atomic_ullong consumed;
	atomic_bool stop;
};

static int count_record(const struct rw_record_hdr *hdr, const uint8_t *data, void *ctx)
{
	(void)hdr;
	(void)data;
	struct consumer *c = ctx;
	atomic_fetch_add_explicit(&c->consumed, 1, memory_order_relaxed);
	return 0;
}

static void *consume(void *arg)
{
	struct consumer *c = arg;
	while (!atomic_load(&c->stop)) {
		int rc = capture_poll(&c->cap, 10);
		if (rc < 0) {
			fprintf(stderr, "bench_ring: poll: %s\n", strerror(-rc));
			break;
		}
	}
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Ethernet + IPv4 + TCP to port 25 with payload_len bytes of command text. */
static size_t build_packet(uint8_t *buf, size_t payload_len)
{
	static const uint8_t hdrs[] = {
		0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00,
		0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0,
		198, 51, 100, 1, 198, 51, 100, 2,
		0x9c, 0x40, 0, 25, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0,
	};
	memcpy(buf, hdrs, sizeof(hdrs));
	size_t ip_len = 20 + 20 + payload_len;
	buf[16] = (uint8_t)(ip_len >> 8);
	buf[17] = (uint8_t)ip_len;
	for (size_t i = 0; i < payload_len; i++)
		buf[sizeof(hdrs) + i] = (uint8_t)("RCPT TO:<someone@example.org>\r\n"[i % 31]);
	return sizeof(hdrs) + payload_len;
}

/* Runs one payload size for `seconds`; returns 0 if no record was lost. */
static int run_size(struct loader *ld, struct consumer *c, size_t payload_len, double seconds)
{
	uint8_t pkt[64 + 2048];
	size_t len = build_packet(pkt, payload_len);
	uint64_t before[RW_CNT_MAX], after[RW_CNT_MAX];
	/* Ring bytes per record: 8-byte ring header + record, rounded to 8. */
	size_t rec_bytes = (8 + sizeof(struct rw_record_hdr) + payload_len + 7) & ~(size_t)7;
	uint64_t in_flight_max = RW_RING_SIZE_DEFAULT / rec_bytes / 2;
	uint32_t batch = in_flight_max / 4 < BATCH ? (uint32_t)(in_flight_max / 4) : BATCH;
	uint64_t run_ns = 0;

	if (loader_read_counters(ld, before))
		return -1;
	uint64_t consumed0 = atomic_load(&c->consumed);
	uint64_t produced = 0;
	double t0 = now_s(), deadline = t0 + seconds;

	while (now_s() < deadline) {
		uint64_t backlog = produced - (atomic_load(&c->consumed) - consumed0);
		if (backlog + batch > in_flight_max) {
			sched_yield();
			continue;
		}
		LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = pkt, .data_size_in = (uint32_t)len,
			    .repeat = batch);
		int rc = bpf_prog_test_run_opts(loader_prog_fd(ld), &t);
		if (rc) {
			fprintf(stderr, "bench_ring: test run: %s\n", strerror(-rc));
			return -1;
		}
		produced += batch;
		run_ns += (uint64_t)t.duration * batch;
	}
	/* Wait for the consumer to drain what was produced. */
	while (atomic_load(&c->consumed) - consumed0 < produced && now_s() < deadline + 5)
		sched_yield();
	double elapsed = now_s() - t0;
	if (loader_read_counters(ld, after))
		return -1;

	uint64_t got = atomic_load(&c->consumed) - consumed0;
	uint64_t lost = after[RW_CNT_RESERVE_FAIL] - before[RW_CNT_RESERVE_FAIL];
	uint64_t sent = after[RW_CNT_RECORDS] - before[RW_CNT_RECORDS];
	printf("ring: payload %4zu B: %.0f records/s (%.1f MiB/s of payload), %llu records, "
	       "reserve failures %llu, invalid %llu, ring %u MiB; program %.0f ns/run\n",
	       payload_len, got / elapsed, got * payload_len / elapsed / (1 << 20),
	       (unsigned long long)got, (unsigned long long)lost,
	       (unsigned long long)c->cap.stats.invalid, RW_RING_SIZE_DEFAULT >> 20,
	       produced ? (double)run_ns / produced : 0.0);
	if (sent != got)
		printf("ring: sent %llu but consumed %llu\n", (unsigned long long)sent,
		       (unsigned long long)got);
	return lost == 0 && sent == got ? 0 : 1;
}

/* Loads the program in one wakeup mode and runs every payload size. */
static int run_mode(bool adaptive, double seconds)
{
	struct loader ld;
	struct loader_opts o = { .adaptive_wakeup = adaptive };
	char err[256];
	if (loader_open_load(&ld, &o, err, sizeof(err))) {
		fprintf(stderr, "bench_ring: %s\n", err);
		return -1;
	}
	struct loader_maps maps;
	loader_map_fds(&ld, &maps);
	struct consumer c;
	memset(&c, 0, sizeof(c));
	int rc = capture_open(&c.cap, maps.ring, count_record, &c);
	if (rc) {
		fprintf(stderr, "bench_ring: open ring: %s\n", strerror(-rc));
		loader_close(&ld);
		return -1;
	}
	pthread_t th;
	if (pthread_create(&th, NULL, consume, &c)) {
		fprintf(stderr, "bench_ring: thread: %s\n", strerror(errno));
		capture_close(&c.cap);
		loader_close(&ld);
		return -1;
	}
	printf("wakeup %s:\n", adaptive ? "adaptive" : "forced (default)");
	const size_t sizes[] = { 32, 512, 2048 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]) && rc >= 0; i++) {
		int r = run_size(&ld, &c, sizes[i], seconds);
		rc = r < 0 ? r : (rc | r);
	}
	atomic_store(&c.stop, true);
	pthread_join(th, NULL);
	capture_close(&c.cap);
	loader_close(&ld);
	return rc;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 2.0;
	if (seconds <= 0)
		seconds = 2.0;
	int forced = run_mode(false, seconds);
	int adaptive = run_mode(true, seconds);
	return forced || adaptive ? 1 : 0;
}
