// SPDX-License-Identifier: MIT
/*
 * The program inside the test guest (started by the initramfs's /init, as root, on the serial
 * console). It keeps a working set of data pages changing constantly and predictably (the
 * scheme in guest-pattern.h) and checks, every tick, that memory holds what it wrote:
 *
 *   gc start pages N per_tick K period_ms P
 *   gc ctl 0xADDR                 guest-physical address of the control page
 *   gc map I 0xADDR COUNT DIR     data pages I..I+COUNT-1 at 0xADDR, then 0xADDR + DIR * 4096..
 *                                 (DIR +1 or -1)
 *   gc map end RUNS
 *   tick T ok                     once per tick
 *   tick T BAD page I word W expected 0xE found 0xF
 *
 * Parameters from the kernel command line: gc_pages=N (default 4096, 16 MiB), gc_per_tick=K
 * (default 1024; must divide N), gc_period_ms=P (default 1: busy, memory changes nearly all
 * the time; about 130 ticks/s under TCG here). The tick counter lives in guest
 * memory (the control page and this program's own variables), so a guest restored from a
 * snapshot continues from the tick it had at the snapshot instant.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "guest-pattern.h"

#define PAGEMAP_PRESENT  (1ull << 63)
#define PAGEMAP_PFN_MASK ((1ull << 55) - 1)
#define MAX_BAD_PER_TICK 8 /* lines per tick; the count in the control page is complete */

struct gc {
	uint64_t pages, per_tick, period_ms;
	struct gp_ctl *ctl;
	volatile uint64_t *data; /* pages * GP_WORDS words */
};

static void say(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 1)
		n = sizeof(buf) - 1;
	if (write(STDOUT_FILENO, buf, n) < 0)
		return; /* nowhere to say it */
}

static uint64_t cmdline_param(const char *cmdline, const char *name, uint64_t def)
{
	char key[64];
	const char *p;

	snprintf(key, sizeof(key), " %s=", name);
	p = strstr(cmdline, key);
	return p ? strtoull(p + strlen(key), NULL, 0) : def;
}

static void read_params(struct gc *gc)
{
	char cmdline[4096] = " ";
	int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, cmdline + 1, sizeof(cmdline) - 2) : -1;

	if (fd >= 0)
		close(fd);
	if (n > 0)
		cmdline[n + 1] = '\0';
	gc->pages = cmdline_param(cmdline, "gc_pages", 4096);
	gc->per_tick = cmdline_param(cmdline, "gc_per_tick", 1024);
	gc->period_ms = cmdline_param(cmdline, "gc_period_ms", 1);
	if (!gc->pages || !gc->per_tick || gc->pages % gc->per_tick) {
		say("gc bad parameters: gc_pages=%" PRIu64 " gc_per_tick=%" PRIu64
		    " (per_tick must divide pages); using 4096 and 1024\n",
		    gc->pages, gc->per_tick);
		gc->pages = 4096;
		gc->per_tick = 1024;
	}
}

/*
 * Pages that must keep their guest-physical address while the test reads them from outside:
 * no THP (a collapse or split moves them), mlocked, and vm.compact_unevictable_allowed=0 (set by
 * /init) so compaction leaves mlocked pages where they are.
 */
static int map_working_set(struct gc *gc)
{
	size_t len = (gc->pages + 1) * GP_PAGE_SIZE;
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	if (madvise(p, len, MADV_NOHUGEPAGE) < 0 || mlock(p, len) < 0)
		return -errno;
	gc->ctl = p;
	gc->data = (volatile uint64_t *)((char *)p + GP_PAGE_SIZE);
	return 0;
}

static uint64_t gpa_of(int pagemap, const volatile void *addr)
{
	uint64_t e;

	if (pread(pagemap, &e, sizeof(e), (uintptr_t)addr / GP_PAGE_SIZE * sizeof(e)) != sizeof(e))
		return 0;
	return e & PAGEMAP_PRESENT ? (e & PAGEMAP_PFN_MASK) * GP_PAGE_SIZE : 0;
}

/*
 * Prints the data pages' addresses as runs of physically consecutive pages, ascending (+1) or
 * descending (-1: the page allocator hands out a fresh process's pages top down).
 */
static int print_layout(const struct gc *gc)
{
	int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t i, start = 0, start_gpa = 0, runs = 0;
	int64_t dir = 0;

	if (pagemap < 0)
		return -errno;
	say("gc ctl 0x%" PRIx64 "\n", gpa_of(pagemap, gc->ctl));
	for (i = 0; i <= gc->pages; i++) {
		uint64_t gpa = i < gc->pages ? gpa_of(pagemap, gc->data + i * GP_WORDS) : 0;
		uint64_t n = i - start;

		if (i < gc->pages && !gpa) {
			close(pagemap);
			return -ENXIO; /* not present although mlocked, or PFNs hidden */
		}
		if (n == 1 && (gpa == start_gpa + GP_PAGE_SIZE || gpa == start_gpa - GP_PAGE_SIZE)) {
			dir = gpa > start_gpa ? 1 : -1;
			continue;
		}
		if (n >= 1 && i < gc->pages && gpa == start_gpa + dir * (int64_t)(n * GP_PAGE_SIZE))
			continue;
		if (n >= 1) {
			say("gc map %" PRIu64 " 0x%" PRIx64 " %" PRIu64 " %s\n", start, start_gpa, n,
			    dir < 0 ? "-1" : "+1");
			runs++;
		}
		start = i;
		start_gpa = gpa;
		dir = 0;
	}
	say("gc map end %" PRIu64 "\n", runs);
	close(pagemap);
	return 0;
}

static void write_page(struct gc *gc, uint64_t t, uint64_t i)
{
	volatile uint64_t *p = gc->data + i * GP_WORDS;
	unsigned w;

	/* Word by word, upwards: a snapshot can only ever catch a prefix of this page new. */
	for (w = 0; w < GP_WORDS; w++)
		p[w] = gp_word(t, i, w);
}

/* Returns 1 if page i holds tick `want`'s pattern, else 0 after saying what differs. */
static int check_page(struct gc *gc, uint64_t t, uint64_t i, uint64_t want, unsigned *lines)
{
	volatile uint64_t *p = gc->data + i * GP_WORDS;
	unsigned w;

	for (w = 0; w < GP_WORDS; w++) {
		uint64_t v = p[w], e = gp_word(want, i, w);

		if (v == e)
			continue;
		if ((*lines)++ < MAX_BAD_PER_TICK)
			say("tick %" PRIu64 " BAD page %" PRIu64 " word %u expected 0x%" PRIx64
			    " found 0x%" PRIx64 "\n",
			    t, i, w, e, v);
		return 0;
	}
	return 1;
}

static void tick(struct gc *gc, uint64_t t)
{
	uint64_t first = gp_first_page(t, gc->pages, gc->per_tick), i, stripes, v;
	unsigned lines = 0, bad = 0;

	gc->ctl->tick_started = t;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	for (i = first; i < first + gc->per_tick; i++)
		write_page(gc, t, i);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	gc->ctl->tick_done = t;

	/* Check what was just written, and one more stripe in turn: all pages every stripes ticks. */
	stripes = gp_stripes(gc->pages, gc->per_tick);
	v = (t % stripes) * gc->per_tick;
	for (i = 0; i < gc->per_tick; i++) {
		bad += !check_page(gc, t, first + i, t, &lines);
		bad += !check_page(gc, t, v + i,
				   gp_last_writer(t, v + i, gc->pages, gc->per_tick), &lines);
	}
	gc->ctl->bad += bad;
	if (!bad)
		say("tick %" PRIu64 " ok\n", t);
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
		;
}

int main(void)
{
	struct gc gc = {0};
	uint64_t i;
	int r;

	read_params(&gc);
	say("gc start pages %" PRIu64 " per_tick %" PRIu64 " period_ms %" PRIu64 "\n", gc.pages,
	    gc.per_tick, gc.period_ms);
	r = map_working_set(&gc);
	if (r < 0) {
		say("gc cannot map and lock %" PRIu64 " pages: %s\n", gc.pages, strerror(-r));
		return 1;
	}
	gc.ctl->magic = GP_CTL_MAGIC;
	gc.ctl->pages = gc.pages;
	gc.ctl->per_tick = gc.per_tick;
	for (i = 0; i < gc.pages; i++)
		write_page(&gc, 0, i);
	r = print_layout(&gc);
	if (r < 0) {
		say("gc cannot read page addresses from /proc/self/pagemap: %s\n", strerror(-r));
		return 1;
	}
	/* The counter: this local and the control page, both in guest RAM. */
	for (uint64_t t = gc.ctl->tick_done + 1;; t++) {
		tick(&gc, t);
		sleep_ms(gc.period_ms);
	}
}
