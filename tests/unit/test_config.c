/* Configuration file parsing and command-line overrides (user/config.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

/* Writes text to a fresh temporary file; returns its path (static buffer
 * per call site is not needed: tests use one file at a time). */
static char tmp_path[64];

static const char *write_conf(const char *text)
{
	snprintf(tmp_path, sizeof(tmp_path), "/tmp/rw-test-config-XXXXXX");
	int fd = mkstemp(tmp_path);
	assert_true(fd >= 0);
	size_t len = strlen(text);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	return tmp_path;
}

static int load_text(const char *text, struct rw_config *cfg, char *err, size_t errlen)
{
	const char *path = write_conf(text);
	int rc = config_load(path, cfg, err, errlen);
	unlink(path);
	return rc;
}

/* The error must name the file, the line and the key. */
static void assert_error(const char *text, int line, const char *needle)
{
	struct rw_config cfg;
	char err[512] = "";
	config_defaults(&cfg);
	cfg.batch_size = 4242; /* a marker: must survive a failed load */
	int rc = load_text(text, &cfg, err, sizeof(err));
	if (rc != -EINVAL)
		fail_msg("expected -EINVAL for %s, got %d (%s)", text, rc, err);
	char where[96];
	snprintf(where, sizeof(where), "%s:%d: ", tmp_path, line);
	if (!strstr(err, where) || !strstr(err, needle))
		fail_msg("error '%s' lacks '%s' or '%s'", err, where, needle);
	assert_int_equal(cfg.batch_size, 4242);
}

static void test_defaults(void **state)
{
	struct rw_config cfg;
	config_defaults(&cfg);
	assert_int_equal(cfg.mode, RW_MODE_MONITOR);
	assert_int_equal(cfg.n_interfaces, 0);
	assert_int_equal(cfg.n_smtp_ports, 2);
	assert_int_equal(cfg.smtp_ports[0], 25);
	assert_int_equal(cfg.smtp_ports[1], 587);
	assert_int_equal(cfg.n_tls_ports, 1);
	assert_int_equal(cfg.tls_ports[0], 465);
	assert_int_equal(cfg.ring_size, 16u << 20);
	assert_int_equal(cfg.hold_ms, 500);
	assert_string_equal(cfg.protect, "");
	assert_int_equal(cfg.set_timeout_s, 600);
	assert_false(cfg.keep_rules_on_exit);
	assert_true(cfg.worker_thread);
	assert_true(cfg.realtime);
	assert_string_equal(cfg.log_file, "-");
	assert_true(cfg.syslog);
	assert_string_equal(config_mode_name(cfg.mode), "monitor");
}

static void test_every_key(void **state)
{
	static const char text[] =
		"; comment\n"
		"# another comment\n"
		"[general]\n"
		"mode = enforce\n"
		"realtime = off\n"
		"[capture]\n"
		"interfaces = eth0, ens3 veth-rw1\n"
		"smtp_ports = 25,587,2525\n"
		"tls_ports = 465\n"
		"ring_size = 4M\n"
		"hold_ms = 0\n"
		"[policy]\n"
		"protect = /etc/rcptwall/protected.txt\n"
		"allow = /etc/rcptwall/allow.txt\n"
		"block = /etc/rcptwall/block.txt\n"
		"[parser]\n"
		"max_flows = 1000\n"
		"max_memory = 64MiB\n"
		"max_reorder_bytes = 32K\n"
		"[enforce]\n"
		"set_timeout = 10m\n"
		"keep_rules_on_exit = yes\n"
		"flush_interval_ms = 5\n"
		"batch_size = 100\n"
		"worker_thread = no\n"
		"[log]\n"
		"file = /var/log/rcptwall.jsonl\n"
		"syslog = off\n";
	struct rw_config cfg;
	char err[512] = "";
	int rc = load_text(text, &cfg, err, sizeof(err));
	if (rc)
		fail_msg("%s", err);
	assert_int_equal(cfg.mode, RW_MODE_ENFORCE);
	assert_int_equal(cfg.n_interfaces, 3);
	assert_string_equal(cfg.interfaces[0], "eth0");
	assert_string_equal(cfg.interfaces[1], "ens3");
	assert_string_equal(cfg.interfaces[2], "veth-rw1");
	assert_int_equal(cfg.n_smtp_ports, 3);
	assert_int_equal(cfg.smtp_ports[2], 2525);
	assert_int_equal(cfg.n_tls_ports, 1);
	assert_int_equal(cfg.ring_size, 4u << 20);
	assert_int_equal(cfg.hold_ms, 0);
	assert_string_equal(cfg.protect, "/etc/rcptwall/protected.txt");
	assert_string_equal(cfg.allow, "/etc/rcptwall/allow.txt");
	assert_string_equal(cfg.block, "/etc/rcptwall/block.txt");
	assert_int_equal(cfg.max_flows, 1000);
	assert_int_equal(cfg.max_memory, 64u << 20);
	assert_int_equal(cfg.max_reorder_bytes, 32u << 10);
	assert_int_equal(cfg.set_timeout_s, 600);
	assert_true(cfg.keep_rules_on_exit);
	assert_int_equal(cfg.flush_interval_ms, 5);
	assert_int_equal(cfg.batch_size, 100);
	assert_false(cfg.worker_thread);
	assert_false(cfg.realtime);
	assert_string_equal(cfg.log_file, "/var/log/rcptwall.jsonl");
	assert_false(cfg.syslog);
}

static void test_value_forms(void **state)
{
	struct rw_config cfg;
	char err[512] = "";
	assert_int_equal(load_text("[enforce]\nset_timeout = 2h\n", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.set_timeout_s, 7200);
	assert_int_equal(load_text("[enforce]\nset_timeout = 45s\n", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.set_timeout_s, 45);
	assert_int_equal(load_text("[enforce]\nset_timeout = 1d\n", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.set_timeout_s, 86400);
	assert_int_equal(load_text("[capture]\nring_size = 1G\n", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.ring_size, 1u << 30);
	assert_int_equal(load_text("[capture]\nring_size = 65536\n", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.ring_size, 65536);
	/* An empty tls_ports means: no implicit-TLS port. */
	assert_int_equal(load_text("[capture]\ntls_ports =\n", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.n_tls_ports, 0);
	/* Key order does not matter for cross-key checks: 465 moves lists. */
	assert_int_equal(load_text("[capture]\nsmtp_ports = 465\ntls_ports = 25\n", &cfg, err,
				   sizeof(err)), 0);
	assert_int_equal(cfg.smtp_ports[0], 465);
	assert_int_equal(cfg.tls_ports[0], 25);
	/* Empty policy path: the embedded default list. */
	assert_int_equal(load_text("[policy]\nprotect =\n", &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg.protect, "");
	/* An empty file is the defaults. */
	assert_int_equal(load_text("", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.set_timeout_s, 600);
	/* Booleans in every spelling. */
	const char *yes[] = { "true", "TRUE", "yes", "on", "1" };
	for (size_t i = 0; i < 5; i++) {
		char text[64];
		snprintf(text, sizeof(text), "[log]\nsyslog = %s\n", yes[i]);
		assert_int_equal(load_text("[log]\nsyslog = false\n", &cfg, err, sizeof(err)), 0);
		assert_false(cfg.syslog);
		assert_int_equal(load_text(text, &cfg, err, sizeof(err)), 0);
		assert_true(cfg.syslog);
	}
}

static void test_list_continuation(void **state)
{
	struct rw_config cfg;
	char err[512] = "";
	int rc = load_text("[capture]\ninterfaces = eth0,\n  eth1\n  eth2\n", &cfg, err,
			   sizeof(err));
	if (rc)
		fail_msg("%s", err);
	assert_int_equal(cfg.n_interfaces, 3);
	assert_string_equal(cfg.interfaces[2], "eth2");
}

static void test_structure_errors(void **state)
{
	assert_error("[general]\nmode = enforce\n[bogus]\n", 3, "unknown section [bogus]");
	assert_error("[general]\nmode = enforce\n[bogus]\nkey = 1\n", 3, "unknown section");
	assert_error("[general]\nfrobnicate = 1\n", 2, "[general] frobnicate: unknown key");
	assert_error("mode = enforce\n", 1, "outside of any [section]");
	assert_error("[general]\nmode = enforce\nmode = monitor\n", 3, "mode: given twice");
	assert_error("[capture]\ninterfaces = a\ninterfaces = b\n", 3, "interfaces: given twice");
	assert_error("[general]\nmode = enforce\njust some words\n", 3, "not a [section]");
	assert_error("[general\nmode = enforce\n", 1, "not a [section]");
	/* A key of one section written in another is unknown there. */
	assert_error("[log]\nmode = enforce\n", 2, "[log] mode: unknown key");
}

static void test_line_too_long(void **state)
{
	char text[4096];
	int n = snprintf(text, sizeof(text), "[policy]\nprotect = /");
	memset(text + n, 'a', 2000);
	strcpy(text + n + 2000, "\n[general]\nmode = enforce\n");
	assert_error(text, 2, "line too long");
}

static void test_value_errors(void **state)
{
	static const struct {
		const char *text, *needle;
	} cases[] = {
		{ "[general]\nmode = block\n", "[general] mode: 'block' is not monitor or enforce" },
		{ "[general]\nmode =\n", "mode:" },
		{ "[capture]\ninterfaces = eth0 eth0\n", "listed twice" },
		{ "[capture]\ninterfaces = eth0/1\n", "not a valid interface name" },
		{ "[capture]\ninterfaces = ..\n", "not a valid interface name" },
		{ "[capture]\ninterfaces = averyveryverylongname0\n", "interfaces:" },
		{ "[capture]\nsmtp_ports = 25,0\n", "'0' is not a port number" },
		{ "[capture]\nsmtp_ports = 70000\n", "not a port number" },
		{ "[capture]\nsmtp_ports = 25x\n", "not a port number" },
		{ "[capture]\nsmtp_ports = -25\n", "not a port number" },
		{ "[capture]\nsmtp_ports = 25 25\n", "port 25 listed twice" },
		{ "[capture]\nsmtp_ports =\n", "at least one SMTP port" },
		{ "[capture]\ntls_ports = 25\n", "tls_ports: port 25 is in both" },
		{ "[capture]\nring_size = 3M\n", "not a power of two" },
		{ "[capture]\nring_size = 1K\n", "not a power of two" },
		{ "[capture]\nring_size = 2G\n", "not a power of two" },
		{ "[capture]\nring_size = 16X\n", "not a size" },
		{ "[capture]\nring_size = 99999999999999999999999\n", "not a size" },
		{ "[parser]\nmax_flows = 0\n", "out of range" },
		{ "[parser]\nmax_flows = 1e6\n", "not a whole number" },
		{ "[parser]\nmax_memory = 1K\n", "out of range" },
		{ "[parser]\nmax_memory = lots\n", "not a size" },
		{ "[parser]\nmax_reorder_bytes = 1G\n", "out of range" },
		{ "[enforce]\nset_timeout = 0\n", "out of range" },
		{ "[enforce]\nset_timeout = 8d\n", "out of range" },
		{ "[enforce]\nset_timeout = 10 minutes\n", "not a duration" },
		{ "[enforce]\nset_timeout = 99999999999999999999d\n", "not a duration" },
		{ "[enforce]\nkeep_rules_on_exit = maybe\n", "not a boolean" },
		{ "[enforce]\nflush_interval_ms = 5000\n", "out of range" },
		{ "[capture]\nhold_ms = 10001\n", "out of range" },
		{ "[capture]\nhold_ms = soon\n", "hold_ms" },
		{ "[enforce]\nbatch_size = 0\n", "out of range" },
		{ "[enforce]\nworker_thread = sometimes\n", "worker_thread: 'sometimes' is not a boolean" },
		{ "[general]\nrealtime = maybe\n", "realtime: 'maybe' is not a boolean" },
		{ "[log]\nfile =\n", "[log] file: empty path" },
		{ "[log]\nsyslog = 2\n", "not a boolean" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int line = 0;
		for (const char *p = cases[i].text; *p; p++)
			line += *p == '\n';
		assert_error(cases[i].text, line, cases[i].needle);
	}
}

static void test_missing_file(void **state)
{
	struct rw_config cfg;
	char err[256];
	int rc = config_load("/nonexistent/rcptwall.conf", &cfg, err, sizeof(err));
	assert_int_equal(rc, -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/rcptwall.conf"));
}

static void test_startup(void **state)
{
	struct rw_config cfg;
	const char *used = "x";
	char err[256];
	const char *path = write_conf("[general]\nmode = enforce\n");
	assert_int_equal(config_load_startup(path, &cfg, &used, err, sizeof(err)), 0);
	assert_ptr_equal(used, path);
	assert_int_equal(cfg.mode, RW_MODE_ENFORCE);
	unlink(path);
	/* An explicit path that does not exist is an error, not the defaults. */
	assert_int_equal(config_load_startup(path, &cfg, &used, err, sizeof(err)), -ENOENT);
	assert_null(used);
	/* Without a path: the default file if it exists, else the defaults. */
	int rc = config_load_startup(NULL, &cfg, &used, err, sizeof(err));
	if (access(CONFIG_DEFAULT_PATH, F_OK) == 0) {
		/* This host has one: it is the file read (its content is not ours). */
		if (rc == 0)
			assert_string_equal(used, CONFIG_DEFAULT_PATH);
		else
			assert_non_null(strstr(err, CONFIG_DEFAULT_PATH));
	} else {
		assert_int_equal(rc, 0);
		assert_null(used);
		assert_int_equal(cfg.mode, RW_MODE_MONITOR);
	}
}

static void test_set_overrides(void **state)
{
	struct rw_config cfg;
	char err[256];
	assert_int_equal(load_text("[general]\nmode = monitor\n[capture]\ninterfaces = eth0\n",
				   &cfg, err, sizeof(err)), 0);
	assert_int_equal(config_set(&cfg, "general.mode", "enforce", err, sizeof(err)), 0);
	assert_int_equal(cfg.mode, RW_MODE_ENFORCE);
	/* A list from the command line replaces the file's. */
	assert_int_equal(config_set(&cfg, "capture.interfaces", "veth1,veth2", err, sizeof(err)), 0);
	assert_int_equal(cfg.n_interfaces, 2);
	assert_string_equal(cfg.interfaces[0], "veth1");
	assert_int_equal(config_set(&cfg, "log.file", "-", err, sizeof(err)), 0);
	assert_int_equal(config_set(&cfg, "policy.protect", "/tmp/p.txt", err, sizeof(err)), 0);
	assert_string_equal(cfg.protect, "/tmp/p.txt");

	/* Errors name the key and leave cfg unchanged. */
	struct rw_config before = cfg;
	assert_int_equal(config_set(&cfg, "general.mode", "nope", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "general.mode"));
	assert_int_equal(config_set(&cfg, "general.nokey", "1", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown configuration key"));
	assert_int_equal(config_set(&cfg, "mode", "enforce", err, sizeof(err)), -EINVAL);
	assert_int_equal(config_set(&cfg, "capture.tls_ports", "587", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "in both"));
	assert_int_equal(config_set(&cfg, "capture.interfaces", "ok,bad/name", err, sizeof(err)),
			 -EINVAL);
	assert_memory_equal(&before, &cfg, sizeof(cfg));
}

/* Repeatable options (--iface a --iface b) append. */
static void test_append(void **state)
{
	struct rw_config cfg;
	char err[256];
	config_defaults(&cfg);
	assert_int_equal(config_append(&cfg, "capture.interfaces", "veth0", err, sizeof(err)), 0);
	assert_int_equal(config_append(&cfg, "capture.interfaces", "veth1", err, sizeof(err)), 0);
	assert_int_equal(cfg.n_interfaces, 2);
	assert_string_equal(cfg.interfaces[1], "veth1");
	assert_int_equal(config_append(&cfg, "capture.interfaces", "veth1", err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "listed twice"));
	assert_int_equal(config_append(&cfg, "capture.smtp_ports", "2525", err, sizeof(err)), 0);
	assert_int_equal(cfg.n_smtp_ports, 3);
	assert_int_equal(config_append(&cfg, "capture.smtp_ports", "465", err, sizeof(err)), -EINVAL);
	assert_int_equal(config_append(&cfg, "general.mode", "enforce", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a list"));
	/* Clearing then appending: the command line replaces the file's list. */
	assert_int_equal(config_set(&cfg, "capture.interfaces", "", err, sizeof(err)), 0);
	assert_int_equal(cfg.n_interfaces, 0);
	for (int i = 0; i < CONFIG_MAX_IFACES; i++) {
		char name[16];
		snprintf(name, sizeof(name), "if%d", i);
		assert_int_equal(config_append(&cfg, "capture.interfaces", name, err, sizeof(err)), 0);
	}
	assert_int_equal(config_append(&cfg, "capture.interfaces", "one-more", err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(cfg.n_interfaces, CONFIG_MAX_IFACES);
}

/* Reload: a broken file leaves the configuration in force untouched. */
static void test_reload_keeps_old(void **state)
{
	struct rw_config live;
	char err[256];
	assert_int_equal(load_text("[enforce]\nset_timeout = 60\n", &live, err, sizeof(err)), 0);
	struct rw_config before = live;
	assert_int_equal(load_text("[enforce]\nset_timeout = 60\nbroken\n", &live, err,
				   sizeof(err)), -EINVAL);
	assert_memory_equal(&before, &live, sizeof(live));
}

/* The example file documents every key at its default: it must load, and
 * give exactly the defaults. (Tests run from the repository root.) */
static void test_example_file(void **state)
{
	struct rw_config cfg, def;
	char err[512] = "";
	int rc = config_load("etc/rcptwall.conf", &cfg, err, sizeof(err));
	if (rc)
		fail_msg("%s", err);
	config_defaults(&def);
	assert_memory_equal(&cfg, &def, sizeof(cfg));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_value_forms),
		cmocka_unit_test(test_list_continuation),
		cmocka_unit_test(test_structure_errors),
		cmocka_unit_test(test_line_too_long),
		cmocka_unit_test(test_value_errors),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_startup),
		cmocka_unit_test(test_set_overrides),
		cmocka_unit_test(test_append),
		cmocka_unit_test(test_reload_keeps_old),
		cmocka_unit_test(test_example_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
