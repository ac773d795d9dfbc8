// SPDX-License-Identifier: MIT
/*
 * Live migration of the test guest with uffsnapd moving its RAM (issue 18), the source QEMU and
 * uffsnapd in one network namespace, the destination QEMU and the receiver in another, joined
 * by a veth pair. One source guest is booted and used by every case:
 *   - failures before the switch-over, each leaving the source guest running, counting on
 *     without a gap and its own page check clean: a wrong key; the destination QEMU killed
 *     during the rounds; the receiver killed during the rounds; uffsnapd itself killed at
 *     pre-switchover (its guardian resumes the guest); the link cut at pre-switchover, for
 *     longer than --resume-timeout;
 *   - then the migration: uffsnapd exits 0, the source stays paused (postmigrate), the
 *     destination guest goes on at exactly the next counter, its page check clean, 30 ticks;
 *     its stream used more than half of --mem-limit (a migration has no fault queue).
 *
 * usage: test-guest-migrate UFFSNAPD_TEST (uffsnapd with pause points, tests/snapshot/)
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "guest-harness.h"
#include "qmp.h"
#include "guest-mig.h"
#include "test-check.h"

/* Safety nets so that a stuck test ends; nothing here asserts on time. */
#define BOOT_TIMEOUT_S	300
#define TICKS_TIMEOUT_S 120
#define TICKS_AFTER	30
#define PORT		"7600"

/* The source QEMU and uffsnapd in n.ns_a, the destination and the receiver in n.ns_b. */
struct run {
	const char *uffsnapd;
	struct guest_config cfg;
	struct guest src, dst;
	struct mig_net m;
	char badkey[128], ram[128], pause[128];
	char to[64];
	pid_t recv_pid;
	char recv_out[160], recv_err[160], src_out[160];
	char why[GUEST_WHY_LEN];
};

/* A fresh destination QEMU (-incoming defer, RAM in a new file) and a receiver for it. */
static int dest_up(struct run *r, const char *key)
{
	int fd;

	guest_stop(&r->dst);
	fd = open(r->ram, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0 && ftruncate(fd, GUEST_RAM_BYTES) == 0, "%s: %m", r->ram);
	close(fd);
	CHECK(mig_guest_start(&r->m, r->m.b, &r->dst, &r->cfg, MIG_INCOMING_FILE, r->ram, r->why,
			      sizeof(r->why)) == 0,
	      "destination QEMU: %s", r->why);
	r->recv_pid = mig_receiver(&r->m, r->uffsnapd, &r->dst, PORT, key, r->recv_out, r->recv_err,
				   r->why, sizeof(r->why));
	CHECK(r->recv_pid > 0, "%s", r->why);
	return 0;
fail:
	return -1;
}

static void recv_kill(struct run *r)
{
	if (r->recv_pid > 0) {
		kill(r->recv_pid, SIGKILL);
		waitpid(r->recv_pid, NULL, 0);
	}
	r->recv_pid = 0;
}

static int src_status(struct run *r, char *st, size_t len)
{
	return mig_status(&r->src, st, len, r->why, sizeof(r->why));
}

/* The source guest runs, counts on without a gap, its own page check clean. */
static int source_fine(struct run *r, const char *after)
{
	struct guest_log log;
	char st[32] = "";

	CHECK(src_status(r, st, sizeof(st)) == 0 && !strcmp(st, "running"),
	      "after %s: the source guest is '%s' (%s)", after, st, r->why);
	CHECK(guest_log_read(r->src.serial_path, 0, -1, &log, NULL) == 0, "log");
	CHECK(guest_wait_tick(&r->src, 0, log.last_tick + 5, TICKS_TIMEOUT_S, &log, r->why,
			      sizeof(r->why)) == 0,
	      "after %s: %s", after, r->why);
	CHECK(log.bad == 0 && log.gaps == 0, "after %s: %s%s", after, log.first_bad, log.first_gap);
	printf("%s: the source guest runs on (tick %ld), clean, no tick lost\n", after,
	       log.last_tick);
	return 0;
fail:
	return -1;
}

/* The source uffsnapd, paused at point (or not); returns its pid. */
static pid_t source_start(struct run *r, const char *key, const char *point, char *env,
			  size_t envlen)
{
	/* --mem-limit 4: a migration's stream takes all of it (case_migrate() checks) */
	const char *argv[] = {r->uffsnapd, "--qemu",	  r->src.qmp_path,
			      "--migrate", "--to",	  r->to,
			      "--key",	   key,		  "--resume-timeout",
			      "2",	   "--json",	  "--downtime",
			      "100",	   "--mem-limit", "4",
			      NULL};
	char err[200];

	snprintf(err, sizeof(err), "%s.err", r->src_out);
	if (point) {
		snprintf(env, envlen, "UFFSNAPD_TEST_PAUSE=%s:%s", point, r->pause);
		net_sh(NULL, "rm -f %s/*", r->pause);
	}
	return mig_spawn(r->m.a, argv, r->src_out, err, point ? env : NULL);
}

static void go(struct run *r)
{
	char p[160];
	int fd;

	snprintf(p, sizeof(p), "%s/go", r->pause);
	fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
}

static bool paused_at(struct run *r, const char *point)
{
	char p[160];

	snprintf(p, sizeof(p), "%s/%s", r->pause, point);
	return mig_wait_file(p, NULL);
}

static int case_wrong_key(struct run *r)
{
	char env[256], err[200];
	pid_t pid;
	int rc;

	CHECK(dest_up(r, r->m.n.key) == 0, "destination");
	pid = source_start(r, r->badkey, NULL, env, sizeof(env));
	rc = mig_wait_exit(pid);
	CHECK(rc == 1, "uffsnapd with a wrong key exited %d", rc);
	snprintf(err, sizeof(err), "%s.err", r->src_out);
	CHECK(net_log_has(err, "did not prove it has our key"), "no key error in %s", err);
	recv_kill(r);
	return source_fine(r, "a wrong key");
fail:
	return -1;
}

/* At the pause point, kill (pid, sig) or run cmd; then the source must fail cleanly. */
static int case_fail(struct run *r, const char *what, const char *point, pid_t *victim,
		     const char *cmd)
{
	json_t *j;
	char env[256];
	pid_t pid;
	int rc;

	CHECK(dest_up(r, r->m.n.key) == 0, "destination");
	pid = source_start(r, r->m.n.key, point, env, sizeof(env));
	CHECK(paused_at(r, point), "uffsnapd never reached %s", point);
	if (victim && *victim > 0)
		kill(*victim, SIGKILL);
	if (cmd)
		CHECK(net_sh(NULL, "%s", cmd) == 0, "%s", cmd);
	go(r);
	rc = mig_wait_exit(pid);
	CHECK(rc == 1, "%s: uffsnapd exited %d", what, rc);
	j = json_load_file(r->src_out, 0, NULL);
	printf("%s: uffsnapd failed as it should: %s\n", what,
	       json_string_value(json_object_get(j, "error")) ?: "(no summary)");
	json_decref(j);
	recv_kill(r);
	return source_fine(r, what);
fail:
	return -1;
}

/* uffsnapd killed at pre-switchover: the guardian cancels and resumes. */
static int case_killed(struct run *r)
{
	char env[256];
	pid_t pid;

	CHECK(dest_up(r, r->m.n.key) == 0, "destination");
	pid = source_start(r, r->m.n.key, "mig-switchover", env, sizeof(env));
	CHECK(paused_at(r, "mig-switchover"), "uffsnapd never reached pre-switchover");
	kill(pid, SIGKILL);
	mig_wait_exit(pid);
	recv_kill(r);
	for (int i = 0; i < MIG_WAIT_MAX_MS / 50; i++) { /* the guardian is not our child */
		char st[32] = "";

		if (src_status(r, st, sizeof(st)) == 0 && !strcmp(st, "running"))
			break;
		test_sleep_ms(50);
	}
	return source_fine(r, "uffsnapd killed at pre-switchover");
fail:
	return -1;
}

/* The migration itself. */
static int case_migrate(struct run *r)
{
	struct guest_log slog, dlog;
	json_t *j = NULL, *rj = NULL;
	char env[256], st[32] = "", last = 0;
	json_int_t peak;
	pid_t pid;
	int rc, fd;

	CHECK(dest_up(r, r->m.n.key) == 0, "destination");
	pid = source_start(r, r->m.n.key, NULL, env, sizeof(env));
	rc = mig_wait_exit(pid);
	j = json_load_file(r->src_out, 0, NULL);
	CHECK(rc == 0, "uffsnapd --migrate exited %d: %s", rc,
	      json_string_value(json_object_get(j, "error")) ?: "?");
	rc = mig_wait_exit(r->recv_pid);
	r->recv_pid = 0;
	rj = json_load_file(r->recv_out, 0, NULL);
	CHECK(rc == 0, "the receiver exited %d: %s", rc,
	      json_string_value(json_object_get(rj, "error")) ?: "?");
	CHECK(src_status(r, st, sizeof(st)) == 0 && !strcmp(st, "postmigrate"),
	      "the source is '%s' after the migration, not postmigrate", st);
	/* Round 0 (512 MiB) outruns the veth pair: the stream fills its bound, all 4 MiB of
	 * --mem-limit, not the half a snapshot's stream gets beside its fault queue. */
	peak = json_integer_value(json_object_get(json_object_get(j, "stream"), "mem_peak"));
	CHECK(peak > 2 << 20 && peak <= 4 << 20,
	      "the stream held at most %lld bytes: --mem-limit 4 is a migration's stream's alone",
	      peak);
	printf(
	    "migrated: %lld rounds, converged %d, %.1f MiB streamed; downtime %.1f ms "
	    "(receiver: source STOP -> destination RESUME), source stopped until completed "
	    "%.1f ms (informational)\n",
	    (long long)json_integer_value(json_object_get(json_object_get(j, "precopy"), "rounds")),
	    json_is_true(json_object_get(json_object_get(j, "precopy"), "converged")),
	    json_integer_value(json_object_get(rj, "bytes")) / 1048576.0,
	    json_integer_value(json_object_get(rj, "downtime_ns")) / 1e6,
	    json_integer_value(
		json_object_get(json_object_get(j, "migration"), "stopped_to_completed_ns")) /
		1e6);
	/* The source's log ends where the guest left it: its last whole tick line, and maybe
	 * the start of the next, which the destination then finishes. */
	CHECK(guest_log_read(r->src.serial_path, 0, -1, &slog, NULL) == 0, "log");
	fd = open(r->src.serial_path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0 && pread(fd, &last, 1, guest_serial_size(&r->src) - 1) == 1, "log");
	close(fd);
	CHECK(guest_wait_tick(&r->dst, 0, slog.last_tick + 1 + TICKS_AFTER, TICKS_TIMEOUT_S, &dlog,
			      r->why, sizeof(r->why)) == 0,
	      "destination: %s", r->why);
	CHECK(dlog.bad == 0 && dlog.gaps == 0, "destination: %s%s", dlog.first_bad, dlog.first_gap);
	CHECK(dlog.first_tick == slog.last_tick + (last == '\n' ? 1 : 2),
	      "the destination's first tick line is %ld, the source's last %ld (%s)",
	      dlog.first_tick, slog.last_tick, last == '\n' ? "whole" : "a line cut");
	printf("destination: went on from tick %ld (source's last %ld) to %ld, clean\n",
	       dlog.first_tick, slog.last_tick, dlog.last_tick);
	json_decref(j);
	json_decref(rj);
	return 0;
fail:
	json_decref(j);
	json_decref(rj);
	return -1;
}

/* After mig_net_setup(): the paths in its directory, a second (wrong) key. */
static int setup(struct run *r)
{
	const char *d = r->m.n.dir;

	snprintf(r->to, sizeof(r->to), "%s:" PORT, r->m.n.ip_b);
	snprintf(r->badkey, sizeof(r->badkey), "%s/badkey", d);
	snprintf(r->ram, sizeof(r->ram), "/dev/shm/uffsnap-migrate-%d.ram", (int)getpid());
	snprintf(r->pause, sizeof(r->pause), "%s/pause", d);
	snprintf(r->recv_out, sizeof(r->recv_out), "%s/recv.json", d);
	snprintf(r->recv_err, sizeof(r->recv_err), "%s/recv.log", d);
	snprintf(r->src_out, sizeof(r->src_out), "%s/src.json", d);
	mkdir(r->pause, 0700);
	return net_sh(NULL,
		      "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n' > %s && "
		      "chmod 600 %s",
		      r->badkey, r->badkey)
		   ? -1
		   : 0;
}

static int run_cases(struct run *r)
{
	char cmd[256];
	struct guest_log log;

	CHECK(mig_guest_start(&r->m, r->m.a, &r->src, &r->cfg, MIG_BOOT, NULL, r->why,
			      sizeof(r->why)) == 0,
	      "source QEMU: %s", r->why);
	CHECK(guest_wait_tick(&r->src, 0, 10, BOOT_TIMEOUT_S, &log, r->why, sizeof(r->why)) == 0,
	      "%s", r->why);
	if (case_wrong_key(r) < 0 ||
	    case_fail(r, "the destination QEMU killed during the rounds", "round", &r->dst.pid,
		      NULL) < 0 ||
	    case_fail(r, "the receiver killed during the rounds", "round", &r->recv_pid, NULL) <
		0 ||
	    case_killed(r) < 0)
		return -1;
	snprintf(cmd, sizeof(cmd), "ip -n %s link set %s down", r->m.n.ns_a, r->m.n.if_a);
	if (case_fail(r, "the link cut at pre-switchover, beyond --resume-timeout",
		      "mig-switchover", NULL, cmd) < 0)
		return -1;
	CHECK(net_sh(r->m.n.ns_a, "ip link set %s up", r->m.n.if_a) == 0, "link up");
	return case_migrate(r);
fail:
	return -1;
}

/* What main() set up, for the cleanup when a signal ends the test (ctest, Ctrl-C). */
static struct run *cleanup_run;

static void cleanup(struct run *r)
{
	recv_kill(r);
	guest_stop(&r->src);
	guest_stop(&r->dst);
	mig_net_teardown(&r->m);
	unlink(r->ram);
}

static void on_signal(int sig)
{
	(void)sig;
	if (cleanup_run)
		cleanup(cleanup_run);
	_exit(1);
}

int main(int argc, char **argv)
{
	struct run *r = calloc(1, sizeof(*r));
	int status = 1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!r || argc != 2) {
		fprintf(stderr, "usage: %s UFFSNAPD_TEST\n", argv[0]);
		return 2;
	}
	r->uffsnapd = argv[1];
	if (geteuid() != 0) {
		printf("SKIP: needs root (network namespaces, ptrace of QEMU, /dev/userfaultfd)\n");
		return GUEST_SKIP;
	}
	if (guest_config_find(&r->cfg, r->why, sizeof(r->why)) < 0) {
		printf("SKIP: cannot boot a test guest: %s\n", r->why);
		return GUEST_SKIP;
	}
	cleanup_run = r;
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGHUP, on_signal);
	signal(SIGPIPE, SIG_IGN); /* a reader of our output that went must not skip the clean-up */
	status = mig_net_setup(&r->m);
	if (status == 0 && setup(r) < 0)
		printf("FAIL: cannot write a second key\n"), status = 1;
	else if (status == 0)
		status = run_cases(r) == 0 ? 0 : 1;
	if (status < 0)
		status = 1;
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	cleanup(r);
	printf("%s\n", status == GUEST_SKIP ? "SKIP" : status ? "FAIL" : "PASS");
	free(r);
	return status;
}
