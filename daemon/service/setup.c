/* SPDX-License-Identifier: MIT */
/*
 * Service start-up and teardown: every fd the loop uses, opened in the order privileges
 * require (proto/CONTROL.md; sys/caps.h): sockets, directory, /dev/userfaultfd and the
 * process events connector first, then the drop.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "sys/proc-events.h"
#include "sys/caps.h"
#include "sys/notify.h"
#include "target/spawner.h"
#include "service/client.h"
#include "service/job.h"
#include "service/output.h"

/* Creates the directory of path (one level, 0750) if it is missing. */
static int make_parent(const char *path)
{
	char *copy = strdup(path);
	int r = 0;

	if (!copy)
		return -ENOMEM;
	if (mkdir(dirname(copy), 0750) < 0 && errno != EEXIST)
		r = -errno;
	free(copy);
	return r;
}

/* A socket file left by a daemon that died is removed; a live one is an error. */
static int clear_stale(const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, r;

	if (lstat(sa->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return svc_log("%s exists and is not a socket; remove it or choose another "
			       "--control",
			       sa->sun_path),
		       -EEXIST;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 ? -EADDRINUSE : -errno;
	close(fd);
	if (r == -EADDRINUSE)
		return svc_log("another daemon is listening on %s; stop it or choose another "
			       "--control",
			       sa->sun_path),
		       r;
	return unlink(sa->sun_path) < 0 ? -errno : 0;
}

static int bind_control(struct svc *svc)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct group *g = getgrnam(SVC_SOCKET_GROUP);
	int r;

	if (strlen(svc->o.control) >= sizeof(sa.sun_path))
		return svc_log("--control %s: the path is too long for a Unix socket (at most %zu "
			       "bytes)",
			       svc->o.control, sizeof(sa.sun_path) - 1),
		       -ENAMETOOLONG;
	strcpy(sa.sun_path, svc->o.control);
	r = make_parent(svc->o.control);
	if (r < 0)
		return svc_log("cannot create the directory of %s: %s", svc->o.control,
			       strerror(-r)),
		       r;
	r = clear_stale(&sa);
	if (r < 0)
		return r == -EEXIST || r == -EADDRINUSE
			   ? r
			   : (svc_log("cannot use %s: %s", svc->o.control, strerror(-r)), r);
	svc->listenfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (svc->listenfd < 0 || bind(svc->listenfd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return r = -errno, svc_log("cannot create the socket %s: %m", svc->o.control), r;
	svc->socket_ours = true;
	if (chmod(sa.sun_path, 0660) < 0 || (g && chown(sa.sun_path, -1, g->gr_gid) < 0))
		return r = -errno, svc_log("cannot set the mode of %s: %m", svc->o.control), r;
	if (listen(svc->listenfd, 64) < 0)
		return r = -errno, svc_log("cannot listen on %s: %m", svc->o.control), r;
	return 0;
}

static int open_listener(struct svc *svc)
{
	int n = svc_listen_fds(), r;

	if (n < 0)
		return svc_log("the sockets systemd passed are malformed (LISTEN_FDS): %s",
			       strerror(-n)),
		       n;
	if (n == 0)
		return bind_control(svc);
	svc->listenfd = 3; /* SD_LISTEN_FDS_START; extra sockets are not used */
	svc->o.control = "(socket passed by systemd)";
	if (fcntl(3, F_SETFL, fcntl(3, F_GETFL) | O_NONBLOCK) < 0)
		return r = -errno, svc_log("cannot use the socket systemd passed: %m"), r;
	return 0;
}

static int open_snapdir(struct svc *svc)
{
	struct passwd *pw = svc->o.user ? getpwnam(svc->o.user) : NULL;
	int r;

	if (mkdir(svc->o.snapdir, 0750) == 0 && pw &&
	    chown(svc->o.snapdir, pw->pw_uid, pw->pw_gid) < 0)
		return r = -errno,
		       svc_log("cannot give %s to user %s: %m", svc->o.snapdir, svc->o.user), r;
	svc->dirfd = open(svc->o.snapdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (svc->dirfd < 0)
		return r = -errno,
		       svc_log("cannot open the snapshot directory %s: %m (create it, or choose "
			       "another --snapshot-dir)",
			       svc->o.snapdir),
		       r;
	return 0;
}

static int add_fd(struct svc *svc, int fd, enum svc_tag tag)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};

	return epoll_ctl(svc->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static int open_loop_fds(struct svc *svc)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);  /* no configuration to reload: a hang-up stops, as SIGTERM */
	sigaddset(&set, SIGQUIT);
	/* Blocked before any job thread exists, so every thread inherits it. */
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0 || signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		return -errno;
	svc->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	svc->epfd = epoll_create1(EPOLL_CLOEXEC);
	svc->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	svc->jobsfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (svc->sigfd < 0 || svc->epfd < 0 || svc->timerfd < 0 || svc->jobsfd < 0)
		return -errno;
	if (add_fd(svc, svc->listenfd, SVC_TAG_LISTEN) < 0 ||
	    add_fd(svc, svc->sigfd, SVC_TAG_SIGNAL) < 0 ||
	    add_fd(svc, svc->timerfd, SVC_TAG_TIMER) < 0 ||
	    add_fd(svc, svc->jobsfd, SVC_TAG_JOBS) < 0 ||
	    (svc->procev && add_fd(svc, procev_fd(svc->procev), SVC_TAG_PROCEV) < 0))
		return -errno;
	return 0;
}

static void open_kernel(struct svc *svc)
{
	int r;

	svc->devuffd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (svc->devuffd < 0)
		svc_log("warning: cannot open /dev/userfaultfd: %m; each job will try again "
			"(and fail once privileges are dropped)");
	svc_probe_kernel(svc);
	r = procev_open(&svc->procev);
	if (r < 0) {
		svc->procev = NULL;
		svc_log("warning: no process events (%s): a job notices its target's exit only "
			"when the engine does",
			strerror(-r));
	}
}

/* The key is read while we may still read its file; it never changes after. */
static int load_key(struct svc *svc)
{
	char msg[512];
	int r;

	if (!svc->o.key_file)
		return 0;
	r = stream_key_load(svc->o.key_file, &svc->key, msg, sizeof(msg));
	if (r < 0)
		return svc_log("%s", msg), r;
	svc->has_key = true;
	return 0;
}

static int drop_privileges(struct svc *svc)
{
	struct svc_caps_error err = {{0}};
	int r;

	if (geteuid() != 0 && !svc->o.user) {
		svc_log("not running as root: keeping the privileges we have");
		return 0;
	}
	r = svc_caps_drop(svc->o.user, &err);
	if (r < 0)
		return svc_log("cannot drop privileges: %s", err.msg[0] ? err.msg : strerror(-r)),
		       r;
	svc->caps_kept = svc_caps_kept();
	return 0;
}

int svc_setup(struct svc *svc)
{
	struct svc_opts o = svc->o;
	int r;

	*svc = (struct svc){.o = o,
			    .epfd = -EBADF,
			    .listenfd = -EBADF,
			    .sigfd = -EBADF,
			    .timerfd = -EBADF,
			    .jobsfd = -EBADF,
			    .dirfd = -EBADF,
			    .devuffd = -EBADF};
	r = load_key(svc);
	if (r >= 0)
		r = open_listener(svc);
	if (r >= 0)
		r = open_snapdir(svc);
	if (r < 0)
		return r;
	open_kernel(svc);
	r = open_loop_fds(svc);
	if (r < 0)
		return svc_log("cannot set up the event loop: %s", strerror(-r)), r;
	r = drop_privileges(svc);
	if (r < 0)
		return r;
	/* While we have one thread, and with the privileges the holders will have. */
	r = holder_spawner_start();
	if (r < 0)
		return svc_log("cannot start the holders' spawner process: %s", strerror(-r)), r;
	return 0;
}

static void close_fd(int fd)
{
	if (fd >= 0)
		close(fd);
}

void svc_teardown(struct svc *svc)
{
	svc_clients_free(svc);
	svc_jobs_free(svc);
	procev_free(svc->procev);
	if (svc->socket_ours && unlink(svc->o.control) < 0 && errno != ENOENT)
		svc_log("cannot remove %s: %m", svc->o.control);
	close_fd(svc->listenfd);
	close_fd(svc->epfd);
	close_fd(svc->sigfd);
	close_fd(svc->timerfd);
	close_fd(svc->jobsfd);
	close_fd(svc->dirfd);
	close_fd(svc->devuffd);
	holder_spawner_stop();
	stream_key_wipe(&svc->key);
}
