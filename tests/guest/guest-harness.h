/* SPDX-License-Identifier: MIT */
/*
 * Test harness for real QEMU guests (issue 14): start the test guest (kernel + the
 * guest-counter initramfs) under stock QEMU, read its serial log, talk QMP, and check a copy of
 * its RAM against the guest program's scheme (guest-pattern.h).
 *
 * Every function returns >= 0 on success or -errno, and never logs; on failure the ones taking
 * `why` put one line there saying what was wrong. A started QEMU dies with the test process
 * (PR_SET_PDEATHSIG) even when the test is killed; guest_stop() kills it in the normal paths.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define GUEST_SKIP      77 /* the test's exit status when no guest can be booted */
#define GUEST_WHY_LEN   512
#define GUEST_RAM_BYTES (512ull << 20)
#define GUEST_RAM_ID    "ram0"

/* What a guest is made of, and the guest program's parameters. */
struct guest_config {
	char qemu[256];
	char kernel[256];
	char initrd[256];
	unsigned pages;     /* data pages of the working set (gc_pages=) */
	unsigned per_tick;  /* pages written per tick (gc_per_tick=) */
	unsigned period_ms; /* pause between ticks (gc_period_ms=) */
};

/* A running QEMU and the files in its private directory. */
struct guest {
	pid_t pid;
	char dir[64];          /* mkdtemp()ed; removed by guest_stop() */
	char qmp_path[128];    /* QMP socket (server=on,wait=off) */
	char serial_path[128]; /* the guest's console (ttyS0) */
	char stderr_path[128]; /* QEMU's own messages */
};

/*
 * Fills *ret with the built-in paths (UFFSNAP_GUEST_KERNEL / _INITRD / _QEMU at build time;
 * the environment variables of the same names override them) and the default parameters.
 * -ENOENT, with the reason and what to do in why, when one is missing.
 */
int guest_config_find(struct guest_config *ret, char *why, size_t why_len);

/* QEMU's command line for a guest and the strings it points to. */
struct guest_argv {
	const char *argv[40]; /* NULL-ended, the binary first */
	char append[512], serial[160], qmp[160], backend[512];
};

/*
 * Gives g its directory and paths as guest_start() does, without starting QEMU: for a QEMU
 * someone else starts (uffsnapctl qemu restore). guest_stop() removes the directory.
 */
int guest_prepare(struct guest *g, char *why, size_t why_len);
/* The command line guest_start() would run for g, but without -qmp. */
void guest_argv(const struct guest *g, const struct guest_config *cfg, struct guest_argv *a);
/* Boots the guest with its RAM in a shared memfd backend (id GUEST_RAM_ID). */
int guest_start(struct guest *g, const struct guest_config *cfg, char *why, size_t why_len);
/*
 * Starts the same QEMU with its RAM from ram_file (memory-backend-file, share=on) and
 * `-incoming defer`: for restores. ram_file must be GUEST_RAM_BYTES long.
 */
int guest_start_incoming(struct guest *g, const struct guest_config *cfg, const char *ram_file,
			 char *why, size_t why_len);
/* The same with its RAM in a new shared memfd: for QEMU's own migration, which brings it all. */
int guest_start_incoming_memfd(struct guest *g, const struct guest_config *cfg, char *why,
			       size_t why_len);
/* Kills QEMU (SIGKILL), reaps it, removes its directory. Accepts a guest never started. */
void guest_stop(struct guest *g);
/* Whether QEMU is still running (reaps it if not). */
bool guest_alive(struct guest *g);
/* "/proc/PID/fd/N" of QEMU's fd on its memfd RAM (the link /memfd:memory-backend-memfd). */
int guest_memfd_path(const struct guest *g, char *buf, size_t len);
/* Size of the serial log now: the byte offset where output after this instant starts. */
off_t guest_serial_size(const struct guest *g);

/* Where the guest program's pages are (from its "gc ctl" / "gc map" lines). */
struct guest_layout {
	uint64_t pages, per_tick;
	uint64_t ctl_gpa;
	uint64_t *gpa; /* pages entries: guest-physical address of data page i */
};
void guest_layout_free(struct guest_layout *l);

/* What a stretch of serial log says. */
struct guest_log {
	long first_tick;      /* first "tick N ok" line, -1 if none */
	long last_tick;       /* last one, -1 if none */
	unsigned long ticks;  /* number of "tick N ok" lines */
	unsigned long gaps;   /* places where a tick line is not the previous one + 1 */
	unsigned long bad;    /* "tick N BAD ..." lines */
	char first_bad[160];  /* the first of those, or "" */
	char first_gap[160];  /* "tick A then tick B" for the first gap, or "" */
	bool partial_start;   /* the stretch began inside a line (ignored up to its end) */
	bool ended;           /* "gc exited" or a kernel panic was seen */
};

/*
 * Parses bytes [from, to) of a serial log (to < 0: up to its end). A line that does not start
 * at `from` (the byte before it is not '\n') is skipped as partial; so is an unfinished last
 * line. Layout lines are parsed into *ret_layout when it is not NULL (-ENODATA if incomplete).
 */
int guest_log_read(const char *path, off_t from, off_t to, struct guest_log *ret,
		   struct guest_layout *ret_layout);
/*
 * Waits until the serial log from `from` shows "tick N ok" for some N >= tick (tick < 0: any
 * tick after a complete layout), QEMU died, or timeout_s passed (a safety net, never a
 * measurement). Returns 0, -ESRCH (QEMU gone), -ETIMEDOUT, with why set; *ret updated.
 */
int guest_wait_tick(struct guest *g, off_t from, long tick, unsigned timeout_s,
		    struct guest_log *ret, char *why, size_t why_len);

/*
 * QMP, with the project's client (proto/qmp.h). guest_qmp_open() connects once QEMU's socket
 * is up (timeout_s: a safety net). guest_qmp() is qmp_exec() taking args (stolen, may be
 * NULL). guest_qmp_caps() sets migration capabilities (NULL-ended names) all to on;
 * guest_qmp_wait_migration() waits for MIGRATION "completed" (0), or fails with its status;
 * guest_qmp_cont() retries once on "Migration is not finalized yet" (QEMU.md).
 */
struct qmp;
int guest_qmp_open(const struct guest *g, unsigned timeout_s, struct qmp **ret, char *why,
		   size_t why_len);
int guest_qmp(struct qmp *q, const char *cmd, json_t *args, int fd, json_t **ret, char *why,
	      size_t why_len);
int guest_qmp_caps(struct qmp *q, const char *const *names, bool on, char *why, size_t why_len);
int guest_qmp_wait_migration(struct qmp *q, unsigned timeout_s, char *why, size_t why_len);
int guest_qmp_cont(struct qmp *q, char *why, size_t why_len);

/* Reads one page (GP_PAGE_SIZE bytes) of guest-physical memory at gpa into buf. */
typedef int (*guest_read_fn)(void *ctx, uint64_t gpa, void *buf);

struct guest_oracle {
	uint64_t tick;           /* the working set is exactly the state after this tick ... */
	uint64_t prefix_pages;   /* ... plus this many whole pages of tick + 1 ... */
	unsigned prefix_words;   /* ... plus this many leading words of the next page */
	uint64_t tick_started;   /* the control page's counters, as found */
	uint64_t tick_done;
	uint64_t guest_bad;      /* pages the guest itself had found wrong */
};

/*
 * Checks that the working set read through fn is exactly the state after one tick T, plus a
 * prefix of tick T + 1 in its own writing order (the scheme in guest-pattern.h), and that the
 * control page agrees; fills *ret. -EBADMSG with the first page that does not fit in why.
 */
int guest_oracle_check(const struct guest_layout *l, guest_read_fn fn, void *ctx,
		       struct guest_oracle *ret, char *why, size_t why_len);
