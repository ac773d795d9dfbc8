/* SPDX-License-Identifier: MIT */
/*
 * The kernel facts DESIGN.md rests on, checked on the running kernel with a userfaultfd made
 * the way uffsnapd makes it (inside a child, through target_uffd_create()). Each fact is a named
 * sub-check printing PASS or FAIL.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sys/linux-compat.h"
#include "target/attach.h"
#include "target/uffd.h"
#include "target-proc.h"
#include "test-check.h"
#include "test-proc.h"

#define PAGE	   4096
#define QUIET_MS   300
#define TIMEOUT_MS 20000
#define PM_PRESENT (1ULL << 63) /* /proc/PID/pagemap entry: page present */


/* Commands the child runs, one report each (OP_FORK_WRITE: two). */
enum op { OP_MAP_ANON = 1, OP_MAP_SHMEM, OP_MAP_FILE, OP_WRITE, OP_READ_PIPE, OP_FORK_WRITE };

struct cmd {
	int op;
	long a, b;
};

struct report {
	long ret;
	int err;
	long v;
};

struct child {
	pid_t pid;
	int cmd, rep, data;
};

/* One fact's world: a child and a userfaultfd for its mm. */
struct fact {
	struct child c;
	int uffd;
};

static void child_report(int fd, long ret, int err, long v)
{
	struct report r = {.ret = ret, .err = err, .v = v};

	if (write(fd, &r, sizeof(r)) != sizeof(r))
		_exit(3);
}

static long child_map(int op, long npages, bool populate)
{
	size_t len = (size_t)npages * PAGE;
	int fd = -1, flags = MAP_PRIVATE | MAP_ANONYMOUS;
	char *p;

	if (op == OP_MAP_SHMEM) {
		fd = memfd_create("uffsnap-fact", MFD_CLOEXEC);
		if (fd < 0 || ftruncate(fd, (off_t)len) < 0)
			return -errno;
		flags = MAP_SHARED;
	} else if (op == OP_MAP_FILE) {
		fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
		flags = MAP_PRIVATE;
		if (fd < 0)
			return -errno;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, fd, 0);
	if (fd >= 0)
		close(fd);
	if (p == MAP_FAILED)
		return -errno;
	/* Page-exact facts: no (multi-size) THP filling neighbours in. */
	madvise(p, len, MADV_NOHUGEPAGE);
	for (long i = 0; populate && i < npages; i++)
		p[i * PAGE] = 'a';
	return (long)p;
}

static void child_fork_write(int rep, char *addr, char byte)
{
	int status = -1;
	pid_t pid = fork();

	if (pid == 0) {
		*addr = byte;
		child_report(rep, 0, 0, *addr);
		_exit(0);
	}
	if (pid > 0)
		waitpid(pid, &status, 0);
	child_report(rep, pid < 0 ? -errno : status, 0, pid);
}

static void child_main(int cmdfd, int rep, int data)
{
	struct cmd c;

	while (read(cmdfd, &c, sizeof(c)) == sizeof(c)) {
		long r;

		switch (c.op) {
		case OP_MAP_ANON:
		case OP_MAP_SHMEM:
		case OP_MAP_FILE:
			r = child_map(c.op, c.a & 0xffff, c.a >> 16);
			child_report(rep, r, r < 0 ? (int)-r : 0, 0);
			break;
		case OP_WRITE:
			*(volatile char *)c.a = (char)c.b;
			child_report(rep, 0, 0, *(volatile char *)c.a);
			break;
		case OP_READ_PIPE:
			r = read(data, (void *)c.a, (size_t)c.b);
			child_report(rep, r, r < 0 ? errno : 0, 0);
			break;
		case OP_FORK_WRITE:
			child_fork_write(rep, (char *)c.a, (char)c.b);
			break;
		default:
			_exit(5);
		}
	}
	_exit(0);
}

static int child_start(struct child *c)
{
	int cmd[2], rep[2], data[2];

	if (pipe2(cmd, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0 || pipe2(data, O_CLOEXEC) < 0)
		return -errno;
	c->pid = fork();
	if (c->pid < 0)
		return -errno;
	if (c->pid == 0) {
		/* Only the parent may hold the write end: its close is the child's EOF. */
		close(cmd[1]);
		close(rep[0]);
		close(data[1]);
		child_main(cmd[0], rep[1], data[0]);
	}
	close(cmd[0]);
	close(rep[1]);
	close(data[0]);
	c->cmd = cmd[1];
	c->rep = rep[0];
	c->data = data[1];
	return 0;
}

/* Close the command pipe: the child exits 0. Returns its wait status. */
static int child_finish(struct child *c, bool kill_it)
{
	int status = -1;

	if (c->pid <= 0)
		return -1;
	if (kill_it)
		kill(c->pid, SIGKILL);
	close(c->cmd);
	close(c->data);
	waitpid(c->pid, &status, 0);
	close(c->rep);
	c->pid = -1;
	return status;
}

static int child_send(struct child *c, int op, long a, long b)
{
	struct cmd cmd = {.op = op, .a = a, .b = b};

	return write(c->cmd, &cmd, sizeof(cmd)) == sizeof(cmd) ? 0 : -EPIPE;
}

static int child_wait(struct child *c, int timeout_ms, struct report *ret)
{
	struct pollfd p = {.fd = c->rep, .events = POLLIN};
	int n = poll(&p, 1, timeout_ms);

	if (n <= 0)
		return n == 0 ? -ETIMEDOUT : -errno;
	return read(c->rep, ret, sizeof(*ret)) == sizeof(*ret) ? 0 : -EPIPE;
}

static long child_call(struct child *c, int op, long a, long b)
{
	struct report r;

	if (child_send(c, op, a, b) < 0 || child_wait(c, TIMEOUT_MS, &r) < 0)
		return -EPIPE;
	return r.ret;
}

/* A child, and a userfaultfd for its mm (UFFDIO_API done with features, unless 0). */
static int fact_start(struct fact *f, int devfd, uint64_t features)
{
	struct uffdio_api api = {.api = UFFD_API, .features = features};
	struct target *t = NULL;
	struct target_error err;
	int r;

	f->uffd = -EBADF;
	if (child_start(&f->c) < 0)
		return -1;
	r = target_attach(f->c.pid, &t, &err);
	if (r == 0)
		r = target_uffd_create(t, devfd, &f->uffd);
	target_free(t);
	if (r < 0) {
		printf("FAIL: no userfaultfd for the child: %s %s\n", strerror(-r), err.msg);
		return -1;
	}
	if (features && ioctl(f->uffd, UFFDIO_API, &api) < 0) {
		printf("FAIL: UFFDIO_API %#llx: %m\n", (unsigned long long)features);
		return -1;
	}
	return 0;
}

static void fact_end(struct fact *f, bool kill_it)
{
	if (f->uffd >= 0)
		close(f->uffd);
	f->uffd = -EBADF;
	child_finish(&f->c, kill_it);
}

static int register_wp(int uffd, uint64_t start, uint64_t len)
{
	struct uffdio_register reg = {
	    .range = {.start = start, .len = len},
	    .mode = UFFDIO_REGISTER_MODE_WP,
	};

	return ioctl(uffd, UFFDIO_REGISTER, &reg) < 0 ? -errno : 0;
}

/* Wait for a WP fault message for the page at addr. */
static int expect_wp_fault(int uffd, uint64_t addr)
{
	struct pollfd p = {.fd = uffd, .events = POLLIN};
	struct uffd_msg msg;

	if (poll(&p, 1, TIMEOUT_MS) != 1 || read(uffd, &msg, sizeof(msg)) != sizeof(msg))
		return -ETIMEDOUT;
	if (msg.event != UFFD_EVENT_PAGEFAULT ||
	    !(msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP))
		return -EPROTO;
	return (msg.arg.pagefault.address & ~(uint64_t)(PAGE - 1)) == addr ? 0 : -EFAULT;
}

static bool no_message(int uffd)
{
	struct pollfd p = {.fd = uffd, .events = POLLIN};

	return poll(&p, 1, 0) == 0;
}

/* Map in the child, register for WP and protect; returns the address or 0. */
static uint64_t protected_region(struct fact *f, int op, long npages, bool populate)
{
	long addr = child_call(&f->c, op, npages | (populate ? 1L << 16 : 0), 0);

	if (addr <= 0)
		return 0;
	if (register_wp(f->uffd, (uint64_t)addr, (uint64_t)npages * PAGE) < 0 ||
	    proc_writeprotect(f->uffd, (uint64_t)addr, (uint64_t)npages * PAGE, true) < 0)
		return 0;
	return (uint64_t)addr;
}

#define WP_FEATURES (UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_WP_UNPOPULATED)

/* UFFDIO_API may be called once per context: the daemon calls it, the target must not. */
static int fact_api_once(int devfd)
{
	struct uffdio_api api = {.api = UFFD_API};
	struct fact f;
	int r;

	CHECK(fact_start(&f, devfd, 0) == 0, "setup");
	CHECK(ioctl(f.uffd, UFFDIO_API, &api) == 0, "first UFFDIO_API: %m");
	api = (struct uffdio_api){.api = UFFD_API};
	r = ioctl(f.uffd, UFFDIO_API, &api);
	CHECK(r < 0, "second UFFDIO_API succeeded");
	printf("PASS api-once: a second UFFDIO_API fails (%m)\n");
	fact_end(&f, false);
	return 0;
fail:
	fact_end(&f, true);
	return -1;
}

/* Closing the last fd releases the context: blocked threads wake, protection is gone. */
static int fact_close_wakes(int devfd)
{
	struct report r;
	struct fact f;
	uint64_t addr;

	CHECK(fact_start(&f, devfd, WP_FEATURES) == 0, "setup");
	addr = protected_region(&f, OP_MAP_ANON, 2, true);
	CHECK(addr, "protected region");
	CHECK(child_send(&f.c, OP_WRITE, (long)addr, 'b') == 0, "command");
	CHECK(expect_wp_fault(f.uffd, addr) == 0, "no WP fault");
	CHECK(child_wait(&f.c, QUIET_MS, &r) == -ETIMEDOUT, "write not blocked");
	close(f.uffd);
	f.uffd = -EBADF;
	CHECK(child_wait(&f.c, TIMEOUT_MS, &r) == 0 && r.v == 'b', "not woken by the close");
	CHECK(child_call(&f.c, OP_WRITE, (long)(addr + PAGE), 'c') == 0, "second write");
	CHECK(proc_peek(f.c.pid, addr) == 'b' && proc_peek(f.c.pid, addr + PAGE) == 'c', "writes lost");
	CHECK(child_finish(&f.c, false) == 0, "child did not exit cleanly");
	printf("PASS close-wakes: closing the last uffd woke the blocked write and "
	       "dropped protection\n");
	return 0;
fail:
	fact_end(&f, true);
	return -1;
}

/* A write by the kernel on the target's behalf (read(2) into protected memory) waits for us and
 * then succeeds: this is what UFFD_USER_MODE_ONLY would turn into EFAULT. */
static int fact_kernel_write(int devfd)
{
	const char data[8] = "kernel!";
	struct report r;
	struct fact f;
	uint64_t addr;

	CHECK(fact_start(&f, devfd, WP_FEATURES) == 0, "setup");
	addr = protected_region(&f, OP_MAP_ANON, 1, true);
	CHECK(addr, "protected region");
	CHECK(write(f.c.data, data, sizeof(data)) == sizeof(data), "pipe");
	CHECK(child_send(&f.c, OP_READ_PIPE, (long)addr, sizeof(data)) == 0, "command");
	CHECK(expect_wp_fault(f.uffd, addr) == 0, "no WP fault for the kernel's write");
	CHECK(child_wait(&f.c, QUIET_MS, &r) == -ETIMEDOUT, "read(2) did not wait");
	CHECK(proc_writeprotect(f.uffd, addr, PAGE, false) == 0, "unprotect");
	CHECK(child_wait(&f.c, TIMEOUT_MS, &r) == 0, "read(2) did not finish");
	CHECK(r.ret == sizeof(data), "read(2): %ld, errno %d", r.ret, r.err);
	CHECK(proc_peek(f.c.pid, addr) == 'k', "data not in the buffer");
	printf("PASS kernel-write: read(2) into a protected page waited, then returned %ld\n",
	       r.ret);
	fact_end(&f, false);
	return 0;
fail:
	fact_end(&f, true);
	return -1;
}

static int pagemap_present(pid_t pid, uint64_t addr, bool *ret)
{
	char path[64];
	uint64_t entry;
	int fd;
	ssize_t n;

	test_proc_path(path, sizeof(path), pid, "pagemap");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = pread(fd, &entry, sizeof(entry), (off_t)(addr / PAGE * sizeof(entry)));
	close(fd);
	if (n != sizeof(entry))
		return -EIO;
	*ret = entry & PM_PRESENT;
	return 0;
}

/* WP_UNPOPULATED: the first write to a never-touched anonymous page faults too. */
static int fact_wp_unpopulated(int devfd)
{
	struct report r;
	struct fact f;
	uint64_t addr;
	bool present = true;

	CHECK(fact_start(&f, devfd, WP_FEATURES) == 0, "setup");
	addr = protected_region(&f, OP_MAP_ANON, 4, false);
	CHECK(addr, "protected region");
	CHECK(pagemap_present(f.c.pid, addr + PAGE, &present) == 0 && !present,
	      "page was populated before the write");
	CHECK(child_send(&f.c, OP_WRITE, (long)(addr + PAGE), 'u') == 0, "command");
	CHECK(expect_wp_fault(f.uffd, addr + PAGE) == 0, "no WP fault on a never-touched page");
	CHECK(child_wait(&f.c, QUIET_MS, &r) == -ETIMEDOUT, "write did not wait");
	CHECK(proc_writeprotect(f.uffd, addr + PAGE, PAGE, false) == 0, "unprotect");
	CHECK(child_wait(&f.c, TIMEOUT_MS, &r) == 0 && r.v == 'u', "write did not finish");
	printf("PASS wp-unpopulated: first write to a never-touched page faulted\n");
	fact_end(&f, false);
	return 0;
fail:
	fact_end(&f, true);
	return -1;
}

/* PAGEMAP_SCAN on another process's pagemap: PRESENT exactly for the pages it wrote. */
static int fact_pagemap_scan(void)
{
	struct page_region regions[8];
	struct pm_scan_arg arg;
	struct child c = {.pid = -1};
	char path[64];
	long addr, n;
	int fd = -EBADF;

	CHECK(child_start(&c) == 0, "fork");
	addr = child_call(&c, OP_MAP_ANON, 4, 0);
	CHECK(addr > 0, "map");
	CHECK(child_call(&c, OP_WRITE, addr, 'p') == 0, "write page 0");
	CHECK(child_call(&c, OP_WRITE, addr + 2 * PAGE, 'p') == 0, "write page 2");
	test_proc_path(path, sizeof(path), c.pid, "pagemap");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0, "open %s: %m", path);
	arg = (struct pm_scan_arg){
	    .size = sizeof(arg),
	    .start = (uint64_t)addr,
	    .end = (uint64_t)addr + 4 * PAGE,
	    .vec = (uint64_t)(uintptr_t)regions,
	    .vec_len = 8,
	    .category_mask = PAGE_IS_PRESENT,
	    .return_mask = PAGE_IS_PRESENT,
	};
	n = ioctl(fd, PAGEMAP_SCAN, &arg);
	CHECK(n == 2, "PAGEMAP_SCAN returned %ld regions (%m)", n);
	CHECK(regions[0].start == (uint64_t)addr && regions[0].end == (uint64_t)addr + PAGE &&
		  regions[1].start == (uint64_t)addr + 2 * PAGE &&
		  regions[1].end == (uint64_t)addr + 3 * PAGE,
	      "wrong regions");
	CHECK(arg.walk_end == (uint64_t)addr + 4 * PAGE, "walk ended early");
	close(fd);
	CHECK(child_finish(&c, false) == 0, "child did not exit cleanly");
	printf("PASS pagemap-scan: pages 0 and 2 PRESENT, 1 and 3 not\n");
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	child_finish(&c, true);
	return -1;
}

/* shmem (memfd, MAP_SHARED) registers for WP given WP_HUGETLBFS_SHMEM, and faults. */
static int fact_shmem(int devfd)
{
	struct report r;
	struct fact f;
	uint64_t addr;

	CHECK(fact_start(&f, devfd, WP_FEATURES) == 0, "setup");
	addr = protected_region(&f, OP_MAP_SHMEM, 2, true);
	CHECK(addr, "memfd region not registered for WP");
	CHECK(child_send(&f.c, OP_WRITE, (long)addr, 's') == 0, "command");
	CHECK(expect_wp_fault(f.uffd, addr) == 0, "no WP fault on shmem");
	CHECK(proc_writeprotect(f.uffd, addr, PAGE, false) == 0, "unprotect");
	CHECK(child_wait(&f.c, TIMEOUT_MS, &r) == 0 && r.v == 's', "write did not finish");
	printf("PASS shmem-wp: memfd MAP_SHARED registered, protected and faulted\n");
	fact_end(&f, false);
	return 0;
fail:
	fact_end(&f, true);
	return -1;
}

/* A private file mapping cannot be registered for WP: EINVAL. */
static int fact_private_file(int devfd)
{
	struct statfs sfs;
	struct fact f;
	long addr;
	int r;

	if (statfs("/proc/self/exe", &sfs) == 0 &&
	    (sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC)) {
		printf("SKIP private-file-einval: the test binary is on tmpfs, which is shmem\n");
		return 0;
	}
	CHECK(fact_start(&f, devfd, WP_FEATURES) == 0, "setup");
	addr = child_call(&f.c, OP_MAP_FILE, 1, 0);
	CHECK(addr > 0, "map the file: %s", strerror((int)-addr));
	r = register_wp(f.uffd, (uint64_t)addr, PAGE);
	CHECK(r == -EINVAL, "UFFDIO_REGISTER WP on a private file mapping: %s", strerror(-r));
	printf("PASS private-file-einval: WP registration refused with EINVAL\n");
	fact_end(&f, false);
	return 0;
fail:
	fact_end(&f, true);
	return -1;
}

/* Without UFFD_FEATURE_EVENT_FORK the child of a fork is not protected; the parent still is. */
static int fact_fork(int devfd)
{
	struct report r;
	struct fact f;
	uint64_t addr;

	CHECK(fact_start(&f, devfd, WP_FEATURES) == 0, "setup");
	addr = protected_region(&f, OP_MAP_ANON, 1, true);
	CHECK(addr, "protected region");
	CHECK(child_send(&f.c, OP_FORK_WRITE, (long)addr, 'f') == 0, "command");
	CHECK(child_wait(&f.c, TIMEOUT_MS, &r) == 0 && r.v == 'f', "fork child's write blocked");
	CHECK(child_wait(&f.c, TIMEOUT_MS, &r) == 0 && r.ret == 0, "fork child: status %ld", r.ret);
	CHECK(no_message(f.uffd), "the fork child's write faulted");
	CHECK(proc_peek(f.c.pid, addr) == 'a', "fork child wrote into the parent");
	CHECK(child_send(&f.c, OP_WRITE, (long)addr, 'g') == 0, "command");
	CHECK(expect_wp_fault(f.uffd, addr) == 0, "the parent's write did not fault");
	CHECK(child_wait(&f.c, QUIET_MS, &r) == -ETIMEDOUT, "parent's write did not wait");
	CHECK(proc_writeprotect(f.uffd, addr, PAGE, false) == 0, "unprotect");
	CHECK(child_wait(&f.c, TIMEOUT_MS, &r) == 0 && r.v == 'g', "parent's write lost");
	printf("PASS fork-child-unprotected: the fork child wrote freely, the parent faulted\n");
	fact_end(&f, false);
	return 0;
fail:
	fact_end(&f, true);
	return -1;
}

int main(void)
{
	struct uffdio_api api = {.api = UFFD_API};
	int devfd, probe, failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	devfd = proc_devuffd_or_skip();
	if (devfd < 0)
		return 77;
	probe = ioctl(devfd, USERFAULTFD_IOC_NEW, O_CLOEXEC);
	if (probe < 0 || ioctl(probe, UFFDIO_API, &api) < 0 ||
	    (api.features & WP_FEATURES) != WP_FEATURES) {
		printf("SKIP: this kernel lacks WP_UNPOPULATED or WP_HUGETLBFS_SHMEM\n");
		return 77;
	}
	close(probe);
	failed |= fact_api_once(devfd);
	failed |= fact_close_wakes(devfd);
	failed |= fact_kernel_write(devfd);
	failed |= fact_wp_unpopulated(devfd);
	failed |= fact_pagemap_scan();
	failed |= fact_shmem(devfd);
	failed |= fact_private_file(devfd);
	failed |= fact_fork(devfd);
	close(devfd);
	return failed ? 1 : 0;
}
