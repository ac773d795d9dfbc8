/* SPDX-License-Identifier: MIT */
/*
 * One snapshot, start to end. The cut (DESIGN.md "One cut for all memory", first way): every
 * thread is held while all trackable VMAs are registered and write-protected and the others
 * copied; T is the moment they resume. After T the fault handler and the copier save the rest.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "sys/linux-compat.h"
#include "engine/arm.h"
#include "engine/meta.h"
#include "engine/snapshot.h"
#include "target/attach.h"
#include "target/holder.h"
#include "engine/uffd-ops.h"

#define UFFD_FEATURES_WANTED                                                                     \
	(UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_WP_UNPOPULATED | UFFD_FEATURE_EVENT_REMAP | \
	 UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP)

uint64_t snap_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static const char *cancel_reason(int c)
{
	switch (c) {
	case -ECANCELED:
		return "cancelled; the image is incomplete";
	case -EINTR:
		return "interrupted; the image is incomplete";
	default:
		return "the target went away; the image is incomplete";
	}
}

void snap_fail(struct snap *s, int error, const char *fmt, ...)
{
	int expect = 0, c = s->opts.cancel ? __atomic_load_n(s->opts.cancel, __ATOMIC_ACQUIRE) : 0;
	va_list ap;

	/* A write that gave up because the snapshot must end: say why it must. */
	if (error == -ECANCELED && c < 0)
		error = c;
	if (!__atomic_compare_exchange_n(&s->error, &expect, error, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		return; /* the first failure is the one reported */
	va_start(ap, fmt);
	if (error == c)
		snprintf(s->err.msg, sizeof(s->err.msg), "%s", cancel_reason(c));
	else
		vsnprintf(s->err.msg, sizeof(s->err.msg), fmt, ap);
	va_end(ap);
	if (s->stopfd >= 0)
		eventfd_write(s->stopfd, 1);
}

bool snap_events_overlap(const struct snap *s, uint64_t gen, uint64_t start, uint64_t end)
{
	if (s->event_gen - gen > SNAP_EVENT_RING)
		return true;
	for (uint64_t g = gen + 1; g <= s->event_gen; g++) {
		const struct snap_event_range *e = &s->events[g % SNAP_EVENT_RING];

		for (int i = 0; i < 2; i++)
			if (e->start[i] < end && start < e->end[i])
				return true;
	}
	return false;
}

int snap_cancelled(struct snap *s)
{
	int c = s->opts.cancel ? __atomic_load_n(s->opts.cancel, __ATOMIC_ACQUIRE) : 0;

	if (c >= 0)
		return 0;
	snap_fail(s, c, "%s", cancel_reason(c));
	return -ECANCELED;
}

bool snap_failed(struct snap *s)
{
	return __atomic_load_n(&s->error, __ATOMIC_ACQUIRE) != 0;
}

/*
 * Reads target memory through /proc/PID/mem, which is bound to the mm it was opened on: after
 * an exec or exit it reads nothing (fs/proc/base.c: mem_rw() fails mmget_not_zero()), so we can
 * never save pages of a different address space by mistake.
 */
int snap_read_mem(struct snap *s, uint64_t addr, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(s->memfd, (char *)buf + done, len - done, (off_t)(addr + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ESRCH;
		done += n;
	}
	return 0;
}

void snap_scan_present(struct snap *s, uint64_t start, uint64_t end, uint32_t granule,
		       uint8_t *present)
{
	size_t n = (end - start) / granule;
	struct page_region regs[64];
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = start,
		.end = end,
		.vec = (uintptr_t)regs,
		.vec_len = 64,
		.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
		.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
	};
	long k;

	memset(present, s->pagemapfd < 0, n);
	if (s->pagemapfd < 0)
		return;
	do {
		k = ioctl(s->pagemapfd, PAGEMAP_SCAN, &arg);
		if (k < 0) {
			memset(present, 1, n); /* cannot tell: read it all */
			return;
		}
		for (long i = 0; i < k; i++)
			for (uint64_t a = regs[i].start; a < regs[i].end; a += granule)
				present[(a - start) / granule] = 1;
		arg.start = arg.walk_end;
	} while (k == 64 && arg.walk_end < end);
}

static bool page_is_zero(const uint8_t *p, size_t len)
{
	const uint64_t *q = (const uint64_t *)p;
	uint64_t acc = 0;

	for (size_t i = 0; i < len / 8; i++)
		acc |= q[i];
	return acc == 0;
}

bool snap_next_run(const uint8_t *flags, size_t n, size_t *i, size_t *j)
{
	while (*i < n && !flags[*i])
		(*i)++;
	for (*j = *i; *j < n && flags[*j]; (*j)++)
		;
	return *i < n;
}

int snap_emit(struct snap *s, uint64_t addr, const uint8_t *buf, size_t len)
{
	size_t ps = s->page_size;

	for (size_t i = 0; i < len;) {
		bool zero = page_is_zero(buf + i, ps);
		size_t j = i + ps;
		int k;

		while (j < len && page_is_zero(buf + j, ps) == zero)
			j += ps;
		if (zero) {
			k = img_writer_zero(s->w, addr + i, (j - i) / ps);
			__atomic_add_fetch(&s->stats.pages_zero, (j - i) / ps, __ATOMIC_RELAXED);
		} else {
			k = img_writer_pages(s->w, addr + i, (j - i) / ps, buf + i);
		}
		if (k < 0)
			return k;
		i = j;
	}
	return 0;
}

static int open_proc(pid_t pid, const char *name)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", pid, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}



int snap_first_hold(struct snap *s, struct holder **ret)
{
	uint64_t t0 = snap_now_ns(), features = 0;
	int devfd = s->opts.devuffd_fd, k;

	if (devfd < 0) {
		devfd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
		if (devfd < 0) {
			k = -errno;
			snap_fail(s, k, "cannot open /dev/userfaultfd: %s", strerror(-k));
			return k;
		}
	}
	k = holder_start(s->pid, s->opts.pidfd, devfd, ret, &s->held, s->err.msg, sizeof(s->err.msg));
	if (devfd != s->opts.devuffd_fd)
		close(devfd);
	if (k < 0) {
		s->error = k; /* the message is the holder's */
		return k;
	}
	s->stats.attach_ns = snap_now_ns() - t0;
	s->uffd = s->held.uffd;
	s->held.uffd = -EBADF;
	s->stats.threads = s->held.nthreads;
	k = uffd_api(s->uffd, UFFD_FEATURES_WANTED, &features);
	if (k < 0)
		snap_fail(s, k, "UFFDIO_API: %s (kernel lacks userfaultfd write-protect?)",
			  strerror(-k));
	return k;
}

int snap_copy_held_timed(struct snap *s)
{
	uint64_t t0 = snap_now_ns();
	int k = snap_copy_held(s);

	s->stats.copy_held_ns = snap_now_ns() - t0;
	return k;
}

/* Arming with every thread held: from attach to resume. On success T has passed. */
static int hold_and_arm(struct snap *s)
{
	uint64_t held = snap_now_ns(), released = 0;
	struct holder *h = NULL;
	int k;

	snap_gate_hold(s->gate, true);
	k = snap_first_hold(s, &h);

	if (k >= 0)
		k = snap_plan(s);
	if (k >= 0)
		k = snap_arm(s);
	if (k >= 0)
		k = snap_begin_image(s);
	if (k >= 0)
		k = snap_copy_held_timed(s);
	if (k < 0)
		snap_cleanup(s); /* drop every protection before the threads run again */
	else if ((k = holder_release(h, &released, s->err.msg, sizeof(s->err.msg))) < 0)
		s->error = k;
	holder_free(h); /* releases the target if it is still held */
	snap_gate_hold(s->gate, false);
	s->stats.held_ns = (released > held ? released : snap_now_ns()) - held;
	return k;
}

int snap_dirty_add(struct snap *s, uint64_t start, uint64_t end)
{
	if (s->ndirty == s->dirty_cap) {
		size_t cap = s->dirty_cap ? s->dirty_cap * 2 : 1024;
		struct snap_span *n = realloc(s->dirty, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		s->dirty = n;
		s->dirty_cap = cap;
	}
	s->dirty[s->ndirty++] = (struct snap_span){start, end};
	return 0;
}

int snap_handler_start(struct snap *s)
{
	int k;

	if (s->handler_started)
		return 0;
	k = pthread_create(&s->handler, NULL, fault_handler_main, s);
	if (k)
		return snap_fail(s, -k, "cannot start the fault handler"), -k;
	s->handler_started = true;
	return 0;
}

void snap_handler_stop(struct snap *s)
{
	if (!s->handler_started)
		return;
	eventfd_write(s->stopfd, 1);
	pthread_join(s->handler, NULL);
	s->handler_started = false;
}

static int run_after_t(struct snap *s)
{
	int k = snap_handler_start(s);

	s->after_t = true;
	if (k < 0)
		return k;
	k = copier_run(s);
	if (k < 0 && k != -ECANCELED)
		snap_fail(s, k, "copier: %s", strerror(-k));
	snap_handler_stop(s);
	return snap_failed(s) ? s->error : 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void finish_stats(struct snap *s)
{
	struct img_writer_stats ws;

	if (s->nfault_ns) {
		qsort(s->fault_ns, s->nfault_ns, sizeof(*s->fault_ns), cmp_u64);
		s->stats.fault_p50_ns = s->fault_ns[s->nfault_ns / 2];
		s->stats.fault_p99_ns = s->fault_ns[s->nfault_ns * 99 / 100];
		s->stats.fault_max_ns = s->fault_ns[s->nfault_ns - 1];
	}
	if (s->w) {
		img_writer_get_stats(s->w, &ws);
		s->stats.bytes = ws.bytes;
	}
	s->stats.duration_ns = snap_now_ns() - s->start_ns;
}

/* After an error: why did the target go away, if it did? */
/*
 * Our /proc/PID/mem stops reading when the address space it was opened on goes, by exit or by
 * exec. An exec'd process has a new one; an exiting process (from exit_mm() on, before it is
 * a zombie and until it is reaped) and a dead one have none: its maps read empty.
 */
static bool has_address_space(pid_t pid)
{
	char path[64], c;
	int fd;
	bool any;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	any = read(fd, &c, 1) == 1;
	close(fd);
	return any;
}

static void explain_target_gone(struct snap *s)
{
	if (s->error != -ESRCH || !s->after_t)
		return;
	if (kill(s->pid, 0) < 0 || !has_address_space(s->pid))
		snprintf(s->err.msg, sizeof(s->err.msg),
			 "pid %d exited during the snapshot; the image is incomplete", s->pid);
	else
		snprintf(s->err.msg, sizeof(s->err.msg),
			 "pid %d replaced its memory (exec) during the snapshot; the image is "
			 "incomplete", s->pid);
}

/*
 * /proc/PID/mem is opened before attaching, so its failure is the first sign of a bad pid:
 * ask target_attach()'s checks for the precise reason (they never leave it attached).
 */
static void explain_open_failure(struct snap *s)
{
	struct target_error terr = {0};
	struct target *t = NULL;
	int k = target_attach(s->pid, &t, &terr);

	target_free(t);
	if (k < 0)
		snap_fail(s, k, "%s", terr.msg);
	else
		snap_fail(s, s->memfd, "cannot open the memory of pid %d: %s", s->pid,
			  strerror(-s->memfd));
}

void snap_cleanup(struct snap *s)
{
	snap_handler_stop(s); /* it polls the uffd: stop it before closing that */
	/* Closing the last reference to the uffd drops every protection and wakes every waiter
	 * (fs/userfaultfd.c: userfaultfd_release()), whatever state we are in. */
	if (s->uffd >= 0)
		close(s->uffd);
	if (s->memfd >= 0)
		close(s->memfd);
	if (s->stopfd >= 0)
		close(s->stopfd);
	if (s->pagemapfd >= 0)
		close(s->pagemapfd);
	s->uffd = s->memfd = s->stopfd = s->pagemapfd = -EBADF;
}

int snapshot_take(pid_t pid, const struct snap_opts *opts, struct img_sink *sink,
		  struct snap_stats *ret_stats, struct snap_error *err)
{
	struct snap s = {.pid = pid, .opts = *opts, .memfd = -EBADF, .uffd = -EBADF,
			 .stopfd = -EBADF, .page_size = sysconf(_SC_PAGESIZE)};
	int k;

	snap_defaults(&s.opts);
	snap_test_pause(&s, "start");
	s.start_ns = snap_now_ns();
	s.held.uffd = -EBADF;
	pthread_mutex_init(&s.lock, NULL);
	s.memfd = open_proc(pid, "mem");
	s.pagemapfd = open_proc(pid, "pagemap"); /* optional: without it, everything is read */
	s.stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (pid == getpid()) /* the holder, our child, would otherwise ptrace us */
		snap_fail(&s, -EDEADLK, "pid %d is uffsnapd itself: cannot snapshot ourselves", pid);
	else if (s.stopfd < 0)
		snap_fail(&s, -errno, "cannot create an eventfd: %m");
	else if (s.memfd < 0)
		explain_open_failure(&s);
	else if (snap_writer_open(&s, sink) >= 0 && snap_scan(&s) >= 0 && !snap_cancelled(&s))
		s.opts.arm_held ? hold_and_arm(&s) : snap_hold_and_arm_live(&s);
	if (!snap_failed(&s))
		run_after_t(&s);
	snap_cleanup(&s);
	if (!snap_failed(&s)) {
		k = img_writer_finish(s.w);
		if (k < 0)
			snap_fail(&s, k, "cannot finish the image: %s", strerror(-k));
	}
	explain_target_gone(&s);
	finish_stats(&s);
	*ret_stats = s.stats;
	snprintf(err->msg, sizeof(err->msg), "%s", s.err.msg);
	k = s.error;
	img_writer_free(s.w);
	snap_gate_free(s.gate);
	vma_list_free(&s.vmas);
	pages_free(&s.pages);
	free(s.hot);
	free(s.dirty);
	free(s.fault_ns);
	holder_info_clear(&s.held);
	pthread_mutex_destroy(&s.lock);
	return k;
}

int snapshot_stats_to_json(const struct snap_stats *s, json_t **ret)
{
	json_t *j = json_pack(
		"{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
		"s:I, s:I, s:i}",
		"held_ns", (json_int_t)s->held_ns, "attach_ns", (json_int_t)s->attach_ns,
		"copy_held_ns", (json_int_t)s->copy_held_ns, "arm_ns", (json_int_t)s->arm_ns,
		"duration_ns",
		(json_int_t)s->duration_ns, "pages_copier", (json_int_t)s->pages_copier,
		"pages_fault", (json_int_t)s->pages_fault, "pages_held", (json_int_t)s->pages_held,
		"pages_zero", (json_int_t)s->pages_zero, "pages_discarded",
		(json_int_t)s->pages_discarded, "faults", (json_int_t)s->faults, "fault_p50_ns",
		(json_int_t)s->fault_p50_ns, "fault_p99_ns", (json_int_t)s->fault_p99_ns,
		"fault_max_ns", (json_int_t)s->fault_max_ns, "bytes", (json_int_t)s->bytes,
		"events_remap", (json_int_t)s->events_remap, "events_remove",
		(json_int_t)s->events_remove, "events_unmap", (json_int_t)s->events_unmap, "threads",
		(int)s->threads);

	if (!j)
		return -ENOMEM;
	if (s->hold_first_ns) { /* armed live */
		json_object_set_new(j, "hold_first_ns", json_integer((json_int_t)s->hold_first_ns));
		json_object_set_new(j, "hold_final_ns", json_integer((json_int_t)s->hold_final_ns));
		json_object_set_new(j, "rearm_ns", json_integer((json_int_t)s->rearm_ns));
		json_object_set_new(j, "rearm_ranges", json_integer((json_int_t)s->rearm_ranges));
	}
	json_object_set_new(j, "fault_sink_waits", json_integer((json_int_t)s->fault_sink_waits));
	json_object_set_new(j, "fault_sink_wait_max_ns",
			    json_integer((json_int_t)s->fault_sink_wait_max_ns));
	*ret = j;
	return 0;
}
