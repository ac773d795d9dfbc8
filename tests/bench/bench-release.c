/* SPDX-License-Identifier: MIT */
/*
 * What ending a dirty log costs a writer: SIZE_MIB of 4 KiB pages of this process,
 * registered with an asynchronous userfaultfd (as `uffsnapd --precopy` does) and all
 * write-protected, one thread storing into random pages at 2,000 stores/s; then the log is
 * ended by close() alone, by clearing the protection PIECE_MIB at a time (UFFDIO_WRITEPROTECT
 * mode 0) and then close(), or as engine/faults.c dirty_log_release() does: unregistering
 * PIECE_MIB at a time (UFFDIO_UNREGISTER), each followed by a pause as long as it took, then
 * close(). Prints the time of each step and the writer's longest gap, and where it began.
 *
 * usage: bench-release SIZE_MIB PIECE_MIB close|pieces|unregister
 *
 * The reason for dirty_log_release(): close() clears every page's protection with the mmap
 * lock held for writing (fs/userfaultfd.c userfaultfd_release()).
 */
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sys/clock.h"
#include "sys/linux-compat.h"

static char *mem;
static size_t size;
static int stop;
static double gap_max, gap_at;

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* Stores into random pages at 2,000/s, paced by spinning; records the longest gap. */
static void *writer(void *arg)
{
	unsigned long seed = 1;
	double last = now();

	(void)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		double t, until;

		seed = seed * 6364136223846793005ul + 1;
		mem[((seed >> 20) % (size / 4096)) * 4096]++;
		t = now();
		if (t - last > gap_max) {
			gap_max = t - last;
			gap_at = last;
		}
		last = t;
		for (until = t + 1.0 / 2000; now() < until;)
			;
	}
	return NULL;
}

static int ioctl_or_die(int fd, unsigned long req, void *arg, const char *what)
{
	if (ioctl(fd, req, arg) == 0)
		return 0;
	perror(what);
	exit(1);
}

int main(int argc, char **argv)
{
	struct uffdio_api api = {.api = UFFD_API,
				 .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED};
	size_t piece;
	bool pieces, unreg;
	double t0, t1, t2, quiet;
	pthread_t th;
	int uffd;

	if (argc != 4 ||
	    (strcmp(argv[3], "close") && strcmp(argv[3], "pieces") && strcmp(argv[3], "unregister")))
		return fprintf(stderr, "usage: %s SIZE_MIB PIECE_MIB close|pieces|unregister\n",
			       argv[0]),
		       2;
	size = (size_t)atol(argv[1]) << 20;
	piece = (size_t)atol(argv[2]) << 20;
	pieces = !strcmp(argv[3], "pieces");
	unreg = !strcmp(argv[3], "unregister");
	if (!size || !piece)
		return fprintf(stderr, "SIZE_MIB and PIECE_MIB must be positive\n"), 2;
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return perror("mmap"), 1;
	madvise(mem, size, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < size; i += 4096)
		mem[i] = 1;
	uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		return perror("userfaultfd"), 1;
	ioctl_or_die(uffd, UFFDIO_API, &api, "UFFDIO_API");
	ioctl_or_die(uffd, UFFDIO_REGISTER,
		     &(struct uffdio_register){.range = {(unsigned long)mem, size},
					       .mode = UFFDIO_REGISTER_MODE_WP},
		     "UFFDIO_REGISTER");
	ioctl_or_die(uffd, UFFDIO_WRITEPROTECT,
		     &(struct uffdio_writeprotect){.range = {(unsigned long)mem, size},
						   .mode = UFFDIO_WRITEPROTECT_MODE_WP},
		     "UFFDIO_WRITEPROTECT");
	if (pthread_create(&th, NULL, writer, NULL))
		return fprintf(stderr, "pthread_create failed\n"), 1;
	usleep(300000);
	quiet = gap_max;
	gap_max = 0;
	t0 = now();
	for (size_t off = 0; pieces && off < size; off += piece) {
		struct uffdio_writeprotect wp = {
		    .range = {(unsigned long)mem + off, off + piece > size ? size - off : piece}};

		ioctl_or_die(uffd, UFFDIO_WRITEPROTECT, &wp, "UFFDIO_WRITEPROTECT mode 0");
	}
	for (size_t off = 0; unreg && off < size; off += piece) {
		struct uffdio_range r = {(unsigned long)mem + off,
					 off + piece > size ? size - off : piece};
		uint64_t a = sys_now_ns();

		ioctl_or_die(uffd, UFFDIO_UNREGISTER, &r, "UFFDIO_UNREGISTER");
		sys_pace(a, 2000000); /* faults.c DIRTY_LOG_RELEASE_PAUSE_MAX_NS */
	}
	t1 = now();
	close(uffd);
	t2 = now();
	usleep(300000);
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	pthread_join(th, NULL);
	printf("%zu MiB, %s%s: unprotect %.1f ms, close %.1f ms; writer's longest gap %.1f ms, "
	       "from %+.1f ms (0: the first step); before, quiet: %.1f ms\n",
	       size >> 20, pieces || unreg ? argv[2] : "close only",
	       unreg ? " MiB unregistered with pauses" : "", (t1 - t0) * 1e3, (t2 - t1) * 1e3,
	       gap_max * 1e3, (gap_at - t0) * 1e3, quiet * 1e3);
	return 0;
}
