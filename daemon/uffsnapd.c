/* SPDX-License-Identifier: MIT */
/*
 * uffsnapd: one-shot mode. `uffsnapd --pid PID --output FILE` takes one live snapshot and
 * prints a summary. (Service and receiver modes come with their issues.)
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "sys/args.h"
#include "sys/clock.h"
#include "sys/linux-compat.h"
#include "sys/out-file.h"
#include "engine/snapshot.h"
#include "target/spawner.h"
#include "stream/addr.h"
#include "stream/main.h"
#include "stream/sink.h"
#include "guest/guest.h"
#include "migrate/main.h"
#include "migrate/source.h"
#include "qmp.h"
#include "service/main.h"
#include "oneshot-chain.h"
#include "oneshot-core.h"
#include "oneshot-report.h"
#include "uffsnapd.h"

struct cli {
	pid_t pid;
	const char *qemu;	   /* or a QEMU guest's QMP socket */
	struct qmp *qmp;	   /* connected to it */
	struct guest_stats guest;
	bool migrate;		   /* --migrate: the guest moves to the receiver's QEMU */
	struct migrate_stats mig;
	const char *output;	   /* a file, or "-" */
	const char *core;	   /* or an ELF core file (then output names it too) */
	int core_image_fd;	   /* --core: the image, in an unnamed file beside it */
	const char *to, *key;	   /* or a receiver, and the key file */
	struct stream_opts stream; /* with --to */
	uint64_t mem_limit;	   /* --mem-limit: the fault queue's; with --to, its and the stream's */
	uint64_t fault_queue_bytes; /* the fault queue's share of it (0: the engine's default) */
	struct img_sink *sink;
	struct out_file out; /* --output FILE: named only when complete */
	bool json, quiet, strict, force, arm_held;
	bool precopy, strict_downtime;
	uint32_t downtime_ms, max_rounds;
	bool incremental;	   /* a chain: one image per --every in --dir */
	uint32_t every_s, count;
	const char *dir;
	uint32_t window_pages;
	uint32_t copy_threads; /* --copy-threads */
	bool tty;
	uint64_t last_progress_ns;
	uint64_t done, total; /* pages saved so far (atomic: the copier updates them) */
};

/*
 * SIGINT, SIGTERM, SIGHUP and SIGQUIT end a snapshot the way any failure does: the target
 * released, the image left incomplete, status 1. They are blocked in every thread and taken
 * by one that only turns the first into a cancel (the engine's, and the output's: a stuck
 * pipe must not keep us waiting); the others change nothing. The holder child ignores them.
 */
struct interrupt {
	int efd;		 /* readable once interrupted: sinks watch it */
	int cancel;		 /* atomic: 0, or -EINTR once interrupted */
	int signo;		 /* atomic: the first signal */
	struct img_sink *stream; /* atomic: a --to sink to abort, once open */
};

static void interrupt_sigset(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGQUIT);
}

static void *interrupt_main(void *arg)
{
	struct interrupt *in = arg;
	sigset_t set;

	interrupt_sigset(&set);
	for (;;) {
		int sig = sigwaitinfo(&set, NULL), expect = 0;
		struct img_sink *stream;

		if (sig < 0 || !__atomic_compare_exchange_n(&in->cancel, &expect, -EINTR, false,
							    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			continue;
		__atomic_store_n(&in->signo, sig, __ATOMIC_RELEASE);
		eventfd_write(in->efd, 1);
		stream = __atomic_load_n(&in->stream, __ATOMIC_ACQUIRE);
		if (stream)
			stream_sink_abort(stream, "interrupted");
	}
	return NULL;
}

/* Before any other thread exists, so that all inherit the mask. 0 or -errno. */
static int interrupt_start(struct interrupt *in)
{
	pthread_t th;
	sigset_t set;
	int k;

	interrupt_sigset(&set);
	in->efd = eventfd(0, EFD_CLOEXEC);
	if (in->efd < 0)
		return -errno;
	/* A reader that went away is an error of the write (EPIPE), not our death. */
	signal(SIGPIPE, SIG_IGN);
	k = pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (!k)
		k = pthread_create(&th, NULL, interrupt_main, in);
	if (!k)
		pthread_detach(th);
	return -k;
}

static const struct option long_opts[] = {
	{"pid", required_argument, NULL, 'p'},	  {"output", required_argument, NULL, 'o'},
	{"strict", no_argument, NULL, 's'},	  {"json", no_argument, NULL, 'j'},
	{"quiet", no_argument, NULL, 'q'},	  {"force", no_argument, NULL, 'f'},
	{"window", required_argument, NULL, 'w'}, {"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},	  {"to", required_argument, NULL, 't'},
	{"key", required_argument, NULL, 'k'},	  {"mem-limit", required_argument, NULL, 'M'},
	{"spool-dir", required_argument, NULL, 'S'},
	{"resume-timeout", required_argument, NULL, 'R'},
	{"arm-held", no_argument, NULL, 'A'},
	{"core", required_argument, NULL, 'C'},
	{"qemu", required_argument, NULL, 'Q'},
	{"precopy", no_argument, NULL, 'P'},
	{"downtime", required_argument, NULL, 'D'},
	{"strict-downtime", no_argument, NULL, 'T'},
	{"max-rounds", required_argument, NULL, 'N'},
	{"incremental", no_argument, NULL, 'I'},
	{"every", required_argument, NULL, 'E'},
	{"count", required_argument, NULL, 'c'},
	{"dir", required_argument, NULL, 'd'},
	{"migrate", no_argument, NULL, 'G'},
	{"copy-threads", required_argument, NULL, 'Y'},
	{0},
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: uffsnapd --pid PID (--output FILE | --to HOST:PORT --key FILE) [options]\n"
		"       uffsnapd --pid PID --incremental --every SECONDS [--count N] --dir DIR\n"
		"       uffsnapd --qemu QMP_SOCKET (--output FILE | --to HOST:PORT --key FILE) [options]\n"
		"       uffsnapd --qemu QMP_SOCKET --migrate --to HOST:PORT --key FILE [--downtime MS]\n"
		"       uffsnapd --service [options]   (see 'uffsnapd --service --help')\n"
		"       uffsnapd --receive [options]   (see 'uffsnapd --receive --help')\n"
		"\n"
		"Take a consistent snapshot of the memory of running process PID (or of a QEMU guest),\n"
		"without stopping it for longer than it takes to arm write protection, and write it\n"
		"as a uffsnap image.\n"
		"\n"
		"  -p, --pid PID       the process to snapshot (any process we may ptrace)\n"
		"      --qemu SOCKET   or the guest of the QEMU serving this QMP socket: its RAM (a\n"
		"                      shared memory backend) and device state, for 'uffsnapctl\n"
		"                      qemu restore'; the guest is stopped only while QEMU saves\n"
		"                      its device state and arming ends (tens of ms)\n"
		"      --migrate       with --qemu and --to: live-migrate the guest to the QEMU\n"
		"                      behind that receiver ('uffsnapd --receive --qemu'): its\n"
		"                      RAM in pre-copy rounds over the stream, its device state\n"
		"                      by QEMU's own migration; any failure before the switch-\n"
		"                      over leaves it running here (--downtime, --max-rounds and\n"
		"                      --strict-downtime as for --precopy)\n"
		"  -o, --output FILE   where to write the image; '-' streams it to stdout\n"
		"      --core CORE     write an ELF core file for gdb instead of an image (the\n"
		"                      image is kept in an unnamed file beside CORE meanwhile)\n"
		"      --to HOST:PORT  stream the image to a receiver ('uffsnapd --receive') instead\n"
		"      --key FILE      the pre-shared key both sides hold (64+ hex digits, mode 0600)\n"
		"      --mem-limit MIB image data held in memory while the output lags. With\n"
		"                      --output (default 32), copies of pages the target writes\n"
		"                      queue up to this much, then its writes wait for the\n"
		"                      output: more memory, shorter stalls. With --to (default\n"
		"                      44) half is that queue's and half the stream's, beyond\n"
		"                      which it spools to a file: the network never makes the\n"
		"                      target wait. With --migrate all of it is the stream's\n"
		"                      (default 22)\n"
		"      --spool-dir DIR where the spool file lives (default $TMPDIR, else /var/tmp)\n"
		"      --resume-timeout S  keep reconnecting after a drop for S seconds (default 60)\n"
		"  -f, --force         replace FILE if it exists (a failed snapshot never touches\n"
		"                      it: the image gets FILE's name only once complete)\n"
		"  -s, --strict        fail where the image would say it is not exact: the target\n"
		"                      discards memory not yet saved (munmap, MADV_DONTNEED), or\n"
		"                      memory is written where write protection cannot see it\n"
		"                      (io_uring buffers beyond 64 MiB or of a ring with no\n"
		"                      descriptor, shared memory another process maps writable)\n"
		"  -w, --window PAGES  pages saved around each write fault (default 16, max 512)\n"
		"      --copy-threads N  threads saving what the target has not written, 1..8\n"
		"                      (default: half the CPUs, at most 4): a faster copy, and\n"
		"                      less CPU left to the target meanwhile\n"
		"      --arm-held      write-protect with every thread held (the target stops for\n"
		"                      all of arming); default: arm while it runs, then hold it only\n"
		"                      to protect again what changed meanwhile\n"
		"      --precopy       never make a write wait: copy everything while the target\n"
		"                      runs, then rounds of what it wrote meanwhile (the dirty\n"
		"                      log), then hold it once while the last of it is copied;\n"
		"                      the image is its memory at the end of that hold\n"
		"      --downtime MS   pre-copy: hold at the end at most about this long (default\n"
		"                      50): rounds go on until the last is predicted to fit\n"
		"                      and stopped halving what is left\n"
		"      --max-rounds N  pre-copy: give up converging after N rounds (default 10);\n"
		"                      then what is left is saved with write protection, as\n"
		"                      without --precopy, from the end of that hold on\n"
		"      --strict-downtime  pre-copy: fail instead when it does not converge\n"
		"      --incremental   a chain of pre-copy snapshots, one every --every SECONDS\n"
		"                      (--count N of them, default: until interrupted) into DIR\n"
		"                      (--dir), named uffsnap-PID-START-NNNN.img: the first holds\n"
		"                      all the memory, each later one only the pages written since\n"
		"                      the one before (the dirty log stays armed in between) and\n"
		"                      names it as its parent; 'uffsnapctl image' reads any of them\n"
		"                      through its parents. One that does not converge is copied\n"
		"                      while held (at most 128 MiB) or fails, ending the chain\n"
		"  -j, --json          print the summary as one JSON object on stdout\n"
		"                      (on stderr with --output -)\n"
		"  -q, --quiet         no progress, no summary; errors only\n"
		"  -h, --help          this text\n"
		"  -V, --version       print the version\n"
		"\n"
		"With --to, success means the receiver verified the whole image and stored it.\n"
		"Exit status: 0 snapshot complete and verified, 1 snapshot failed (the target is\n"
		"released first; FILE is left as it was, and on stdout the partial image is marked\n"
		"incomplete), 2 usage error.\n"
		"Inspect images with 'uffsnapctl image info|verify|maps|read'.\n");
}

/* --incremental: a chain of images in a directory, of a process. */
static int check_chain_args(struct cli *c)
{
	struct stat st;

	if (!c->incremental)
		return args_usage_error("--every, --count and --dir go with --incremental");
	if (!c->pid || c->qemu)
		return args_usage_error("--incremental takes --pid PID (a process, not --qemu)");
	if (!c->every_s || !c->dir)
		return args_usage_error("--incremental needs --every SECONDS and --dir DIR");
	if (c->output || c->to || c->core || c->arm_held || c->force)
		return args_usage_error("--incremental writes its images into --dir: not with "
					"--output, --to, --core, --arm-held or --force");
	if (c->mem_limit || c->stream.spool_dir || c->stream.resume_timeout_s)
		return args_usage_error("--mem-limit, --spool-dir and --resume-timeout go with "
					"--output or --to, not --incremental");
	if (c->copy_threads)
		return args_usage_error("--copy-threads is for the write-protect copy, not "
					"--incremental (a chain's images are copied in rounds)");
	if (stat(c->dir, &st) < 0)
		return args_usage_error("--dir %s: %s", c->dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return args_usage_error("--dir %s: not a directory", c->dir);
	c->precopy = true;
	return 0;
}

static int parse_args(int argc, char **argv, struct cli *c)
{
	char msg[160];
	uint32_t v;
	int o;

	while ((o = getopt_long(argc, argv, "p:o:sjqfw:hV", long_opts, NULL)) != -1) {
		switch (o) {
		case 't':
			c->to = optarg;
			break;
		case 'A':
			c->arm_held = true;
			break;
		case 'P':
			c->precopy = true;
			break;
		case 'T':
			c->strict_downtime = true;
			break;
		case 'D':
			if (args_parse_uint(optarg, 60000, &c->downtime_ms) < 0)
				return args_usage_error("--downtime takes 1..60000 ms");
			break;
		case 'I':
			c->incremental = true;
			break;
		case 'G':
			c->migrate = true;
			break;
		case 'Y':
			if (args_parse_uint(optarg, SNAP_MAX_COPY_THREADS, &c->copy_threads) < 0)
				return args_usage_error("--copy-threads takes 1..%u",
							SNAP_MAX_COPY_THREADS);
			break;
		case 'E':
			if (args_parse_uint(optarg, 604800, &c->every_s) < 0)
				return args_usage_error("--every takes 1..604800 seconds");
			break;
		case 'c':
			if (args_parse_uint(optarg, 1000000000, &c->count) < 0)
				return args_usage_error("--count takes 1..1000000000 images");
			break;
		case 'd':
			c->dir = optarg;
			break;
		case 'N':
			if (args_parse_uint(optarg, SNAP_MAX_ROUNDS - 1, &c->max_rounds) < 0)
				return args_usage_error("--max-rounds takes 1..%u",
							SNAP_MAX_ROUNDS - 1);
			break;
		case 'k':
			c->key = optarg;
			break;
		case 'M':
			if (args_parse_uint(optarg, 1u << 20, &v) < 0)
				return args_usage_error("--mem-limit takes 1..1048576 MiB");
			c->mem_limit = (uint64_t)v << 20;
			break;
		case 'S':
			c->stream.spool_dir = optarg;
			break;
		case 'R':
			if (args_parse_uint(optarg, 86400, &v) < 0)
				return args_usage_error("--resume-timeout takes 1..86400 s");
			c->stream.resume_timeout_s = v;
			break;
		case 'p':
			if (args_parse_uint(optarg, INT_MAX, &v) < 0)
				return args_usage_error("invalid pid '%s'", optarg);
			c->pid = v;
			break;
		case 'o':
			if (c->core)
				return args_usage_error("--core and --output exclude each other");
			c->output = optarg;
			break;
		case 'Q':
			c->qemu = optarg;
			break;
		case 'C':
			if (c->output)
				return args_usage_error("--core and --output exclude each other");
			c->core = c->output = optarg;
			break;
		case 's':
			c->strict = true;
			break;
		case 'j':
			c->json = true;
			break;
		case 'q':
			c->quiet = true;
			break;
		case 'f':
			c->force = true;
			break;
		case 'w':
			if (args_parse_uint(optarg, 512, &c->window_pages) < 0)
				return args_usage_error("--window takes 1..512 pages");
			break;
		case 'h':
			usage(stdout);
			return ARGS_DONE;
		case 'V':
			printf("uffsnapd %s\n", UFFSNAP_VERSION);
			return ARGS_DONE;
		default:
			return args_try_help("");
		}
	}
	if (optind < argc)
		return args_usage_error("unexpected argument '%s'", argv[optind]);
	if (c->pid && c->qemu)
		return args_usage_error("give --pid or --qemu, not both");
	if (c->incremental || c->every_s || c->count || c->dir)
		return check_chain_args(c);
	if (!c->pid && !c->qemu)
		return args_usage_error("--pid PID or --qemu QMP_SOCKET is required (see "
					"--help)");
	if (c->qemu && c->core)
		return args_usage_error("--core is for processes: a guest's memory is not "
					"a process's (restore a guest image with 'uffsnapctl qemu "
					"restore')");
	if (c->output && c->to)
		return args_usage_error("give --output or --to, not both");
	if (c->migrate &&
	    (!c->qemu || !c->to || c->output || c->precopy || c->arm_held || c->copy_threads))
		return args_usage_error("--migrate takes --qemu QMP_SOCKET and --to HOST:PORT (a "
					"'uffsnapd --receive --qemu' receiver), not --output, "
					"--precopy, --arm-held or --copy-threads");
	if (!c->precopy && !c->migrate && (c->downtime_ms || c->max_rounds || c->strict_downtime))
		return args_usage_error("--downtime, --max-rounds and --strict-downtime go with "
					"--precopy or --migrate");
	if (c->precopy && (c->qemu || c->arm_held))
		return args_usage_error("--precopy is for processes armed while they run: not "
					"with --qemu or --arm-held");
	if (!c->output && !c->to)
		return args_usage_error("--output FILE or --to HOST:PORT is required "
					"(see --help)");
	if (c->to && stream_addr_check(c->to, msg, sizeof(msg)) < 0)
		return args_usage_error("--to %s", msg);
	if (!c->to != !c->key)
		return args_usage_error("--key goes with --to, and --to needs it");
	if (!c->to && (c->stream.spool_dir || c->stream.resume_timeout_s))
		return args_usage_error("--spool-dir and --resume-timeout go with --to");
	/* A migration never write-protects (snap_opts.precopy): no fault queue, all the stream's */
	if (c->to && !c->migrate)
		stream_snap_mem_split(c->mem_limit, &c->stream.mem_limit, &c->fault_queue_bytes);
	else if (c->to)
		c->stream.mem_limit = c->mem_limit; /* 0: the stream's default */
	else
		c->fault_queue_bytes = c->mem_limit;
	return 0;
}

/*
 * Before any output is touched: a pid that does not exist or that we may not ptrace fails here
 * (opening /proc/PID/mem is the kernel's ptrace access check, PTRACE_MODE_ATTACH_FSCREDS, and
 * touches nothing in the target). The engine checks again, on the process it pins.
 */
static int check_target(pid_t pid)
{
	char path[32];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		return close(fd), 0;
	if (errno == ENOENT)
		fprintf(stderr, "uffsnapd: no process with pid %d\n", pid);
	else if (errno == EACCES || errno == EPERM)
		fprintf(stderr,
			"uffsnapd: cannot snapshot pid %d: permission denied (need "
			"CAP_SYS_PTRACE or the same user, and a dumpable process)\n",
			pid);
	else
		return 0; /* a zombie, a kernel thread (no mm: ESRCH): the engine says which */
	return -errno;
}

/* stdout, or a new file that gets its name only when the image is complete (main()). */
static int open_output(struct cli *c)
{
	int r;

	if (!strcmp(c->output, "-")) {
		if (c->core) {
			fprintf(stderr, "uffsnapd: --core needs a file name, not '-'\n");
			return -EINVAL;
		}
		if (isatty(STDOUT_FILENO)) {
			fprintf(stderr, "uffsnapd: refusing to write an image to a terminal\n");
			return -ENOTTY;
		}
		return STDOUT_FILENO;
	}
	r = out_file_open(&c->out, c->output, c->force, 0600);
	if (r == -EEXIST)
		fprintf(stderr, "uffsnapd: '%s' exists (use --force to replace it)\n", c->output);
	else if (r == -EISDIR)
		fprintf(stderr, "uffsnapd: '%s' is a directory: name a file to write\n",
			c->output);
	else if (r < 0)
		fprintf(stderr, "uffsnapd: cannot create '%s': %s\n", c->output, strerror(-r));
	if (r >= 0 && c->core) { /* the image first goes beside the core, unnamed */
		char msg[PATH_MAX + 128];

		r = oneshot_core_temp(c->core, &c->core_image_fd, msg, sizeof(msg));
		if (r < 0)
			fprintf(stderr, "uffsnapd: %s\n", msg);
		return r < 0 ? r : c->core_image_fd;
	}
	return r < 0 ? r : c->out.fd;
}

/*
 * The image's way out: a file or stdout (returns its fd), or a receiver (returns INT_MAX: no fd
 * of ours). Connection and key errors are reported here, before the target is touched.
 */
static int open_sink(struct cli *c, struct img_sink **ret)
{
	struct stream_error se = {{0}};
	int fd, r;

	if (c->to) {
		r = stream_sink_new(c->to, c->key, &c->stream, ret, &se);
		if (r < 0)
			fprintf(stderr, "uffsnapd: %s\n", se.msg[0] ? se.msg : strerror(-r));
		return r < 0 ? r : INT_MAX;
	}
	fd = open_output(c);
	if (fd < 0)
		return fd;
	r = img_sink_fd_new(fd, ret);
	if (r < 0) {
		fprintf(stderr, "uffsnapd: %s\n", strerror(-r));
		out_file_close(&c->out);
		return r;
	}
	return fd;
}

/* Reads the finished image back, front to back, as `uffsnapctl image verify` would. */
static int verify_output(const struct cli *c, char *msg, size_t len)
{
	struct img_summary sum;
	char proc[64];
	int fd, r;

	/* A stream: the reader verifies it (a receiver has, once flushed). A core's image is
	 * read back whole to write the core. */
	if (c->to || c->core || !strcmp(c->output, "-") || c->out.in_place)
		return 0;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", c->out.fd); /* not named yet */
	fd = open(proc, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		snprintf(msg, len, "cannot reopen '%s' to verify it: %s", c->output, strerror(-r));
		return r;
	}
	r = img_verify_fd(fd, &sum, NULL);
	close(fd);
	if (r < 0)
		return snprintf(msg, len, "cannot verify '%s': %s", c->output, strerror(-r)), r;
	if (sum.status != IMG_COMPLETE)
		return snprintf(msg, len, "the image written to '%s' does not verify: %s at offset %llu",
				c->output, sum.error.msg, (unsigned long long)sum.error.offset),
		       -EBADMSG;
	return 0;
}

/* Syncs the complete image and gives it its name (replacing FILE only with --force). */
static int commit_output(struct cli *c, char *msg, size_t len)
{
	int r = c->out.in_place || fsync(c->out.fd) == 0 ? 0 : -errno;

	if (r >= 0)
		r = out_file_commit(&c->out);
	if (r == -EEXIST)
		snprintf(msg, len, "'%s' was created meanwhile; not replaced (use --force)",
			 c->output);
	else if (r < 0)
		snprintf(msg, len, "cannot write '%s': %s", c->output, strerror(-r));
	return r;
}

static void print_progress(struct cli *c)
{
	uint64_t done = __atomic_load_n(&c->done, __ATOMIC_RELAXED);
	uint64_t total = __atomic_load_n(&c->total, __ATOMIC_RELAXED);

	fprintf(stderr, "\ruffsnapd: saving %3" PRIu64 "%% (%" PRIu64 "/%" PRIu64 " pages)",
		total ? done * 100 / total : 100, done, total);
	if (c->to) {
		struct stream_counters sc;

		stream_sink_counters(c->sink, &sc);
		fprintf(stderr, ", sent %.1f MiB, acknowledged %.1f MiB, spooled %.1f MiB",
			sc.sent / 1048576.0, sc.acked / 1048576.0, sc.spooled / 1048576.0);
	}
}

static void progress(void *ctx, uint64_t done, uint64_t total)
{
	struct cli *c = ctx;
	uint64_t now = sys_now_ns();

	__atomic_store_n(&c->done, done, __ATOMIC_RELAXED);
	__atomic_store_n(&c->total, total, __ATOMIC_RELAXED);
	/* With --to the printer thread shows it, together with the network's side. */
	if (c->quiet || !c->tty || c->to || (now - c->last_progress_ns < 200000000ull && done < total))
		return;
	c->last_progress_ns = now;
	print_progress(c);
	if (done >= total)
		fputc('\n', stderr);
}

/*
 * With --to, progress goes on after the last page is saved: the image's end waits for the
 * receiver. Shown every 250 ms on a terminal until stop is set.
 */
struct printer {
	struct cli *c;
	int stop; /* atomic */
	pthread_t th;
};

static void *printer_main(void *arg)
{
	struct printer *p = arg;

	while (!__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {
		usleep(250000);
		print_progress(p->c);
	}
	fputc('\n', stderr);
	return NULL;
}

static int run_chain(const struct cli *c, struct snap_opts *o, struct interrupt *in)
{
	struct chain_cli cc = {.pid = c->pid, .dir = c->dir, .every_s = c->every_s,
			       .count = c->count, .json = c->json, .quiet = c->quiet,
			       .cancel_efd = in->efd};

	if (check_target(c->pid) < 0)
		return 1;
	o->cancel = &in->cancel;
	o->precopy = true;
	o->downtime_ms = c->downtime_ms;
	o->max_rounds = c->max_rounds;
	o->strict_downtime = c->strict_downtime;
	o->pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
	if (o->pidfd < 0)
		o->pidfd = -EBADF;
	return oneshot_chain(&cc, o);
}

/* Whether argv has opt (before any "--"), alone or as opt=VALUE. */
static bool has_arg(int argc, char **argv, const char *opt)
{
	size_t n = strlen(opt);

	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strncmp(argv[i], opt, n) && (!argv[i][n] || argv[i][n] == '='))
			return true;
	return false;
}

int uffsnapd_main(int argc, char **argv, void (*test_pause)(const char *point))
{
	struct cli c = {.tty = isatty(STDERR_FILENO), .out = OUT_FILE_INIT, .core_image_fd = -EBADF};
	struct snap_opts o = {.devuffd_fd = -1, .pidfd = -EBADF, .test_pause = test_pause};
	struct snap_stats st = {0};
	struct snap_error err = {{0}};
	struct img_sink *sink = NULL;
	struct interrupt in = {.efd = -EBADF};
	struct printer pr = {0};
	bool pr_started;
	int fd, r;

	/* Each mode has its own option table, so the mode is found before getopt_long() runs;
	 * its flag may be anywhere, as getopt_long() allows options to be. */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--service"))
			return svc_main(argc, argv, test_pause);
		if (!strcmp(argv[i], "--receive"))
			return has_arg(argc, argv, "--qemu") ? migrate_recv_main(argc, argv)
							     : recv_main(argc, argv);
		if (!strcmp(argv[i], "--"))
			break;
	}
	r = parse_args(argc, argv, &c);
	if (r)
		return r == ARGS_DONE ? 0 : r;
	r = holder_spawner_start(); /* while we have one thread: target/spawner.h */
	if (r < 0) {
		fprintf(stderr, "uffsnapd: cannot start the holders' spawner process: %s\n",
			strerror(-r));
		return 1;
	}
	r = interrupt_start(&in);
	if (r < 0) {
		fprintf(stderr, "uffsnapd: cannot set up signal handling: %s\n", strerror(-r));
		return 1;
	}
	if (c.incremental)
		return run_chain(&c, &o, &in);
	if (c.qemu) { /* QEMU is asked everything before any output is touched */
		char msg[256];

		if (qmp_open_path(c.qemu, 30000, &c.qmp, msg, sizeof(msg)) < 0) {
			fprintf(stderr, "uffsnapd: --qemu %s: %s\n", c.qemu, msg);
			return 1;
		}
		c.pid = qmp_peer_pid(c.qmp);
	}
	if (check_target(c.pid) < 0) {
		qmp_close(c.qmp);
		return 1;
	}
	c.stream.migrate = c.migrate;
	fd = open_sink(&c, &sink);
	if (fd < 0) {
		qmp_close(c.qmp);
		return 1;
	}
	c.sink = sink;
	if (c.to)
		__atomic_store_n(&in.stream, sink, __ATOMIC_RELEASE);
	else
		img_sink_fd_set_cancel(sink, in.efd);
	if (__atomic_load_n(&in.cancel, __ATOMIC_ACQUIRE) && c.to) /* came while connecting */
		stream_sink_abort(sink, "interrupted");
	o.cancel = &in.cancel;
	o.strict = c.strict;
	o.arm_held = c.arm_held;
	o.precopy = c.precopy;
	o.downtime_ms = c.downtime_ms;
	o.max_rounds = c.max_rounds;
	o.strict_downtime = c.strict_downtime;
	o.window_pages = c.window_pages;
	o.copy_threads = c.copy_threads;
	o.fault_queue_bytes = c.fault_queue_bytes;
	o.progress = progress;
	o.progress_ctx = &c;
	/* The process --pid names now is the one snapshotted, or none (its pid may be reused). A
	 * failure is the engine's to explain (no such process, a thread id, ...). */
	o.pidfd = (int)syscall(SYS_pidfd_open, c.pid, 0);
	if (o.pidfd < 0)
		o.pidfd = -EBADF;
	pr.c = &c;
	pr_started = c.to && c.tty && !c.quiet && !pthread_create(&pr.th, NULL, printer_main, &pr);
	if (c.migrate)
		r = migrate_source(c.qmp, &o, in.efd, sink, &c.mig, &st, &err);
	else if (c.qmp)
		r = guest_snapshot(c.qmp, &o, in.efd, sink, &c.guest, &st, &err);
	else
		r = snapshot_take(c.pid, &o, sink, &st, &err);
	if (pr_started) {
		__atomic_store_n(&pr.stop, 1, __ATOMIC_RELEASE);
		pthread_join(pr.th, NULL);
	}
	if (r >= 0)
		r = verify_output(&c, err.msg, sizeof(err.msg));
	if (r >= 0 && c.core)
		r = oneshot_core_write(c.core_image_fd, c.out.fd, c.core, err.msg, sizeof(err.msg));
	if (r >= 0 && c.out.fd >= 0)
		r = commit_output(&c, err.msg, sizeof(err.msg));
	if (r < 0 && c.to) { /* say what the network did too */
		struct stream_error se;

		stream_sink_error(sink, &se);
		stream_error_append(err.msg, sizeof(err.msg), &se);
	}
	if (r < 0 && __atomic_load_n(&in.cancel, __ATOMIC_ACQUIRE))
		snprintf(err.msg, sizeof(err.msg), "interrupted by SIG%s: %s",
			 sigabbrev_np(__atomic_load_n(&in.signo, __ATOMIC_ACQUIRE)) ?: "?",
			 c.migrate ? (c.mig.switched ? "after the switch-over began: the guest is "
						       "the destination's"
						     : "the migration was cancelled; the guest runs "
						       "here")
			 : c.out.fd >= 0 ? "the target was released; nothing was written"
					 : "the target was released; the image is incomplete");
	if (r < 0)
		fprintf(stderr, "uffsnapd: %s\n", err.msg[0] ? err.msg : strerror(-r));
	oneshot_report(&(struct oneshot_report){.pid = c.pid, .where = c.to ? c.to : c.output,
						.guest = c.qemu && !c.migrate ? &c.guest : NULL,
						.migration = c.migrate ? &c.mig : NULL,
						.stream = c.to ? c.sink : NULL, .json = c.json,
						.quiet = c.quiet,
						.to_stdout = !c.to && !strcmp(c.output, "-")},
		       &st, r, err.msg);
	img_sink_free(sink);
	qmp_close(c.qmp);
	if (o.pidfd >= 0)
		close(o.pidfd);
	out_file_close(&c.out); /* a failed snapshot's temporary goes: FILE is as it was */
	if (c.core_image_fd >= 0)
		close(c.core_image_fd);
	return r < 0 ? 1 : 0;
}

#ifndef UFFSNAP_TEST_HOOKS /* tests/snapshot/uffsnapd-test.c has its own main() */
int main(int argc, char **argv)
{
	return uffsnapd_main(argc, argv, NULL);
}
#endif
