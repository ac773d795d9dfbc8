/* SPDX-License-Identifier: MIT */
/*
 * target_uffd_create() on a root child, a child running as nobody and a child whose seccomp
 * filter denies userfaultfd(2): the test gets a userfaultfd bound to the child's mm, and with
 * it write-protects a buffer of the child, sees the child's write arrive as a WP fault while
 * the child is blocked, unprotects and sees the child proceed. The injection leaves no fd and
 * no mapping behind in the child.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sys/linux-compat.h"
#include "target/attach.h"
#include "target/inject.h"
#include "target-proc.h"
#include "target/uffd.h"
#include "test-check.h"

#define NOBODY	     65534
#define PAGE	     4096
#define NPAGES	     4
#define WRITE_PAGE   2
#define WRITE_OFFSET 100
#define QUIET_MS     300
#define TIMEOUT_MS   20000
#define LIST_LEN     8192

#define WANT_FEATURES                                                                              \
	(UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_WP_UNPOPULATED |                           \
	 UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP)


enum mode { MODE_ROOT, MODE_NOBODY, MODE_SECCOMP };
static const char *const mode_names[] = {"root", "nobody", "seccomp"};

enum { REP_READY = 1, REP_WROTE };

struct report {
	int what;
	int err;
	long v;
};

struct child {
	pid_t pid;
	int cmd, rep;
};

static void report(int fd, int what, int err, long v)
{
	struct report r = {.what = what, .err = err, .v = v};

	if (write(fd, &r, sizeof(r)) != sizeof(r))
		_exit(3);
}

/* Raw BPF: userfaultfd(2) fails with EPERM, everything else is allowed. */
static int deny_userfaultfd(void)
{
	struct sock_filter filter[] = {
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_userfaultfd, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof(filter) / sizeof(filter[0]), .filter = filter};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0 ? -errno : 0;
}

static void child_main(enum mode mode, int cmd, int rep)
{
	volatile char *buf;
	long fd;
	char c;
	int probe = 0;

	if (mode == MODE_NOBODY &&
	    (setgroups(0, NULL) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
	     setresuid(NOBODY, NOBODY, NOBODY) < 0))
		_exit(2);
	if (mode == MODE_SECCOMP && deny_userfaultfd() < 0)
		_exit(2);
	/* What the target itself may do: for nobody and seccomp, not userfaultfd(2). */
	fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		probe = errno;
	else
		close((int)fd);
	buf = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		_exit(2);
	madvise((void *)buf, NPAGES * PAGE, MADV_NOHUGEPAGE);
	for (int i = 0; i < NPAGES; i++)
		buf[i * PAGE + WRITE_OFFSET] = 'a';
	report(rep, REP_READY, probe, (long)buf);
	while (read(cmd, &c, 1) == 1) {
		if (c == 'Q')
			_exit(0);
		buf[WRITE_PAGE * PAGE + WRITE_OFFSET] = c;
		report(rep, REP_WROTE, 0, c);
	}
	_exit(4);
}

static int child_start(struct child *c, enum mode mode)
{
	int cmd[2], rep[2];

	if (pipe2(cmd, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0)
		return -errno;
	c->pid = fork();
	if (c->pid < 0)
		return -errno;
	if (c->pid == 0)
		child_main(mode, cmd[0], rep[1]);
	close(cmd[0]);
	close(rep[1]);
	c->cmd = cmd[1];
	c->rep = rep[0];
	return 0;
}

static int child_finish(struct child *c, bool kill_it)
{
	int status = -1;

	if (kill_it)
		kill(c->pid, SIGKILL);
	else if (write(c->cmd, "Q", 1) != 1)
		kill(c->pid, SIGKILL);
	waitpid(c->pid, &status, 0);
	close(c->cmd);
	close(c->rep);
	return status;
}

static int report_read(struct child *c, int timeout_ms, struct report *ret)
{
	struct pollfd p = {.fd = c->rep, .events = POLLIN};
	int n = poll(&p, 1, timeout_ms);

	if (n <= 0)
		return n == 0 ? -ETIMEDOUT : -errno;
	return read(c->rep, ret, sizeof(*ret)) == sizeof(*ret) ? 0 : -EPIPE;
}

/* Which features the kernel offers: UFFDIO_API with none on a throwaway context. */
static int offered_features(int devfd, uint64_t *ret)
{
	struct uffdio_api api = {.api = UFFD_API};
	int fd = ioctl(devfd, USERFAULTFD_IOC_NEW, O_CLOEXEC);
	int r;

	if (fd < 0)
		return -errno;
	r = ioctl(fd, UFFDIO_API, &api) < 0 ? -errno : 0;
	close(fd);
	*ret = api.features;
	return r;
}

static int read_msg(int uffd, struct uffd_msg *msg)
{
	struct pollfd p = {.fd = uffd, .events = POLLIN};

	if (poll(&p, 1, TIMEOUT_MS) != 1)
		return -ETIMEDOUT;
	return read(uffd, msg, sizeof(*msg)) == sizeof(*msg) ? 0 : -errno;
}

/* What the injection could leave behind: the child's fds and mappings. */
struct leftovers {
	char fds[LIST_LEN];
	char maps[1 << 16];
};

static int leftovers_read(pid_t pid, struct leftovers *ret)
{
	if (proc_fds(pid, ret->fds, sizeof(ret->fds)) < 0)
		return -1;
	return proc_maps(pid, ret->maps, sizeof(ret->maps));
}

static int leftovers_same(pid_t pid, const struct leftovers *before)
{
	static struct leftovers now;

	CHECK(leftovers_read(pid, &now) == 0, "/proc/%d", pid);
	CHECK(!strcmp(before->fds, now.fds), "fds left in the target:\n%s---\n%s", before->fds,
	      now.fds);
	CHECK(!strcmp(before->maps, now.maps), "mappings left in the target:\n%s---\n%s",
	      before->maps, now.maps);
	return 0;
fail:
	return -1;
}

/* Attach, create the userfaultfd, check nothing is left in the child, detach. */
static int get_uffd(pid_t pid, int devfd, int *ret_uffd)
{
	static struct leftovers before;
	struct target *t = NULL;
	struct target_error err;
	char link[64], what[64] = "";
	int uffd = -EBADF, r;

	CHECK(leftovers_read(pid, &before) == 0, "/proc/%d", pid);
	CHECK(target_attach(pid, &t, &err) == 0, "attach: %s", err.msg);
	r = target_uffd_create(t, devfd, &uffd);
	CHECK(r == 0, "target_uffd_create: %s", strerror(-r));
	CHECK(leftovers_same(pid, &before) == 0, "leftovers");
	snprintf(link, sizeof(link), "/proc/self/fd/%d", uffd);
	CHECK(readlink(link, what, sizeof(what) - 1) > 0 && strstr(what, "userfaultfd"),
	      "fd %d is %s", uffd, what);
	CHECK(fcntl(uffd, F_GETFD) == FD_CLOEXEC, "not O_CLOEXEC");
	CHECK(target_detach(t) == 0, "detach");
	target_free(t);
	*ret_uffd = uffd;
	return 0;
fail:
	target_free(t);
	if (uffd >= 0)
		close(uffd);
	return -1;
}

/* A failure midway (no fd to send; an fd that is not /dev/userfaultfd, so the ioctl in the
 * target fails) undoes everything in the target, and a retry then works. */
static int test_failure_undone(int devfd)
{
	static struct leftovers before;
	struct child c = {.pid = -1};
	struct target *t = NULL;
	struct target_error err;
	struct report rep;
	int nullfd = open("/dev/null", O_RDWR | O_CLOEXEC), uffd = -EBADF, r;

	CHECK(nullfd >= 0 && child_start(&c, MODE_ROOT) == 0, "setup");
	CHECK(report_read(&c, TIMEOUT_MS, &rep) == 0 && rep.what == REP_READY, "not ready");
	CHECK(leftovers_read(c.pid, &before) == 0, "/proc/%d", c.pid);
	CHECK(target_attach(c.pid, &t, &err) == 0, "attach: %s", err.msg);
	r = target_uffd_create(t, -EBADF, &uffd);
	CHECK(r == -EBADF && uffd == -EBADF, "no fd to send: %s", strerror(-r));
	CHECK(leftovers_same(c.pid, &before) == 0, "after the failed send");
	r = target_uffd_create(t, nullfd, &uffd);
	CHECK(r == -ENOTTY && uffd == -EBADF, "/dev/null: %s", strerror(-r));
	CHECK(leftovers_same(c.pid, &before) == 0, "after the failed ioctl");
	CHECK(target_uffd_create(t, devfd, &uffd) == 0, "retry");
	CHECK(leftovers_same(c.pid, &before) == 0, "after the retry");
	CHECK(target_detach(t) == 0, "detach");
	target_free(t);
	close(uffd);
	close(nullfd);
	CHECK(child_finish(&c, false) == 0, "child did not exit cleanly");
	printf("PASS failure-undone: failed sends and ioctls left nothing in the target\n");
	return 0;
fail:
	target_free(t);
	if (uffd >= 0)
		close(uffd);
	if (nullfd >= 0)
		close(nullfd);
	if (c.pid > 0)
		child_finish(&c, true);
	return -1;
}

static int run_mode(enum mode mode, int devfd, uint64_t offered)
{
	struct uffdio_api api = {.api = UFFD_API, .features = WANT_FEATURES & offered};
	struct uffdio_register reg = {.mode = UFFDIO_REGISTER_MODE_WP};
	struct child c = {.pid = -1};
	struct uffd_msg msg;
	struct report r;
	uint64_t buf, fault;
	int uffd = -EBADF;

	CHECK(child_start(&c, mode) == 0, "fork");
	CHECK(report_read(&c, TIMEOUT_MS, &r) == 0 && r.what == REP_READY, "child not ready");
	buf = (uint64_t)r.v;
	if (mode != MODE_ROOT)
		CHECK(r.err == EPERM, "%s child's own userfaultfd(2): errno %d, want EPERM",
		      mode_names[mode], r.err);
	CHECK(get_uffd(c.pid, devfd, &uffd) == 0, "%s: no userfaultfd", mode_names[mode]);
	CHECK(ioctl(uffd, UFFDIO_API, &api) == 0, "UFFDIO_API: %m");
	reg.range = (struct uffdio_range){.start = buf, .len = NPAGES * PAGE};
	CHECK(ioctl(uffd, UFFDIO_REGISTER, &reg) == 0, "UFFDIO_REGISTER WP: %m");
	CHECK(reg.ioctls & (1ULL << _UFFDIO_WRITEPROTECT), "no UFFDIO_WRITEPROTECT");
	CHECK(proc_writeprotect(uffd, buf, NPAGES * PAGE, true) == 0, "write-protect");

	CHECK(write(c.cmd, "z", 1) == 1, "command");
	CHECK(read_msg(uffd, &msg) == 0, "no fault message");
	fault = buf + WRITE_PAGE * PAGE;
	CHECK(msg.event == UFFD_EVENT_PAGEFAULT &&
		  (msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP),
	      "event %u flags %llx", msg.event, (unsigned long long)msg.arg.pagefault.flags);
	CHECK((msg.arg.pagefault.address & ~(uint64_t)(PAGE - 1)) == fault, "fault at %llx",
	      (unsigned long long)msg.arg.pagefault.address);
	CHECK(report_read(&c, QUIET_MS, &r) == -ETIMEDOUT, "child not blocked by the fault");
	CHECK(proc_peek(c.pid, fault + WRITE_OFFSET) == 'a', "write landed while protected");
	CHECK(proc_writeprotect(uffd, fault, PAGE, false) == 0, "unprotect");
	CHECK(report_read(&c, TIMEOUT_MS, &r) == 0 && r.what == REP_WROTE, "child did not resume");
	CHECK(proc_peek(c.pid, fault + WRITE_OFFSET) == 'z', "write lost");
	CHECK(child_finish(&c, false) == 0, "child did not exit cleanly");
	close(uffd);
	printf("PASS %s: WP fault at %#llx seen while the child waited, released by unprotect\n",
	       mode_names[mode], (unsigned long long)fault);
	return 0;
fail:
	if (uffd >= 0)
		close(uffd);
	if (c.pid > 0)
		child_finish(&c, true);
	return -1;
}

int main(void)
{
	uint64_t offered = 0;
	int devfd, failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	devfd = proc_devuffd_or_skip();
	if (devfd < 0)
		return 77;
	if (offered_features(devfd, &offered) < 0 || !(offered & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
		printf("SKIP: this kernel offers no userfaultfd write-protection\n");
		return 77;
	}
	printf("offered: WP_HUGETLBFS_SHMEM=%d WP_UNPOPULATED=%d EVENT_REMAP=%d "
	       "EVENT_REMOVE=%d EVENT_UNMAP=%d\n",
	       !!(offered & UFFD_FEATURE_WP_HUGETLBFS_SHMEM),
	       !!(offered & UFFD_FEATURE_WP_UNPOPULATED), !!(offered & UFFD_FEATURE_EVENT_REMAP),
	       !!(offered & UFFD_FEATURE_EVENT_REMOVE), !!(offered & UFFD_FEATURE_EVENT_UNMAP));
	for (int m = MODE_ROOT; m <= MODE_SECCOMP; m++)
		failed |= run_mode(m, devfd, offered);
	failed |= test_failure_undone(devfd);
	close(devfd);
	return failed ? 1 : 0;
}
