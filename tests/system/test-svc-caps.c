/* SPDX-License-Identifier: MIT */
/*
 * svc_caps_drop() leaves exactly the documented capabilities, and they are enough: after the
 * drop (staying root, and switching to a dedicated user this test creates and removes), a real
 * snapshot with the engine of a workload running as root and of one running as nobody passes
 * uffsnap-check and leaves the target unharmed. Each kept capability the engine needs on every
 * snapshot is also shown needed: without it the snapshot fails, the target still unharmed.
 *
 * usage: test-svc-caps WORKLOAD CHECK
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "snap-harness.h"
#include "engine/snapshot.h"
#include "sys/caps.h"
#include "sys-test-util.h"

/* What sys/caps.c documents: CAP_CHOWN (0), CAP_DAC_READ_SEARCH (2), CAP_KILL (5),
 * CAP_SYS_PTRACE (19). */
#define KEPT_MASK                                                                                  \
	((1ull << CAP_CHOWN) | (1ull << CAP_DAC_READ_SEARCH) | (1ull << CAP_KILL) |                \
	 (1ull << CAP_SYS_PTRACE))

static char test_user[32];

struct scase {
	const char *name;
	bool as_user;	      /* the daemon switches to test_user */
	const char *target;   /* the workload's user: NULL (root) or "nobody" */
	cap_value_t withhold; /* also dropped after svc_caps_drop(); -1: none */
	bool expect_ok;
};

/* The daemon's side, in a child: drop, check /proc/self/status, snapshot into image. */
static int daemon_child(const struct scase *c, pid_t target, const char *image)
{
	struct snap_opts o = {.devuffd_fd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC),
			      .pidfd = -EBADF};
	struct svc_caps_error cerr = {{0}};
	struct snap_error serr = {{0}};
	struct snap_stats st;
	struct img_sink *sink = NULL;
	int fd, r;

	if (o.devuffd_fd < 0)
		return fprintf(stderr, "FAIL: open /dev/userfaultfd: %m\n"), 1;
	r = svc_caps_drop(c->as_user ? test_user : NULL, &cerr);
	if (r < 0)
		return fprintf(stderr, "FAIL: svc_caps_drop: %s\n", cerr.msg), 1;
	if (systest_check_caps(KEPT_MASK, c->as_user ? test_user : "root") < 0)
		return 1;
	if (c->withhold >= 0 && systest_lower_cap(c->withhold) < 0)
		return 1;
	fd = open(image, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return fprintf(stderr, "FAIL: the dropped daemon cannot create %s: %m\n", image), 1;
	r = img_sink_fd_new(fd, &sink);
	if (r >= 0)
		r = snapshot_take(target, &o, sink, &st, &serr);
	img_sink_free(sink);
	close(fd);
	if (r < 0)
		fprintf(stderr, "%s: snapshot: %s\n", c->expect_ok ? "FAIL" : "expected",
			serr.msg[0] ? serr.msg : strerror(-r));
	return r < 0;
}

/* Images go where the daemon's user may write: its own directory, or root's. */
static int run_case(const char *workload, const char *check, const struct scase *c,
		    const char *userdir, const char *rootdir)
{
	const char *dir = c->as_user ? userdir : rootdir;
	const char *args[10] = {"--threads", "4", "--kind", "anon", "--pages", "128"};
	char image[256], layout[256];
	struct wl_proc *w = NULL;
	int r, rc = 1;
	pid_t d;

	if (c->target) {
		args[6] = "--as-user";
		args[7] = c->target;
	}
	snprintf(image, sizeof(image), "%s/%s.img", dir, c->name);
	snprintf(layout, sizeof(layout), "%s/%s.layout", dir, c->name);
	r = wl_proc_spawn(workload, args, &w);
	if (r < 0) {
		fprintf(stderr, "FAIL %s: cannot start the workload: %s\n", c->name, strerror(-r));
		goto out;
	}
	wl_write_file(layout, w->layout_json);
	d = fork();
	if (d == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		fflush(stderr);
		_exit(daemon_child(c, w->pid, image));
	}
	r = snap_wait(d);
	if (c->expect_ok && r != 0) {
		fprintf(stderr, "FAIL %s: the snapshot after the drop failed\n", c->name);
		goto out;
	}
	if (!c->expect_ok && r == 0) {
		fprintf(stderr, "FAIL %s: the snapshot worked without %s: is it really needed?\n",
			c->name, systest_cap_name(c->withhold));
		goto out;
	}
	if (c->expect_ok && wl_run_check(check, image, layout) != 0) {
		fprintf(stderr, "FAIL %s: the image is not one instant\n", c->name);
		goto out;
	}
	if (snap_target_unharmed(w) < 0)
		goto out;
	printf("ok %s\n", c->name);
	rc = 0;
out:
	wl_proc_free(w);
	unlink(image);
	unlink(layout);
	return rc;
}

static const struct scase cases[] = {
    {"root-daemon-root-target", false, NULL, -1, true},
    {"root-daemon-nobody-target", false, "nobody", -1, true},
    {"user-daemon-root-target", true, NULL, -1, true},
    {"user-daemon-nobody-target", true, "nobody", -1, true},
    {"user-daemon-no-ptrace", true, "nobody", CAP_SYS_PTRACE, false},
    {"user-daemon-no-dac-read-search-root", true, NULL, CAP_DAC_READ_SEARCH, false},
    {"user-daemon-no-dac-read-search-nobody", true, "nobody", CAP_DAC_READ_SEARCH, false},
};

static void cleanup_user(void)
{
	systest_user_remove(test_user);
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/uffsnap-caps-XXXXXX", rootdir[] = "/tmp/uffsnap-caps-XXXXXX";
	int failed = 0, passed = 0;
	struct passwd *pw;

	if (argc < 3) {
		fprintf(stderr, "usage: %s WORKLOAD CHECK\n", argv[0]);
		return 2;
	}
	if (getuid() != 0) {
		printf("SKIP: needs root (creates a user, opens /dev/userfaultfd, drops caps)\n");
		return 77;
	}
	snprintf(test_user, sizeof(test_user), "uffsnap-t%d", (int)getpid());
	if (systest_user_add(test_user) < 0) {
		printf("SKIP: cannot create the test user %s (useradd)\n", test_user);
		return 77;
	}
	systest_on_exit(cleanup_user);
	pw = getpwnam(test_user);
	if (!pw || !mkdtemp(dir) || chown(dir, pw->pw_uid, pw->pw_gid) < 0 || !mkdtemp(rootdir)) {
		fprintf(stderr, "FAIL: cannot prepare %s for %s: %m\n", dir, test_user);
		return 1;
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = run_case(argv[1], argv[2], &cases[i], dir, rootdir);

		failed += r != 0;
		passed += r == 0;
	}
	rmdir(dir);
	rmdir(rootdir);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
