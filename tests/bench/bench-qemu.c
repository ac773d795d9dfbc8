/* SPDX-License-Identifier: MIT */
/*
 * uffsnapd --qemu beside QEMU's own background-snapshot (issue 14), on one test guest in one
 * run: the guest of tests/guest (Debian kernel, busybox initramfs, guest-counter dirtying 1024
 * of its 4096 pages per tick, 512 MiB memfd share=on, TCG) is booted once and snapshotted
 * ROUNDS times by each method, alternately (odd rounds run uffsnapd first).
 *
 * For each snapshot:
 *   - QEMU: migrate-set-capabilities events + background-snapshot, the image file passed with
 *     getfd and `migrate fd:` (no process spawned, as uffsnapd does), MIGRATION "completed";
 *     total = `migrate` sent -> "completed" received, then the file is fsynced (uffsnapd's
 *     --output fsyncs its image before it exits, QEMU never does: total_fsync_ns counts it);
 *     downtime = query-migrate's "downtime" (ms, QEMU's stop -> start of the vCPUs); the
 *     capabilities are set back off.
 *   - uffsnapd: `uffsnapd --qemu SOCK --output FILE --json`; total = the process's wall time
 *     (fork -> reaped: its QMP probing, ptrace, copy and fsync included); downtime = its
 *     summary's guest.downtime_ns (`stop` sent -> `cont` answered).
 *   - image size: st_size (apparent) and st_blocks * 512 (allocated on disk); uffsnapd's image
 *     has holes for zero pages while QEMU's stream has a marker per zero page, so the table
 *     compares the allocated size, the space the image takes.
 *   - jitter, the guest's own view: a thread timestamps every "tick N ok" line of the serial
 *     log when it appears in the file (inotify IN_MODIFY on the log, then read what is new:
 *     QEMU writes the console byte by byte as the guest's UART gets it). The figure is the
 *     longest interval between two consecutive tick lines that overlaps the snapshot's window
 *     (QEMU: migrate -> fsynced; uffsnapd: fork -> reaped), so a stop at the very start
 *     counts. The same measure over a quiet window of equal length right before the snapshot
 *     (the program waits QUIET_S seconds before each) is the noise of that moment. The guest
 *     ticks every ~7.5 ms here; a stop of the vCPUs for D ms shows as a gap of about D plus
 *     one tick period. Resolution: the watcher's wake-up latency; it is a SCHED_FIFO thread
 *     (it only blocks in poll() and reads), so that it stays at microseconds under load: a
 *     normal thread woke up to ~100 ms late here and saw eight tick lines at once. A host
 *     steal (this VM's host takes the CPUs away while it writes to disk) shows as a gap too,
 *     and steal_ms of each window says how much there was.
 *   - the guest's progress: its tick rate in the window against the quiet window's, and the
 *     progress it lost, lost = window - ticks in the window / quiet tick rate (a guest slowed
 *     to half speed for 2 s lost 1 s). TCG runs the vCPU on a host CPU that the snapshot's
 *     own work competes for (2 CPUs here), so this is where a long snapshot costs the guest
 *     even when it never stops it.
 *   - QEMU's RssShmem (/proc/PID/status) before and after: how much of the memfd guest RAM
 *     is resident in QEMU. background-snapshot populates all of it before it write-protects
 *     (QEMU's ram_write_tracking_prepare() read-faults every page), which allocates the
 *     memfd's holes.
 *   - the guest is checked too: its log over the window must show no tick lost and no BAD.
 *
 * Prints one JSON object per snapshot round on stdout, then one with the medians and ratios
 * (uffsnapd / QEMU), then a table. Images go to DIR (default /var/tmp: on disk) and are
 * deleted.
 *
 * usage: bench-qemu UFFSNAPD [ROUNDS [DIR [QUIET_S]]]
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "guest-harness.h"
#include "qmp.h"
#include "test-proc.h"

#define BOOT_TIMEOUT_S	  300
#define MIGRATE_TIMEOUT_S 600
#define MAX_ROUNDS	  50

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The machine's steal time in ms (/proc/stat, USER_HZ resolution). */
static uint64_t steal_ms(void)
{
	unsigned long long v[8] = {0};
	FILE *f = fopen("/proc/stat", "r");

	if (!f)
		return 0;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]) != 8)
		v[7] = 0;
	fclose(f);
	return v[7] * 1000 / (unsigned long long)sysconf(_SC_CLK_TCK);
}

/* QEMU's resident shared memory (RssShmem: the guest RAM it has touched), in KiB, or 0. */
static uint64_t rss_shmem_kib(pid_t pid)
{
	char v[64];

	return test_proc_field(pid, "status", "RssShmem", v, sizeof(v)) < 0
		       ? 0
		       : strtoull(v, NULL, 10);
}

/* ---- the tick watcher ---- */

struct tick_rec {
	long tick;
	uint64_t t; /* when the watcher saw the line's '\n' in the file */
};

struct watcher {
	const char *path;
	pthread_t thr;
	atomic_bool stop;
	pthread_mutex_t lock;
	struct tick_rec *rec;
	size_t n, cap;
	int err;
	bool not_rt; /* could not be made SCHED_FIFO */
};

static void watcher_line(struct watcher *w, const char *line, uint64_t t)
{
	long tick;
	char ok[4];

	if (sscanf(line, "tick %ld %3s", &tick, ok) != 2 || strcmp(ok, "ok"))
		return;
	pthread_mutex_lock(&w->lock);
	if (w->n == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 65536;
		struct tick_rec *r = realloc(w->rec, cap * sizeof(*r));

		if (!r) {
			w->err = ENOMEM;
			pthread_mutex_unlock(&w->lock);
			return;
		}
		w->rec = r;
		w->cap = cap;
	}
	w->rec[w->n++] = (struct tick_rec){tick, t};
	pthread_mutex_unlock(&w->lock);
}

static void *watcher_main(void *arg)
{
	struct watcher *w = arg;
	char buf[65536], line[256];
	size_t ll = 0;
	int in = inotify_init1(IN_CLOEXEC), fd = open(w->path, O_RDONLY | O_CLOEXEC);

	struct sched_param sp = {.sched_priority = 1};

	/*
	 * A real-time thread (it only ever blocks in poll() and reads): under load a normal one
	 * wakes late and sees several tick lines at once, which would be its own delay and not
	 * the guest's. Without the privilege it runs as it is, and says so.
	 */
	if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp))
		w->not_rt = true;
	/* from the end: what was printed before we watch has no timestamp */
	if (in < 0 || fd < 0 || inotify_add_watch(in, w->path, IN_MODIFY) < 0 ||
	    lseek(fd, 0, SEEK_END) < 0) {
		w->err = errno;
		goto out;
	}
	while (!atomic_load(&w->stop)) {
		struct pollfd p = {.fd = in, .events = POLLIN};
		ssize_t k;
		uint64_t t;

		if (poll(&p, 1, 100) <= 0)
			continue;
		t = now_ns();
		(void)!read(in, buf,
			    sizeof(buf)); /* drain the events; what is new is in the file */
		while ((k = read(fd, buf, sizeof(buf))) > 0)
			for (ssize_t i = 0; i < k; i++) {
				if (buf[i] != '\n') {
					if (ll < sizeof(line) - 1)
						line[ll++] = buf[i];
					continue;
				}
				line[ll] = '\0';
				watcher_line(w, line, t);
				ll = 0;
			}
	}
out:
	if (in >= 0)
		close(in);
	if (fd >= 0)
		close(fd);
	return NULL;
}

/* The longest interval between consecutive tick lines overlapping [t0, t1], in ns. */
struct jitter {
	uint64_t max_gap_ns;
	unsigned long ticks; /* tick lines seen within [t0, t1] */
};

static struct jitter jitter_of(struct watcher *w, uint64_t t0, uint64_t t1)
{
	struct jitter j = {0};

	pthread_mutex_lock(&w->lock);
	for (size_t i = 1; i < w->n; i++) {
		uint64_t a = w->rec[i - 1].t, b = w->rec[i].t;

		if (b >= t0 && a <= t1 && b - a > j.max_gap_ns)
			j.max_gap_ns = b - a;
		if (b >= t0 && b <= t1)
			j.ticks++;
	}
	pthread_mutex_unlock(&w->lock);
	return j;
}

/* BENCH_QEMU_TIMELINE=1: every tick line's time around a window, on stderr (for a look). */
static void timeline(struct watcher *w, const char *name, uint64_t t0, uint64_t t1)
{
	if (!getenv("BENCH_QEMU_TIMELINE"))
		return;
	pthread_mutex_lock(&w->lock);
	fprintf(stderr, "timeline %s (ms from the start; the end at %.1f):", name,
		(double)(t1 - t0) / 1e6);
	for (size_t i = 0; i < w->n; i++)
		if (w->rec[i].t + 50000000 >= t0 && w->rec[i].t <= t1 + 50000000)
			fprintf(stderr, " %.1f", ((double)w->rec[i].t - (double)t0) / 1e6);
	fputc('\n', stderr);
	pthread_mutex_unlock(&w->lock);
}

/* ---- one snapshot of each kind ---- */

struct result {
	bool ok;
	char why[GUEST_WHY_LEN];
	uint64_t total_ns;	 /* QEMU: migrate -> completed; uffsnapd: process wall time */
	uint64_t total_fsync_ns; /* the same, the image fsynced (uffsnapd: the same figure) */
	uint64_t downtime_ns;	 /* QEMU: query-migrate "downtime"; uffsnapd: guest.downtime_ns */
	uint64_t size, blocks_bytes;
	uint64_t t0, t1; /* the window */
	struct jitter run, quiet;
	uint64_t quiet_ns, steal_run_ms;
	uint64_t rate_run, rate_quiet; /* tick lines per second in each window */
	uint64_t lost_ns; /* the guest's progress lost: window - its ticks at the quiet rate */
	uint64_t shmem_before_kib, shmem_after_kib; /* QEMU's RssShmem around the snapshot */
	unsigned long ticks_lost, bad;
	json_t *extra; /* method-specific figures */
};

struct bench {
	const char *uffsnapd, *dir;
	unsigned quiet_s;
	struct guest_config cfg;
	struct guest g;
	struct watcher w;
	char img[200], out[200];
	uint64_t last_end; /* when the previous snapshot's window ended */
};

static int file_size(const char *path, struct result *r)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -errno;
	r->size = (uint64_t)st.st_size;
	r->blocks_bytes = (uint64_t)st.st_blocks * 512;
	return 0;
}

static int fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), k;

	if (fd < 0)
		return -errno;
	k = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return k;
}

static int set_caps(struct qmp *q, bool on, char *why, size_t len)
{
	static const char *const caps[] = {"events", "background-snapshot", NULL};

	return guest_qmp_caps(q, caps, on, why, len);
}

/* Whether migration capability name is on (QMP query-migrate-capabilities), or -errno. */
static int cap_on(struct qmp *q, const char *name, char *why, size_t len)
{
	json_t *ret = NULL, *c;
	size_t i;
	int k = guest_qmp(q, "query-migrate-capabilities", NULL, -1, &ret, why, len);

	if (k < 0)
		return k;
	k = 0;
	json_array_foreach(
	    ret, i, c) if (!strcmp(json_string_value(json_object_get(c, "capability")) ?: "", name))
	    k = json_is_true(json_object_get(c, "state"));
	json_decref(ret);
	return k;
}

static int run_qemu(struct bench *b, struct result *r)
{
	struct qmp *q = NULL;
	json_t *ret = NULL, *ram;
	int fd = -1, k;

	k = guest_qmp_open(&b->g, 30, &q, r->why, sizeof(r->why));
	if (k < 0)
		return k;
	/* with x-ignore-shared on, QEMU's stream would leave out the guest RAM (memfd share=on) */
	k = cap_on(q, "x-ignore-shared", r->why, sizeof(r->why));
	if (k > 0) {
		snprintf(r->why, sizeof(r->why),
			 "x-ignore-shared is on: QEMU would not save the RAM");
		k = -EINVAL;
	}
	if (k >= 0)
		k = set_caps(q, true, r->why, sizeof(r->why));
	if (k >= 0) {
		fd = open(b->img, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		k = fd < 0 ? -errno : 0;
		if (k < 0)
			snprintf(r->why, sizeof(r->why), "%s: %s", b->img, strerror(-k));
	}
	if (k >= 0)
		k = guest_qmp(q, "getfd", json_pack("{s:s}", "fdname", "bench"), fd, NULL, r->why,
			      sizeof(r->why));
	if (fd >= 0)
		close(fd);
	if (k >= 0) {
		r->t0 = now_ns();
		k = guest_qmp(q, "migrate", json_pack("{s:s}", "uri", "fd:bench"), -1, NULL, r->why,
			      sizeof(r->why));
	}
	if (k >= 0)
		k = guest_qmp_wait_migration(q, MIGRATE_TIMEOUT_S, r->why, sizeof(r->why));
	if (k >= 0) {
		r->total_ns = now_ns() - r->t0;
		k = fsync_path(b->img);
		r->t1 = now_ns();
		r->total_fsync_ns = r->t1 - r->t0;
		if (k < 0)
			snprintf(r->why, sizeof(r->why), "fsync: %s", strerror(-k));
	}
	if (k >= 0)
		k = guest_qmp(q, "query-migrate", NULL, -1, &ret, r->why, sizeof(r->why));
	if (k >= 0) {
		r->downtime_ns =
		    (uint64_t)json_integer_value(json_object_get(ret, "downtime")) * 1000000;
		ram = json_object_get(ret, "ram");
		r->extra = json_pack(
		    "{s:I, s:I, s:I, s:I, s:I}", "qemu_total_time_ms",
		    json_integer_value(json_object_get(ret, "total-time")), "setup_time_ms",
		    json_integer_value(json_object_get(ret, "setup-time")), "ram_transferred",
		    json_integer_value(json_object_get(ram, "transferred")), "ram_normal_pages",
		    json_integer_value(json_object_get(ram, "normal")), "ram_duplicate_pages",
		    json_integer_value(json_object_get(ram, "duplicate")));
		r->ok = true;
	}
	json_decref(ret);
	if (set_caps(q, false, r->why + strlen(r->why), sizeof(r->why) - strlen(r->why)) < 0)
		r->ok = false; /* never go on with the capabilities left on */
	qmp_close(q);
	return r->ok ? 0 : -EIO;
}

static int run_uffsnapd(struct bench *b, struct result *r)
{
	const char *argv[] = {b->uffsnapd, "--qemu", b->g.qmp_path, "--output",
			      b->img,	   "--json", NULL};
	json_error_t jerr;
	json_t *j, *gj;
	int st = 0;
	pid_t pid;

	unlink(b->img);
	fflush(NULL);
	r->t0 = now_ns();
	pid = fork();
	if (pid == 0) {
		int fd = open(b->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0)
			_exit(127);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid) {
		snprintf(r->why, sizeof(r->why), "cannot run %s", b->uffsnapd);
		return -ECHILD;
	}
	r->t1 = now_ns();
	r->total_ns = r->total_fsync_ns = r->t1 - r->t0;
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		snprintf(r->why, sizeof(r->why), "uffsnapd exited with status 0x%x", st);
		return -EIO;
	}
	j = json_load_file(b->out, 0, &jerr);
	gj = json_object_get(j, "guest");
	if (!gj) {
		snprintf(r->why, sizeof(r->why), "no guest in uffsnapd's summary: %s", jerr.text);
		json_decref(j);
		return -EPROTO;
	}
	r->downtime_ns = (uint64_t)json_integer_value(json_object_get(gj, "downtime_ns"));
	r->extra = json_object();
	for (size_t i = 0; i < 2; i++) {
		static const char *const keys[2][10] = {
		    {"devstate_bytes", "devstate_ns", NULL},
		    {"held_ns", "arm_ns", "duration_ns", "faults", "fault_p50_ns", "fault_p99_ns",
		     "fault_max_ns", "fault_sink_waits", "pages_zero", "bytes"}};

		for (size_t k = 0; k < 10 && keys[i][k]; k++) {
			json_t *v = json_object_get(i ? j : gj, keys[i][k]);

			if (v)
				json_object_set(r->extra, keys[i][k], v);
		}
	}
	json_decref(j);
	r->ok = true;
	return 0;
}

/* Waits quiet_s, runs one method, measures what the guest saw. */
static void one(struct bench *b, bool qemu, struct result *r)
{
	struct guest_log log;
	uint64_t steal0, qstart;
	off_t off0, off1;

	memset(r, 0, sizeof(*r));
	sleep(b->quiet_s);
	qstart = now_ns();
	if (b->last_end && qstart - (uint64_t)b->quiet_s * 1000000000ull < b->last_end)
		qstart = b->last_end; /* never count the previous snapshot as quiet */
	else
		qstart -= (uint64_t)b->quiet_s * 1000000000ull;
	off0 = guest_serial_size(&b->g);
	steal0 = steal_ms();
	r->shmem_before_kib = rss_shmem_kib(b->g.pid);
	if (qemu)
		run_qemu(b, r);
	else
		run_uffsnapd(b, r);
	r->steal_run_ms = steal_ms() - steal0;
	r->shmem_after_kib = rss_shmem_kib(b->g.pid);
	if (!r->t1)
		r->t1 = now_ns();
	if (!r->t0)
		r->t0 = r->t1;
	b->last_end = r->t1;
	if (r->ok && file_size(b->img, r) < 0) {
		snprintf(r->why, sizeof(r->why), "%s: %m", b->img);
		r->ok = false;
	}
	unlink(b->img);
	/* the guest's view: a few ticks after the end so the last interval is closed */
	usleep(200000);
	off1 = guest_serial_size(&b->g);
	r->run = jitter_of(&b->w, r->t0, r->t1);
	timeline(&b->w, qemu ? "qemu" : "uffsnapd", r->t0, r->t1);
	r->quiet_ns = r->t1 - r->t0;
	if (r->t0 - qstart < r->quiet_ns)
		r->quiet_ns = r->t0 - qstart;
	r->quiet = jitter_of(&b->w, r->t0 - r->quiet_ns, r->t0);
	if (r->t1 > r->t0)
		r->rate_run = r->run.ticks * 1000000000ull / (r->t1 - r->t0);
	if (r->quiet_ns)
		r->rate_quiet = r->quiet.ticks * 1000000000ull / r->quiet_ns;
	if (r->quiet.ticks) {
		double ran = (double)r->run.ticks * (double)r->quiet_ns / (double)r->quiet.ticks;

		if (ran < (double)(r->t1 - r->t0))
			r->lost_ns = (uint64_t)((double)(r->t1 - r->t0) - ran);
	}
	if (guest_log_read(b->g.serial_path, off0, off1, &log, NULL) == 0) {
		r->ticks_lost = log.gaps;
		r->bad = log.bad;
		if (log.gaps || log.bad) {
			snprintf(r->why, sizeof(r->why), "the guest: %s%s", log.first_gap,
				 log.first_bad);
			r->ok = false;
		}
	}
}

static void print_result(int round, const char *name, const struct result *r)
{
	char *extra = r->extra ? json_dumps(r->extra, JSON_COMPACT) : NULL;

	printf("{\"round\":%d,\"method\":\"%s\",\"ok\":%s,\"why\":\"%s\",\"total_ns\":%" PRIu64
	       ",\"total_fsync_ns\":%" PRIu64 ",\"downtime_ns\":%" PRIu64 ",\"size\":%" PRIu64
	       ",\"blocks_bytes\":%" PRIu64 ",\"gap_max_ns\":%" PRIu64 ",\"ticks\":%lu"
	       ",\"quiet_ns\":%" PRIu64 ",\"quiet_gap_max_ns\":%" PRIu64 ",\"quiet_ticks\":%lu"
	       ",\"lost_ns\":%" PRIu64 ",\"shmem_before_kib\":%" PRIu64
	       ",\"shmem_after_kib\":%" PRIu64 ",\"steal_ms\":%" PRIu64
	       ",\"ticks_lost\":%lu,\"bad\":%lu,\"extra\":%s}\n",
	       round, name, r->ok ? "true" : "false", r->ok ? "" : r->why, r->total_ns,
	       r->total_fsync_ns, r->downtime_ns, r->size, r->blocks_bytes, r->run.max_gap_ns,
	       r->run.ticks, r->quiet_ns, r->quiet.max_gap_ns, r->quiet.ticks, r->lost_ns,
	       r->shmem_before_kib, r->shmem_after_kib, r->steal_run_ms, r->ticks_lost, r->bad,
	       extra ? extra : "null");
	free(extra);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Median of one field over the successful rounds (offset into struct result). */
static double median(const struct result *rs, int n, size_t off)
{
	uint64_t v[MAX_ROUNDS];
	int k = 0;

	for (int i = 0; i < n; i++)
		if (rs[i].ok)
			v[k++] = *(const uint64_t *)((const char *)&rs[i] + off);
	if (!k)
		return 0;
	qsort(v, (size_t)k, sizeof(v[0]), cmp_u64);
	return k % 2 ? (double)v[k / 2] : ((double)v[k / 2 - 1] + (double)v[k / 2]) / 2;
}

struct row {
	const char *name, *unit;
	size_t off;
	double scale;
};

static void report(const struct result *qr, const struct result *ur, int n)
{
	static const struct row rows[] = {
	    {"guest downtime", "ms", offsetof(struct result, downtime_ns), 1e6},
	    {"total time", "s", offsetof(struct result, total_ns), 1e9},
	    {"total time, image fsynced", "s", offsetof(struct result, total_fsync_ns), 1e9},
	    {"image, allocated", "MB", offsetof(struct result, blocks_bytes), 1e6},
	    {"image, apparent size", "MB", offsetof(struct result, size), 1e6},
	    {"guest's longest tick gap, during", "ms", offsetof(struct result, run.max_gap_ns),
	     1e6},
	    {"same, quiet window before", "ms", offsetof(struct result, quiet.max_gap_ns), 1e6},
	    {"guest's ticks per second, during", "/s", offsetof(struct result, rate_run), 1},
	    {"same, quiet window before", "/s", offsetof(struct result, rate_quiet), 1},
	    {"guest's progress lost (window - ticks at the quiet rate)", "s",
	     offsetof(struct result, lost_ns), 1e9},
	    {"QEMU's resident guest RAM (RssShmem) after", "MiB",
	     offsetof(struct result, shmem_after_kib), 1024},
	    {"host steal during", "ms", offsetof(struct result, steal_run_ms), 1},
	};
	int qok = 0, uok = 0;

	for (int i = 0; i < n; i++) {
		qok += qr[i].ok;
		uok += ur[i].ok;
	}
	printf("{\"medians\":true,\"rounds\":%d,\"qemu_ok\":%d,\"uffsnapd_ok\":%d", n, qok, uok);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		double q = median(qr, n, rows[i].off), u = median(ur, n, rows[i].off);

		printf(",\"%s\":{\"qemu\":%.3f,\"uffsnapd\":%.3f,\"ratio\":%.3f}", rows[i].name,
		       q / rows[i].scale, u / rows[i].scale, q ? u / q : 0);
	}
	printf("}\n\n| medians of %d / %d rounds | QEMU background-snapshot | uffsnapd --qemu | "
	       "ratio |\n|---|---|---|---|\n",
	       qok, uok);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		double q = median(qr, n, rows[i].off), u = median(ur, n, rows[i].off);

		printf("| %s | %.*f %s | %.*f %s | %.2f |\n", rows[i].name,
		       rows[i].scale == 1e9 ? 2 : 1, q / rows[i].scale, rows[i].unit,
		       rows[i].scale == 1e9 ? 2 : 1, u / rows[i].scale, rows[i].unit,
		       q ? u / q : 0);
	}
}

int main(int argc, char **argv)
{
	static struct result qr[MAX_ROUNDS], ur[MAX_ROUNDS];
	struct bench b = {0};
	struct guest_log log;
	char why[GUEST_WHY_LEN], load[128] = "";
	int rounds = argc > 2 ? atoi(argv[2]) : 3, status = 0;
	FILE *f;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2 || rounds < 1 || rounds > MAX_ROUNDS) {
		fprintf(stderr, "usage: %s UFFSNAPD [ROUNDS [DIR [QUIET_S]]]\n", argv[0]);
		return 2;
	}
	b.uffsnapd = argv[1];
	b.dir = argc > 3 ? argv[3] : "/var/tmp";
	b.quiet_s = argc > 4 ? (unsigned)atoi(argv[4]) : 12;
	if (geteuid() != 0) {
		fprintf(stderr, "bench-qemu: needs root (uffsnapd ptraces QEMU)\n");
		return GUEST_SKIP;
	}
	if (guest_config_find(&b.cfg, why, sizeof(why)) < 0) {
		fprintf(stderr, "bench-qemu: cannot boot a test guest: %s\n", why);
		return GUEST_SKIP;
	}
	snprintf(b.img, sizeof(b.img), "%s/bench-qemu-%d.img", b.dir, getpid());
	snprintf(b.out, sizeof(b.out), "%s/bench-qemu-%d.json", b.dir, getpid());
	if (guest_start(&b.g, &b.cfg, why, sizeof(why)) < 0 ||
	    guest_wait_tick(&b.g, 0, 10, BOOT_TIMEOUT_S, &log, why, sizeof(why)) < 0) {
		fprintf(stderr, "bench-qemu: the guest: %s\n", why);
		guest_stop(&b.g);
		return 1;
	}
	b.w.path = b.g.serial_path;
	pthread_mutex_init(&b.w.lock, NULL);
	if (pthread_create(&b.w.thr, NULL, watcher_main, &b.w)) {
		fprintf(stderr, "bench-qemu: cannot start the tick watcher\n");
		guest_stop(&b.g);
		return 1;
	}
	if ((f = fopen("/proc/loadavg", "r"))) {
		if (!fgets(load, sizeof(load), f))
			load[0] = '\0';
		load[strcspn(load, "\n")] = '\0';
		fclose(f);
	}
	fprintf(stderr,
		"bench-qemu: guest up (pid %d), load %s; %d rounds, %u s quiet before "
		"each snapshot\n",
		b.g.pid, load, rounds, b.quiet_s);
	for (int i = 0; i < rounds; i++) {
		/* BENCH_QEMU_UFFSNAPD_FIRST=1: uffsnapd first, on a guest QEMU never populated */
		bool qemu_first = (i % 2 == 0) != (getenv("BENCH_QEMU_UFFSNAPD_FIRST") != NULL);

		for (int k = 0; k < 2; k++) {
			bool qemu = qemu_first == (k == 0);
			struct result *r = qemu ? &qr[i] : &ur[i];

			one(&b, qemu, r);
			print_result(i, qemu ? "qemu" : "uffsnapd", r);
			status |= !r->ok;
			if (!guest_alive(&b.g)) {
				fprintf(stderr, "bench-qemu: QEMU died\n");
				rounds = i + 1;
				goto done;
			}
		}
	}
done:
	if ((f = fopen("/proc/loadavg", "r"))) {
		if (fgets(load, sizeof(load), f))
			fprintf(stderr, "bench-qemu: load at the end %s", load);
		fclose(f);
	}
	report(qr, ur, rounds);
	atomic_store(&b.w.stop, true);
	pthread_join(b.w.thr, NULL);
	if (b.w.err)
		fprintf(stderr, "bench-qemu: tick watcher: %s\n", strerror(b.w.err));
	if (b.w.not_rt)
		fprintf(stderr, "bench-qemu: the tick watcher was not real-time: under load its "
				"timestamps are late\n");
	guest_stop(&b.g);
	unlink(b.out);
	for (int i = 0; i < rounds; i++) {
		json_decref(qr[i].extra);
		json_decref(ur[i].extra);
	}
	free(b.w.rec);
	return status;
}
