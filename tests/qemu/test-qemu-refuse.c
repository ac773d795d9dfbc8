/* SPDX-License-Identifier: MIT */
/*
 * `uffsnapd --qemu` against real QEMUs that it must refuse, or lose midway, and the guest is
 * never left paused by us: its whole process group killed (SIGKILL) or interrupted (SIGINT, as
 * a terminal's Ctrl-C; SIGTERM) while armed, while the guest is stopped, and once the guest
 * runs again during the background copy, uffsnapd's guardian or uffsnapd resumes it and puts
 * the migration capabilities back. No guest kernel is needed: these QEMUs run their firmware
 * only (it loops, looking for something to boot), which is a running guest as far as QMP and
 * the RAM are concerned. And one snapshot streamed to a receiver (--to) instead of a file.
 *
 * usage: test-qemu-refuse UFFSNAPD_TEST (uffsnapd with pause points: tests/snapshot)
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qmp.h"
#include "test-check.h"
#include "uffsnap/image.h"

#define QEMU "/usr/bin/qemu-system-x86_64"
#define WAIT_MAX_MS 120000 /* a hang guard for polling loops, never a measurement */

static char dir[] = "/tmp/uffsnap-qemu-refuse-XXXXXX";
static const char *uffsnapd;

struct qemu {
	pid_t pid;
	char sock[128];
};

/* Starts QEMU with its QMP socket and extra arguments (NULL-ended). */
static int qemu_start(struct qemu *q, const char *name, const char *const *extra)
{
	const char *argv[40] = {QEMU, "-nodefaults", "-no-user-config", "-display", "none",
				"-accel", "tcg", "-qmp"};
	char qmparg[200];
	int n = 8, devnull;

	snprintf(q->sock, sizeof(q->sock), "%s/%s.sock", dir, name);
	snprintf(qmparg, sizeof(qmparg), "unix:%s,server=on,wait=off", q->sock);
	argv[n++] = qmparg;
	while (*extra && n < 38)
		argv[n++] = *extra++;
	argv[n] = NULL;
	q->pid = fork();
	if (q->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		devnull = open("/dev/null", O_WRONLY);
		dup2(devnull, 1);
		execv(QEMU, (char **)argv);
		_exit(127);
	}
	for (int i = 0; i < WAIT_MAX_MS / 10; i++) {
		if (test_unix_listening(q->sock)) /* a QMP connection is accepted */
			return 0;
		if (waitpid(q->pid, NULL, WNOHANG) == q->pid)
			return -ESRCH;
		test_sleep_ms(10);
	}
	return -ETIMEDOUT;
}

static void qemu_kill(struct qemu *q)
{
	if (q->pid > 0) {
		kill(q->pid, SIGKILL);
		waitpid(q->pid, NULL, 0);
		q->pid = 0;
	}
	unlink(q->sock);
}

/* One QMP command's "return" (status string, or a capability's state) over a new connection. */
static int qmp_status(const struct qemu *q, char *st, size_t len)
{
	char msg[256];
	struct qmp *c = NULL;
	json_t *r = NULL;
	int k = qmp_open_path(q->sock, 60000, &c, msg, sizeof(msg));

	if (k >= 0)
		k = qmp_exec(c, "query-status", NULL, -1, &r, msg, sizeof(msg));
	if (k >= 0)
		snprintf(st, len, "%s", json_string_value(json_object_get(r, "status")));
	else
		snprintf(st, len, "error: %.40s", msg);
	json_decref(r);
	qmp_close(c);
	return k;
}

static int qmp_cap(const struct qemu *q, const char *name)
{
	char msg[256];
	struct qmp *c = NULL;
	json_t *r = NULL, *e;
	size_t i;
	int k = qmp_open_path(q->sock, 60000, &c, msg, sizeof(msg)), on = -1;

	if (k >= 0)
		k = qmp_exec(c, "query-migrate-capabilities", NULL, -1, &r, msg, sizeof(msg));
	json_array_foreach(r, i, e)
		if (!strcmp(json_string_value(json_object_get(e, "capability")), name))
			on = json_is_true(json_object_get(e, "state"));
	json_decref(r);
	qmp_close(c);
	return on;
}

static int qmp_do(const struct qemu *q, const char *cmd, json_t *args)
{
	char msg[256];
	struct qmp *c = NULL;
	int k = qmp_open_path(q->sock, 60000, &c, msg, sizeof(msg));

	if (k >= 0)
		k = qmp_exec(c, cmd, args, -1, NULL, msg, sizeof(msg));
	if (k < 0)
		printf("  QMP %s: %s\n", cmd, msg);
	json_decref(args);
	qmp_close(c);
	return k;
}

/* Waits for uffsnapd pid; its exit status (128 + signal if killed), its stderr in err. */
static int finish(pid_t pid, char *err, size_t errlen)
{
	char errpath[160];
	int status, fd;

	waitpid(pid, &status, 0);
	snprintf(errpath, sizeof(errpath), "%s/stderr", dir);
	fd = open(errpath, O_RDONLY);
	err[0] = 0;
	if (fd >= 0) {
		ssize_t n = read(fd, err, errlen - 1);

		err[n > 0 ? n : 0] = 0;
		close(fd);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Runs uffsnapd --qemu SOCK --output OUT [env pause]; waits unless ret_pid is given. */
static int run(const struct qemu *q, const char *out, const char *pause, pid_t *ret_pid,
	       char *err, size_t errlen)
{
	char errpath[160];
	pid_t pid;
	int fd;

	snprintf(errpath, sizeof(errpath), "%s/stderr", dir);
	pid = fork();
	if (pid == 0) {
		fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 2);
		if (pause)
			setenv("UFFSNAPD_TEST_PAUSE", pause, 1);
		setpgid(0, 0); /* a group of its own, as a terminal's foreground job */
		execl(uffsnapd, uffsnapd, "--qemu", q->sock, "--output", out, "--quiet",
		      (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid); /* either of us may come first */
	if (ret_pid) {
		*ret_pid = pid;
		return 0;
	}
	return finish(pid, err, errlen);
}

static bool wait_file(const char *path)
{
	for (int i = 0; i < WAIT_MAX_MS / 10; i++) {
		if (access(path, F_OK) == 0)
			return true;
		test_sleep_ms(10);
	}
	return false;
}

/* The guest runs again (resumed by someone: polled, with a hang guard). */
static bool wait_running(const struct qemu *q, char *st, size_t len)
{
	for (int i = 0; i < WAIT_MAX_MS / 50; i++) {
		if (qmp_status(q, st, len) >= 0 && !strcmp(st, "running"))
			return true;
		test_sleep_ms(50);
	}
	return false;
}

/* A unix socket whose server answers as no QEMU does (an HTTP error line), in a child. */
static int not_qemu_start(struct qemu *q)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), c;

	snprintf(q->sock, sizeof(q->sock), "%s/notqemu.sock", dir);
	memcpy(a.sun_path, q->sock, strlen(q->sock) + 1); /* dir is short: /tmp/... */
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4) < 0) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	q->pid = fork();
	if (q->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		while ((c = accept(fd, NULL, NULL)) >= 0) {
			if (write(c, "HTTP/1.1 400 Bad Request\r\n", 26) < 0) {
				/* the client left first */
			}
			sleep(1);
			close(c);
		}
		_exit(0);
	}
	close(fd);
	return q->pid > 0 ? 0 : -ECHILD;
}

static const char *const shared[] = {
	"-machine", "pc-i440fx-7.2,memory-backend=ram0", "-m", "128M", "-object",
	"memory-backend-memfd,id=ram0,size=128M,share=on", NULL};

/* Bad input: one clear line, nothing written, the guest as it was. */
static int test_refusals(void)
{
	static const char *const plain[] = {"-machine", "pc-i440fx-7.2", "-m", "64M", NULL};
	static const char *const unshared[] = {
	    "-machine", "pc-i440fx-7.2,memory-backend=mem1", "-m", "64M", "-object",
	    "memory-backend-memfd,id=mem1,size=64M,share=off", NULL};
	static const char *const paused[] = {
	    "-S", "-machine", "pc-i440fx-7.2,memory-backend=ram0", "-m", "64M", "-object",
	    "memory-backend-memfd,id=ram0,size=64M,share=on", NULL};
	static const char *const named[] = {
	    "-name", "gu\xff" "est", "-machine", "pc-i440fx-7.2,memory-backend=ram0", "-m", "64M",
	    "-object", "memory-backend-memfd,id=ram0,size=64M,share=on", NULL};
	struct qemu q = {0};
	char out[160], err[1024], st[64];
	int rc;

	snprintf(out, sizeof(out), "%s/refused.img", dir);

	CHECK(qemu_start(&q, "plain", plain) == 0, "QEMU with plain -m");
	rc = run(&q, out, NULL, NULL, err, sizeof(err));
	CHECK(rc == 1 && strstr(err, "'pc.ram'") && strstr(err, "share=on") &&
		      strstr(err, "-machine memory-backend="),
	      "plain -m: rc %d: %s", rc, err);
	CHECK(access(out, F_OK) < 0, "an image was written");
	CHECK(qmp_status(&q, st, sizeof(st)) >= 0 && !strcmp(st, "running"), "status %s", st);
	qemu_kill(&q);

	CHECK(qemu_start(&q, "unshared", unshared) == 0, "QEMU with share=off");
	rc = run(&q, out, NULL, NULL, err, sizeof(err));
	CHECK(rc == 1 && strstr(err, "memory backend 'mem1'") && strstr(err, "share=on"),
	      "share=off: rc %d: %s", rc, err);
	qemu_kill(&q);

	/* a name QEMU takes but JSON cannot hold: refused, never recorded wrong */
	CHECK(qemu_start(&q, "name", named) == 0, "QEMU with a name that is not UTF-8");
	rc = run(&q, out, NULL, NULL, err, sizeof(err));
	CHECK(rc == 1 && strstr(err, "argument") && strstr(err, "not UTF-8"),
	      "-name not UTF-8: rc %d: %s", rc, err);
	CHECK(access(out, F_OK) < 0, "an image was written");
	CHECK(qmp_status(&q, st, sizeof(st)) >= 0 && !strcmp(st, "running"), "status %s", st);
	qemu_kill(&q);

	CHECK(qemu_start(&q, "paused", paused) == 0, "QEMU with -S");
	rc = run(&q, out, NULL, NULL, err, sizeof(err));
	CHECK(rc == 1 && strstr(err, "paused"), "paused: rc %d: %s", rc, err);
	CHECK(qmp_status(&q, st, sizeof(st)) >= 0 && !strcmp(st, "prelaunch"),
	      "a paused guest's state changed: %s", st);
	qemu_kill(&q);

	/*
	 * migrating: throttled to 1000 bytes/s into a cat that reads everything, so it stays
	 * active and is never blocked in a write (a cancel is answered at once)
	 */
	CHECK(qemu_start(&q, "migrating", shared) == 0, "QEMU");
	CHECK(qmp_do(&q, "migrate-set-parameters", json_pack("{s:i}", "max-bandwidth", 1000)) == 0,
	      "migrate-set-parameters");
	CHECK(qmp_do(&q, "migrate", json_pack("{s:s}", "uri", "exec:cat > /dev/null")) == 0,
	      "migrate");
	rc = run(&q, out, NULL, NULL, err, sizeof(err));
	CHECK(rc == 1 && strstr(err, "already migrating"), "migrating: rc %d: %s", rc, err);
	CHECK(qmp_do(&q, "migrate_cancel", NULL) == 0, "migrate_cancel");
	qemu_kill(&q);

	rc = run(&q, out, NULL, NULL, err, sizeof(err)); /* the socket is gone */
	CHECK(rc == 1 && strstr(err, "cannot connect"), "no QEMU: rc %d: %s", rc, err);
	CHECK(access(out, F_OK) < 0, "an image was written");

	CHECK(not_qemu_start(&q) == 0, "a socket that is not QEMU's");
	rc = run(&q, out, NULL, NULL, err, sizeof(err));
	CHECK(rc == 1 && strstr(err, "not a QMP socket"), "not QEMU's: rc %d: %s", rc, err);
	CHECK(access(out, F_OK) < 0, "an image was written");
	qemu_kill(&q);
	printf("ok: refusals (plain -m, share=off, a name not UTF-8, paused, migrating, no QEMU, "
	       "not QEMU's)\n");
	return 0;
fail:
	qemu_kill(&q);
	return -1;
}

/*
 * Killed, interrupted, or QEMU gone, at each point of the guest's stop and during the copy
 * after it ("instant": `cont` answered, no page copied yet): the guest runs again (but when
 * QEMU itself died), the capabilities are as they were, nothing is named OUT. The signal goes
 * to uffsnapd's whole process group, as a terminal's Ctrl-C or `kill -9 -PGID` does.
 */
static int test_harm(void)
{
	static const char *const points[] = {"guest-stopped", "guest-saved", "armed", "instant"};
	static const size_t npoints = sizeof(points) / sizeof(points[0]);
	static const int sigs[] = {SIGKILL, SIGINT, SIGTERM};
	char out[160], err[1024], st[64], pause[200], flag[200], go[200];
	struct qemu q = {0};
	pid_t pid;
	int rc;

	snprintf(out, sizeof(out), "%s/harm.img", dir);
	snprintf(go, sizeof(go), "%s/go", dir);
	CHECK(qemu_start(&q, "harm", shared) == 0, "QEMU");
	for (size_t p = 0; p < npoints; p++)
		for (size_t s = 0; s < 3; s++) {
			unlink(go);
			snprintf(flag, sizeof(flag), "%s/%s", dir, points[p]);
			unlink(flag);
			snprintf(pause, sizeof(pause), "%s:%s", points[p], dir);
			CHECK(run(&q, out, pause, &pid, err, sizeof(err)) == 0, "run");
			CHECK(wait_file(flag), "uffsnapd never reached %s", points[p]);
			kill(-pid, sigs[s]);
			if (sigs[s] != SIGKILL) /* the signal is seen once the pause ends */
				close(open(go, O_WRONLY | O_CREAT, 0600));
			rc = finish(pid, err, sizeof(err));
			CHECK(sigs[s] == SIGKILL ? rc == 128 + SIGKILL
						 : rc == 1 && strstr(err, "interrupted"),
			      "%s at %s: rc %d: %s", strsignal(sigs[s]), points[p], rc, err);
			CHECK(wait_running(&q, st, sizeof(st)), "%s at %s: the guest is left %s",
			      strsignal(sigs[s]), points[p], st);
			CHECK(qmp_cap(&q, "x-ignore-shared") == 0 && qmp_cap(&q, "events") == 0,
			      "%s at %s: migration capabilities left changed", strsignal(sigs[s]),
			      points[p]);
			CHECK(access(out, F_OK) < 0, "an image was named after a failure");
			printf("ok: %s at %s: the guest runs, capabilities as they were\n",
			       strsignal(sigs[s]), points[p]);
		}

	/* QEMU killed while uffsnapd has the guest stopped: a clear failure, no image */
	unlink(go);
	snprintf(flag, sizeof(flag), "%s/guest-saved", dir);
	unlink(flag);
	snprintf(pause, sizeof(pause), "guest-saved:%s", dir);
	CHECK(run(&q, out, pause, &pid, err, sizeof(err)) == 0, "run");
	CHECK(wait_file(flag), "uffsnapd never reached guest-saved");
	qemu_kill(&q);
	close(open(go, O_WRONLY | O_CREAT, 0600));
	rc = finish(pid, err, sizeof(err));
	CHECK(rc == 1 && strstr(err, "exited during the snapshot"), "QEMU killed: rc %d: %s", rc,
	      err);
	CHECK(access(out, F_OK) < 0, "an image was named after QEMU died");
	printf("ok: QEMU killed mid-snapshot: %s", err);

	/* a second snapshot of a guest already being snapshotted: QMP serves one client */
	CHECK(qemu_start(&q, "twice", shared) == 0, "QEMU");
	unlink(go);
	snprintf(flag, sizeof(flag), "%s/armed", dir);
	unlink(flag);
	snprintf(pause, sizeof(pause), "armed:%s", dir);
	CHECK(run(&q, out, pause, &pid, err, sizeof(err)) == 0, "run");
	CHECK(wait_file(flag), "uffsnapd never reached armed");
	{
		char out2[180], err2[1024];
		const char *argv[] = {uffsnapd, "--qemu", q.sock, "--output", out2, NULL};
		int fds[2], status;
		pid_t p2;
		ssize_t n;

		snprintf(out2, sizeof(out2), "%s/second.img", dir);
		CHECK(pipe(fds) == 0, "pipe");
		p2 = fork();
		if (p2 == 0) {
			dup2(fds[1], 2);
			execv(uffsnapd, (char **)argv);
			_exit(127);
		}
		close(fds[1]);
		n = read(fds[0], err2, sizeof(err2) - 1);
		err2[n > 0 ? n : 0] = 0;
		close(fds[0]);
		waitpid(p2, &status, 0);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1 && strstr(err2, "another client"),
		      "second snapshot: %s", err2);
		CHECK(access(out2, F_OK) < 0, "the second snapshot wrote an image");
	}
	close(open(go, O_WRONLY | O_CREAT, 0600));
	rc = finish(pid, err, sizeof(err));
	CHECK(rc == 0, "the first snapshot failed: %s", err);
	CHECK(wait_running(&q, st, sizeof(st)), "left %s", st);
	printf("ok: a second snapshot of the same guest is refused; the first completes\n");
	qemu_kill(&q);
	return 0;
fail:
	qemu_kill(&q);
	return -1;
}

static bool tcp_listening(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;

	if (fd >= 0)
		close(fd);
	return ok;
}

/* The receiver's complete image in rx (NAME-SESSION.img), polled with a hang guard. */
static bool wait_received(const char *rx, char *path, size_t len)
{
	for (int i = 0; i < WAIT_MAX_MS / 50; i++) {
		DIR *d = opendir(rx);
		struct dirent *e;
		bool found = false;

		while (d && !found && (e = readdir(d))) {
			size_t n = strlen(e->d_name);

			found = n > 4 && !strcmp(e->d_name + n - 4, ".img");
			if (found)
				snprintf(path, len, "%s/%s", rx, e->d_name);
		}
		if (d)
			closedir(d);
		if (found)
			return true;
		test_sleep_ms(50);
	}
	return false;
}

/*
 * `uffsnapd --qemu SOCK --to HOST:PORT --key FILE`: the guest's snapshot streamed to a receiver
 * arrives as a guest image (the guest metadata and the whole device state), the guest runs on.
 */
static int test_stream(void)
{
	char key[160], rx[160], listen[64], img[600], st[64], err[1024], errpath[160];
	const char *rargv[] = {uffsnapd, "--receive", "--listen", listen,    "--dir",
			       rx,	 "--key",     key,	  "--quiet", NULL};
	struct img_error ierr = {0};
	struct img_reader *rd = NULL;
	struct qemu q = {0};
	json_t *meta = NULL, *g;
	pid_t recv = -1, pid;
	void *dev = NULL;
	size_t devlen = 0;
	int port = 40000 + getpid() % 20000, fd = -1, rc;

	snprintf(key, sizeof(key), "%s/key", dir);
	snprintf(rx, sizeof(rx), "%s/rx", dir);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	snprintf(errpath, sizeof(errpath), "%s/stderr", dir);
	fd = open(key, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	CHECK(fd >= 0 &&
		  write(fd, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
			65) == 65,
	      "key file");
	close(fd);
	fd = -1;
	CHECK(mkdir(rx, 0700) == 0, "mkdir rx");
	recv = fork();
	if (recv == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execv(uffsnapd, (char **)rargv);
		_exit(127);
	}
	for (int i = 0; i < WAIT_MAX_MS / 10 && !tcp_listening(port); i++) {
		CHECK(waitpid(recv, NULL, WNOHANG) == 0, "the receiver exited (port %d taken?)",
		      port);
		test_sleep_ms(10);
	}
	CHECK(tcp_listening(port), "the receiver never listened on %s", listen);
	CHECK(qemu_start(&q, "stream", shared) == 0, "QEMU");
	pid = fork();
	if (pid == 0) {
		fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 2);
		execl(uffsnapd, uffsnapd, "--qemu", q.sock, "--to", listen, "--key", key, "--quiet",
		      (char *)NULL);
		_exit(127);
	}
	rc = finish(pid, err, sizeof(err));
	CHECK(rc == 0, "uffsnapd --qemu --to: rc %d: %s", rc, err);
	CHECK(wait_received(rx, img, sizeof(img)), "no complete image in %s", rx);
	fd = open(img, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0 && img_reader_open(fd, &rd, &ierr) == 0, "%s: %s", img, ierr.msg);
	meta = json_loads(img_reader_meta(rd), 0, NULL);
	g = json_object_get(meta, "guest");
	CHECK(json_is_object(g) &&
		  !strcmp(json_string_value(json_object_get(g, "machine")) ?: "", "pc-i440fx-7.2"),
	      "the received image has no guest of machine pc-i440fx-7.2");
	CHECK(img_reader_devstate(rd, &dev, &devlen) == 0 && devlen > 0 &&
		  (json_int_t)devlen ==
		      json_integer_value(json_object_get(json_object_get(g, "devstate"), "size")),
	      "the received image lacks the device state (%zu bytes)", devlen);
	CHECK(img_reader_complete(rd), "the received image is incomplete");
	CHECK(wait_running(&q, st, sizeof(st)), "the guest is left %s", st);
	printf("ok: a guest streamed to a receiver: %s, device state %zu bytes\n", img, devlen);
	rc = 0;
	goto out;
fail:
	rc = -1;
out:
	free(dev);
	json_decref(meta);
	img_reader_free(rd);
	if (fd >= 0)
		close(fd);
	qemu_kill(&q);
	if (recv > 0) {
		kill(recv, SIGTERM);
		waitpid(recv, NULL, 0);
	}
	return rc;
}

int main(int argc, char **argv)
{
	char cmd[256];
	int r = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: %s UFFSNAPD_TEST\n", argv[0]);
		return 2;
	}
	uffsnapd = argv[1];
	if (access(QEMU, X_OK) < 0) {
		printf("SKIP: %s is not installed (./dev installs qemu-system-x86)\n", QEMU);
		return 77;
	}
	if (geteuid() != 0) {
		printf("SKIP: needs root (ptrace of QEMU, /dev/userfaultfd)\n");
		return 77;
	}
	CHECK(mkdtemp(dir), "mkdtemp");
	if (test_refusals() == 0 && test_harm() == 0 && test_stream() == 0)
		r = 0;
fail:
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("could not remove %s\n", dir);
	return r;
}
