// SPDX-License-Identifier: MIT
/*
 * Live migration of the test guest (512 MiB, TCG, writing 1024 pages a tick) between two
 * network namespaces joined by a veth pair, two ways in the same run, alternately:
 *   - uffsnapd: `uffsnapd --qemu --migrate` from A (memfd, share=on) to `uffsnapd --receive
 *     --qemu` and a QEMU in B (file on /dev/shm, share=on), QEMU carrying the device state;
 *   - QEMU's own pre-copy migration, `migrate tcp:` without x-ignore-shared, back from B to a
 *     QEMU in A (memfd, share=on, so that the next uffsnapd migration can start from it),
 *     with the same downtime limit and no bandwidth limit.
 * Same measures for both: downtime = the source QEMU's STOP event -> the destination's RESUME
 * event (QMP timestamps, one host's clock); total = start -> the destination's RESUME; bytes
 * on the wire = the veth pair's bytes both ways (/sys/class/net/IF/statistics in A). One JSON
 * object per migration on stdout, then the medians.
 *
 * usage: bench-migrate UFFSNAPD [PAIRS (default 3)] [DOWNTIME_MS (default 100)]
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "guest-mig.h"
#include "qmp.h"

#define PORT	    "7600"
#define QEMU_PORT   "7601"
#define BOOT_S	    300
#define MAX_PAIRS   15
#define QMP_WAIT_MS 600000

struct result {
	double downtime_ms, total_ms, wire_mib;
};

struct bench {
	const char *uffsnapd;
	unsigned downtime_ms;
	struct guest_config cfg;
	struct mig_net m;
	struct guest a, b; /* the guest runs in a, migrates to b, comes back to a fresh a */
	char ram[128], out[160], err[160], rout[160], rerr[160], why[GUEST_WHY_LEN];
	struct result ours[MAX_PAIRS], qemu[MAX_PAIRS];
};

static int64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* Bytes through A's end of the veth pair, both ways. */
static uint64_t wire_bytes(struct bench *b)
{
	uint64_t sum = 0;

	for (int i = 0; i < 2; i++) {
		char cmd[256], line[64] = "";
		FILE *f;

		snprintf(cmd, sizeof(cmd), "ip netns exec %s cat /sys/class/net/%s/statistics/%s",
			 b->m.n.ns_a, b->m.n.if_a, i ? "rx_bytes" : "tx_bytes");
		f = popen(cmd, "r");
		if (f && fgets(line, sizeof(line), f))
			sum += strtoull(line, NULL, 10);
		if (f)
			pclose(f);
	}
	return sum;
}

static int64_t event_ns(json_t *ev)
{
	json_t *ts = json_object_get(ev, "timestamp");

	return json_integer_value(json_object_get(ts, "seconds")) * 1000000000ll +
	       json_integer_value(json_object_get(ts, "microseconds")) * 1000ll;
}

/* The next event named name, its timestamp in *ret (QEMU's real-time clock). */
static int wait_event(struct qmp *q, const char *name, const char *status, int64_t *ret, char *why,
		      size_t len)
{
	for (;;) {
		json_t *ev = NULL;
		const char *st;
		int k = qmp_wait_event(q, name, QMP_WAIT_MS, &ev, why, len);

		if (k < 0)
			return k;
		st = json_string_value(json_object_get(json_object_get(ev, "data"), "status"));
		if (!status || (st && !strcmp(st, status))) {
			*ret = event_ns(ev);
			json_decref(ev);
			return 0;
		}
		if (st && !strcmp(st, "failed")) {
			json_decref(ev);
			return snprintf(why, len, "QEMU's migration failed"), -EIO;
		}
		json_decref(ev);
	}
}

/* Each pre-copy round's MiB and ms, on stderr: where the rounds went. */
static void round_list(json_t *rounds)
{
	size_t i;
	json_t *rd;

	fprintf(stderr, "uffsnapd: rounds (MiB/ms):");
	json_array_foreach(rounds, i, rd)
		fprintf(stderr, " %.1f/%.1f",
			json_integer_value(json_object_get(rd, "bytes")) / 1048576.0,
			json_integer_value(json_object_get(rd, "ns")) / 1e6);
	fprintf(stderr, "\n");
}

/* uffsnapd: a -> b. */
static int run_ours(struct bench *b, struct result *r)
{
	char to[64];
	const char *argv[] = {b->uffsnapd, "--qemu",   b->a.qmp_path, "--migrate",  "--to", to,
			      "--key",	   b->m.n.key, "--json",      "--downtime", NULL,   NULL};
	char dt[16], cmd[768];
	uint64_t w0 = wire_bytes(b);
	int64_t t0;
	json_t *j;
	pid_t recv, src;
	int fd = open(b->ram, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || ftruncate(fd, GUEST_RAM_BYTES) < 0)
		return fprintf(stderr, "%s: %m\n", b->ram), -1;
	close(fd);
	snprintf(dt, sizeof(dt), "%u", b->downtime_ms);
	argv[10] = dt;
	snprintf(to, sizeof(to), "%s:" PORT, b->m.n.ip_b);
	if (mig_guest_start(&b->m, b->m.b, &b->b, &b->cfg, MIG_INCOMING_FILE, b->ram, b->why,
			    sizeof(b->why)) < 0 ||
	    !(recv = mig_receiver(&b->m, b->uffsnapd, &b->b, PORT, b->m.n.key, b->rout, b->rerr,
				  b->why, sizeof(b->why))))
		return fprintf(stderr, "destination: %s\n", b->why), -1;
	t0 = realtime_ns();
	src = mig_spawn(b->m.a, argv, b->out, b->err, NULL);
	if (mig_wait_exit(src) != 0 || mig_wait_exit(recv) != 0) {
		fprintf(stderr, "uffsnapd's migration failed:\n");
		snprintf(cmd, sizeof(cmd), "tail -n 3 %s %s %s %s >&2", b->out, b->err, b->rout,
			 b->rerr);
		if (system(cmd) != 0)
			fprintf(stderr, "(no logs)\n");
		return -1;
	}
	j = json_load_file(b->rout, 0, NULL);
	r->downtime_ms = json_integer_value(json_object_get(j, "downtime_ns")) / 1e6;
	r->total_ms = (json_integer_value(json_object_get(j, "resumed_realtime_ns")) - t0) / 1e6;
	r->wire_mib = (wire_bytes(b) - w0) / 1048576.0;
	json_decref(j);
	j = json_load_file(b->out, 0, NULL); /* where the source's part of the downtime went */
	fprintf(
	    stderr,
	    "uffsnapd: %lld rounds, last round %.1f MiB; pre-switchover -> all RAM "
	    "acknowledged %.1f ms, migrate-continue -> completed %.1f ms\n",
	    (long long)json_integer_value(json_object_get(json_object_get(j, "precopy"), "rounds")),
	    json_integer_value(json_object_get(json_object_get(j, "precopy"), "freeze_bytes")) /
		1048576.0,
	    json_integer_value(json_object_get(json_object_get(j, "migration"), "final_round_ns")) /
		1e6,
	    json_integer_value(json_object_get(json_object_get(j, "migration"), "switchover_ns")) /
		1e6);
	round_list(json_object_get(json_object_get(j, "precopy"), "round"));
	json_decref(j);
	return 0;
}

static int set_params(struct qmp *q, unsigned downtime_ms, char *why, size_t len)
{
	json_t *a = json_pack("{s:I, s:I}", "downtime-limit", (json_int_t)downtime_ms,
			      "max-bandwidth", (json_int_t)(64ll << 30));

	return guest_qmp(q, "migrate-set-parameters", a, -1, NULL, why, len);
}

/* QEMU's own pre-copy migration: from -> a fresh to, in namespace nsfd at address ip. */
static int run_qemu(struct bench *b, struct guest *from, struct guest *to, int nsfd, const char *ip,
		    struct result *r)
{
	static const char *const caps[] = {"events", NULL};
	static const char *const ignore[] = {"x-ignore-shared", NULL};
	struct qmp *src = NULL, *dst = NULL;
	char uri[64];
	uint64_t w0 = wire_bytes(b);
	int64_t t0, stop = 0, resume = 0, done = 0;
	int k;

	snprintf(uri, sizeof(uri), "tcp:%s:" QEMU_PORT, ip);
	k = mig_guest_start(&b->m, nsfd, to, &b->cfg, MIG_INCOMING_MEMFD, NULL, b->why,
			    sizeof(b->why));
	if (k >= 0)
		k = guest_qmp_open(to, 60, &dst, b->why, sizeof(b->why));
	if (k >= 0)
		k = guest_qmp_open(from, 60, &src, b->why, sizeof(b->why));
	if (k >= 0)
		k = guest_qmp_caps(dst, caps, true, b->why, sizeof(b->why));
	if (k >= 0)
		k = guest_qmp_caps(src, caps, true, b->why, sizeof(b->why));
	if (k >= 0) /* QEMU's own migration moves all the RAM */
		k = guest_qmp_caps(src, ignore, false, b->why, sizeof(b->why));
	if (k >= 0)
		k = set_params(src, b->downtime_ms, b->why, sizeof(b->why));
	if (k >= 0)
		k = guest_qmp(dst, "migrate-incoming", json_pack("{s:s}", "uri", uri), -1, NULL,
			      b->why, sizeof(b->why));
	t0 = realtime_ns();
	if (k >= 0)
		k = guest_qmp(src, "migrate", json_pack("{s:s}", "uri", uri), -1, NULL, b->why,
			      sizeof(b->why));
	if (k >= 0)
		k = wait_event(src, "MIGRATION", "completed", &done, b->why, sizeof(b->why));
	if (k >= 0)
		k = wait_event(src, "STOP", NULL, &stop, b->why, sizeof(b->why));
	if (k >= 0)
		k = wait_event(dst, "RESUME", NULL, &resume, b->why, sizeof(b->why));
	qmp_close(src);
	qmp_close(dst);
	if (k < 0)
		return fprintf(stderr, "QEMU's migration: %s\n", b->why), -1;
	r->downtime_ms = (resume - stop) / 1e6;
	r->total_ms = (resume - t0) / 1e6;
	r->wire_mib = (wire_bytes(b) - w0) / 1048576.0;
	return 0;
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return a < b ? -1 : a > b;
}

static double median(const struct result *r, unsigned n, size_t field)
{
	double v[MAX_PAIRS];

	for (unsigned i = 0; i < n; i++)
		v[i] = *(const double *)((const char *)&r[i] + field);
	qsort(v, n, sizeof(v[0]), cmp_double);
	return v[n / 2];
}

/*
 * The guest at a migration's destination, after 30 ticks there (60 s at most: a safety net): a
 * kernel oops, a guest program that stopped, or its own bad-page report means the migration
 * broke it, and the run stops there.
 */
static bool guest_broke(struct bench *b, struct guest *g, const char *how, unsigned i)
{
	struct guest_log log;
	bool broke =
	    guest_wait_tick(g, 0, 0, 60, &log, b->why, sizeof(b->why)) < 0 ||
	    guest_wait_tick(g, 0, log.first_tick + 30, 60, &log, b->why, sizeof(b->why)) < 0 ||
	    log.bad || net_log_has(g->serial_path, "Oops") || net_log_has(g->serial_path, "BUG:");

	if (broke)
		printf("{\"method\": \"%s\", \"run\": %u, \"broke_the_guest\": true}\n", how, i);
	return broke;
}

static void print_run(const char *how, unsigned i, const struct result *r)
{
	printf("{\"method\": \"%s\", \"run\": %u, \"downtime_ms\": %.1f, \"total_ms\": %.1f, "
	       "\"wire_mib\": %.1f}\n",
	       how, i, r->downtime_ms, r->total_ms, r->wire_mib);
}

/*
 * Alternately: uffsnapd a -> b, QEMU b -> a (each destination replaces the source).
 * BENCH_MIGRATE_QEMU_ONLY=1: QEMU's own migration both ways (a control: no uffsnapd at all).
 */
static int run_pairs(struct bench *b, unsigned pairs, unsigned *ret_done)
{
	bool qemu_only = getenv("BENCH_MIGRATE_QEMU_ONLY");

	for (unsigned i = 0; i < pairs; i++) {
		if (qemu_only ? run_qemu(b, &b->a, &b->b, b->m.b, b->m.n.ip_b, &b->ours[i]) < 0
			      : run_ours(b, &b->ours[i]) < 0)
			return -1;
		print_run(qemu_only ? "qemu-a-to-b" : "uffsnapd", i, &b->ours[i]);
		guest_stop(&b->a);
		if (guest_broke(b, &b->b, qemu_only ? "qemu-a-to-b" : "uffsnapd", i))
			return -1;
		if (run_qemu(b, &b->b, &b->a, b->m.a, b->m.n.ip_a, &b->qemu[i]) < 0)
			return -1;
		print_run("qemu", i, &b->qemu[i]);
		guest_stop(&b->b);
		if (guest_broke(b, &b->a, "qemu", i))
			return -1;
		*ret_done = i + 1;
	}
	return 0;
}

static void print_medians(const struct bench *b, unsigned n)
{
	static const struct {
		const char *name;
		size_t off;
	} f[] = {{"downtime (ms)", offsetof(struct result, downtime_ms)},
		 {"total time (ms)", offsetof(struct result, total_ms)},
		 {"bytes on the wire (MiB)", offsetof(struct result, wire_mib)}};

	printf("\nmedians of %u migrations each, downtime limit %u ms, 512 MiB guest:\n", n,
	       b->downtime_ms);
	printf("| | uffsnapd | QEMU pre-copy | ratio |\n|---|---|---|---|\n");
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		double u = median(b->ours, n, f[i].off), q = median(b->qemu, n, f[i].off);

		printf("| %s | %.1f | %.1f | %.2f |\n", f[i].name, u, q, q > 0 ? u / q : 0);
	}
}

int main(int argc, char **argv)
{
	struct bench *b = calloc(1, sizeof(*b));
	unsigned pairs = argc > 2 ? (unsigned)atoi(argv[2]) : 3, done = 0;
	struct guest_log log;
	int k;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN); /* a closed stdout must not skip the clean-up */
	if (!b || argc < 2 || !pairs || pairs > MAX_PAIRS) {
		fprintf(stderr, "usage: %s UFFSNAPD [PAIRS 1..%d] [DOWNTIME_MS]\n", argv[0],
			MAX_PAIRS);
		return 2;
	}
	b->uffsnapd = argv[1];
	b->downtime_ms = argc > 3 ? (unsigned)atoi(argv[3]) : 100;
	if (guest_config_find(&b->cfg, b->why, sizeof(b->why)) < 0)
		return printf("SKIP: %s\n", b->why), 77;
	k = mig_net_setup(&b->m);
	if (k)
		return k == 77 ? 77 : 1;
	snprintf(b->ram, sizeof(b->ram), "/dev/shm/uffsnap-bench-migrate-%d.ram", (int)getpid());
	snprintf(b->out, sizeof(b->out), "%s/src.json", b->m.n.dir);
	snprintf(b->err, sizeof(b->err), "%s/src.log", b->m.n.dir);
	snprintf(b->rout, sizeof(b->rout), "%s/recv.json", b->m.n.dir);
	snprintf(b->rerr, sizeof(b->rerr), "%s/recv.log", b->m.n.dir);
	k = mig_guest_start(&b->m, b->m.a, &b->a, &b->cfg, MIG_BOOT, NULL, b->why, sizeof(b->why));
	if (k >= 0)
		k = guest_wait_tick(&b->a, 0, 10, BOOT_S, &log, b->why, sizeof(b->why));
	if (k < 0)
		fprintf(stderr, "boot: %s\n", b->why);
	else if ((k = run_pairs(b, pairs, &done)), done)
		print_medians(b, done);
	guest_stop(&b->a);
	guest_stop(&b->b);
	mig_net_teardown(&b->m);
	unlink(b->ram);
	free(b);
	return k < 0 ? 1 : 0;
}
