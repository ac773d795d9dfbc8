/* SPDX-License-Identifier: MIT */
/* The control commands (proto/CONTROL.md "Commands"): the table and its handlers. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sys/linux-compat.h"
#include "stream/addr.h"
#include "service/commands.h"
#include "service/job-migrate.h"
#include "service/job-snapshot.h"
#include "service/output.h"
#include "service/receive.h"

/* Kernel pids are at most PID_MAX_LIMIT (4M, include/linux/threads.h). */
#define CTL_PID_MAX   4194304
#define CTL_JOBID_MAX (1ll << 53) /* exact in every JSON reader */

static struct svc_client *client(void *ctx)
{
	return ctx;
}

static bool has(json_t *args, const char *name)
{
	return json_object_get(args, name) != NULL;
}

static bool is_true(json_t *args, const char *name)
{
	return json_is_true(json_object_get(args, name));
}

/* "precopy" and "incremental", and what goes only with them (CONTROL.md "snapshot"). */
static int snapshot_check_precopy(json_t *args, struct ctl_error *err)
{
	bool incr = is_true(args, "incremental");

	if (!incr && (has(args, "every") || has(args, "count")))
		return ctl_fail(err, CTL_E_PARAM,
				"'every' and 'count' go with 'incremental': true (a chain)");
	if (incr && !has(args, "every"))
		return ctl_fail(err, CTL_E_PARAM,
				"'incremental' needs 'every' (seconds from one image to the next)");
	if (incr && !has(args, "file"))
		return ctl_fail(err, CTL_E_PARAM,
				"'incremental' writes its images into the snapshot directory: it "
				"takes 'file' (the images' name prefix), not 'fd' or 'to'");
	if (incr && has(args, "qemu"))
		return ctl_fail(err, CTL_E_PARAM,
				"'incremental' is for processes ('pid'), not 'qemu'");
	if (incr && (has(args, "mem-limit") || has(args, "copy-threads")))
		return ctl_fail(
		    err, CTL_E_PARAM,
		    "'mem-limit' and 'copy-threads' are not for 'incremental' (a chain's "
		    "images are copied in rounds)");
	if (!incr && !is_true(args, "precopy") &&
	    (has(args, "downtime") || has(args, "max-rounds") || has(args, "strict-downtime")))
		return ctl_fail(err, CTL_E_PARAM,
				"'downtime', 'max-rounds' and 'strict-downtime' go with 'precopy' "
				"or 'incremental'");
	if (is_true(args, "precopy") && has(args, "qemu"))
		return ctl_fail(
		    err, CTL_E_PARAM,
		    "'precopy' is for processes ('pid'), not 'qemu': a guest's snapshot "
		    "stops its vCPUs to save its device state with QEMU's help, which "
		    "the pre-copy engine does not do");
	return 0;
}

static int snapshot_check(json_t *args, struct ctl_error *err)
{
	int n = !!json_object_get(args, "fd") + !!json_object_get(args, "file") +
		!!json_object_get(args, "to");

	const char *qemu = json_string_value(json_object_get(args, "qemu"));
	const char *fd = json_string_value(json_object_get(args, "fd"));

	if (n != 1)
		return ctl_fail(err, CTL_E_PARAM,
				"'snapshot' needs exactly one of 'fd' (a name from getfd), 'file' "
				"(a name in the snapshot directory) and 'to' (a receiver's "
				"HOST:PORT)");
	if (!!json_object_get(args, "pid") + !!qemu != 1)
		return ctl_fail(err, CTL_E_PARAM,
				"'snapshot' needs exactly one of 'pid' (a process) and 'qemu' (the "
				"name, from getfd, of a connection to a QEMU guest's QMP socket)");
	if (qemu && fd && !strcmp(qemu, fd))
		return ctl_fail(err, CTL_E_PARAM,
				"'qemu' and 'fd' name the same fd '%s': pass the QMP connection "
				"and the output as two fds",
				qemu);
	return snapshot_check_precopy(args, err);
}

static int need_key(const struct svc *svc, const char *what, struct ctl_error *err)
{
	if (svc->has_key)
		return 0;
	return ctl_fail(err, CTL_E_GENERIC,
			"this daemon has no stream key, so it cannot %s: start it with --key FILE "
			"(the key file both sides hold; clients never name one)",
			what);
}

/*
 * LimitExceeded: the daemon's --max-jobs, of which SVC_RESERVED_JOBS are kept for privileged
 * clients (root, the daemon's uid and gid), and --max-user-jobs for everyone else.
 */
static int svc_job_admit(struct svc_client *c, struct ctl_error *err)
{
	struct svc *svc = c->svc;
	unsigned max = svc->o.max_jobs, mine;

	if (!c->peer.privileged) {
		mine = svc_jobs_of(svc, c->peer.uid);
		if (mine >= svc->o.max_user_jobs)
			return ctl_fail(err, CTL_E_LIMIT,
					"uid %u has %u jobs running, the most one user may run at "
					"once (--max-user-jobs); try again when one ends",
					c->peer.uid, mine);
		if (max > SVC_RESERVED_JOBS)
			max -= SVC_RESERVED_JOBS;
	}
	if (svc->running >= max)
		return ctl_fail(err, CTL_E_LIMIT,
				"%u jobs are running, the most this daemon runs "
				"at once (--max-jobs); try again when one ends",
				svc->running);
	return 0;
}

/* Authorization, Busy, LimitExceeded, in this order: each says more than the next. */
static int snapshot_admit(struct svc_client *c, pid_t pid, int *ret_pidfd,
			  struct ctl_error *err)
{
	struct svc *svc = c->svc;
	struct svc_job *busy;
	int r = svc_may_snapshot(&c->peer, pid, ret_pidfd, err);

	if (r < 0)
		return r;
	busy = svc_job_running_on(svc, pid);
	if (busy)
		return ctl_fail(err, CTL_E_BUSY,
				"pid %d already has a running job (%" PRIu64 "); "
				"wait for it or cancel it",
				pid, busy->id);
	return svc_job_admit(c, err);
}

/* "incremental": images FILE-0000.img, ... (names checked here, files made by the job). */
static int snapshot_chain(struct svc_client *c, struct svc_snap_job *j,
			  const struct ctl_request *req, struct ctl_error *err)
{
	int r = svc_output_chain_check(c->svc, j->file, err);

	if (r >= 0 && svc_snap_job_chain(j, j->file, (uint32_t)ctl_arg_int(req, "every", 0),
					 (uint32_t)ctl_arg_int(req, "count", 0)) < 0)
		r = ctl_fail(err, CTL_E_GENERIC, "out of memory");
	return r;
}

/* The output: a named fd of this connection (taken over), a new file, or a receiver. */
static int snapshot_output(struct svc_client *c, struct svc_snap_job *j,
			   const struct ctl_request *req, struct ctl_error *err)
{
	const char *fdname = ctl_arg_str(req, "fd"), *file = ctl_arg_str(req, "file");
	const char *to = ctl_arg_str(req, "to");
	int i;

	if (to) { /* connected by the job's thread: a slow network never holds the loop */
		if (need_key(c->svc, "stream to a receiver", err) < 0)
			return -EINVAL;
		j->to = strdup(to);
		return j->to ? 0 : ctl_fail(err, CTL_E_GENERIC, "out of memory");
	}
	if (fdname) {
		i = svc_client_fd_find(c, fdname);
		if (i < 0)
			return ctl_fail(err, CTL_E_NOTFOUND,
					"no fd named '%s' on this connection "
					"(pass one with getfd first)",
					fdname);
		j->fdname = strdup(fdname);
		if (!j->fdname)
			return ctl_fail(err, CTL_E_GENERIC, "out of memory");
		j->out_fd = svc_client_fd_take(c, i);
		return 0;
	}
	j->file = strdup(file);
	if (!j->file)
		return ctl_fail(err, CTL_E_GENERIC, "out of memory");
	if (ctl_arg_bool(req, "incremental", false)) /* a file per image, made by the job */
		return snapshot_chain(c, j, req, err);
	j->out_fd = svc_output_create(c->svc, file, err);
	return j->out_fd < 0 ? j->out_fd : 0;
}

/*
 * The QEMU behind the QMP connection passed as name: its pid (SO_PEERCRED: QEMU's, recorded
 * when it listened) and, Linux >= 6.5, a pidfd of that very process (SO_PEERPIDFD), which
 * pins it while it is authorized. The socket itself is not read here: its greeting is the
 * job thread's (a QEMU that is slow to answer must not hold the loop).
 */
static int qemu_peer(struct svc_client *c, const char *name, pid_t *ret_pid, int *ret_pidfd,
		     struct ctl_error *err)
{
	int i = svc_client_fd_find(c, name), type = 0, pidfd = -EBADF;
	struct ucred uc = {0};
	socklen_t len = sizeof(type);

	if (i < 0)
		return ctl_fail(err, CTL_E_NOTFOUND,
				"no fd named '%s' on this connection (connect to the guest's QMP "
				"socket and pass that socket with getfd first)",
				name);
	if (getsockopt(c->fds[i], SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM ||
	    getsockopt(c->fds[i], SOL_SOCKET, SO_PEERCRED, &uc, &(socklen_t){sizeof(uc)}) < 0 ||
	    uc.pid <= 0)
		return ctl_fail(err, CTL_E_PARAM,
				"fd '%s' is not a connected unix stream socket: 'qemu' takes a "
				"connection to a QEMU guest's QMP socket",
				name);
	len = sizeof(pidfd);
	if (getsockopt(c->fds[i], SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0)
		pidfd = -EBADF;
	*ret_pid = uc.pid;
	*ret_pidfd = pidfd;
	return 0;
}

/* The peer's pidfd still alive after pid was authorized: pid named it all along. */
static int qemu_admit(struct svc_client *c, const char *name, pid_t *ret_pid, int *ret_pidfd,
		      struct ctl_error *err)
{
	int peerfd = -EBADF, r = qemu_peer(c, name, ret_pid, &peerfd, err);

	if (r >= 0)
		r = snapshot_admit(c, *ret_pid, ret_pidfd, err);
	if (r >= 0 && peerfd >= 0 && syscall(SYS_pidfd_send_signal, peerfd, 0, NULL, 0) < 0) {
		close(*ret_pidfd);
		*ret_pidfd = -EBADF;
		r = ctl_fail(err, CTL_E_NOTFOUND,
			     "the QEMU of fd '%s' (pid %d) exited while it was being checked", name,
			     *ret_pid);
	}
	if (peerfd >= 0)
		close(peerfd);
	return r;
}

/* A guest job takes the QMP connection over, once the rest of the request was accepted. */
static int snapshot_qemu_take(struct svc_client *c, struct svc_snap_job *j, const char *name,
			      struct ctl_error *err)
{
	int i = svc_client_fd_find(c, name);

	j->qemu = strdup(name);
	if (!j->qemu)
		return ctl_fail(err, CTL_E_GENERIC, "out of memory");
	j->qmp_fd = svc_client_fd_take(c, i); /* found by qemu_peer() on this same request */
	return 0;
}

static json_t *cmd_snapshot(void *ctx, const struct ctl_request *req, struct ctl_error *err)
{
	struct svc_client *c = client(ctx);
	const char *qemu = ctl_arg_str(req, "qemu");
	pid_t pid = (pid_t)ctl_arg_int(req, "pid", 0);
	struct svc_snap_job *j = NULL;
	int pidfd = -EBADF, r;

	r = qemu ? qemu_admit(c, qemu, &pid, &pidfd, err) : snapshot_admit(c, pid, &pidfd, err);
	if (r >= 0) {
		j = svc_snap_job_new(c->peer.uid);
		if (!j)
			ctl_fail(err, CTL_E_GENERIC, "out of memory");
	}
	if (!j) {
		if (pidfd >= 0)
			close(pidfd);
		return NULL;
	}
	j->job.owner_gid = c->peer.gid;
	j->job.pid = pid;
	j->job.pidfd = pidfd; /* the job frees it */
	j->strict = ctl_arg_bool(req, "strict", false);
	j->window = (uint32_t)ctl_arg_int(req, "window", 0);
	j->copy_threads = (uint32_t)ctl_arg_int(req, "copy-threads", 0);
	j->mem_limit = (uint64_t)ctl_arg_int(req, "mem-limit", 0) << 20;
	j->precopy = ctl_arg_bool(req, "precopy", false);
	j->downtime_ms = (uint32_t)ctl_arg_int(req, "downtime", 0);
	j->max_rounds = (uint32_t)ctl_arg_int(req, "max-rounds", 0);
	j->strict_downtime = ctl_arg_bool(req, "strict-downtime", false);
	if (j->mem_limit > c->svc->o.max_job_mem)
		r = ctl_fail(err, CTL_E_PARAM,
			     "'mem-limit' is above this daemon's --max-job-mem (%llu MiB)",
			     (unsigned long long)(c->svc->o.max_job_mem >> 20));
	else
		r = snapshot_output(c, j, req, err);
	if (r >= 0 && qemu)
		r = snapshot_qemu_take(c, j, qemu, err);
	if (r < 0) {
		svc_job_free(&j->job);
		return NULL;
	}
	r = svc_job_start(c->svc, &j->job); /* frees j on failure */
	if (r < 0) /* a file has no name yet: nothing to remove */
		return ctl_fail(err, CTL_E_GENERIC, "cannot start a job thread: %s", strerror(-r)),
		       NULL;
	c->created = &j->job;
	return json_pack("{s:I}", "id", (json_int_t)j->job.id);
}

/* `migrate`: the guest of a passed QMP connection, authorized and Busy as its snapshot. */
static json_t *cmd_migrate(void *ctx, const struct ctl_request *req, struct ctl_error *err)
{
	struct svc_client *c = client(ctx);
	const char *qemu = ctl_arg_str(req, "qemu"), *to = ctl_arg_str(req, "to");
	struct svc_mig_job *j = NULL;
	pid_t pid = 0;
	int pidfd = -EBADF, r = qemu_admit(c, qemu, &pid, &pidfd, err);

	if (r >= 0)
		r = need_key(c->svc, "migrate a guest (its RAM goes through the stream)", err);
	if (r >= 0 && !(j = svc_mig_job_new(c->peer.uid)))
		ctl_fail(err, CTL_E_GENERIC, "out of memory");
	if (!j) {
		if (pidfd >= 0)
			close(pidfd);
		return NULL;
	}
	j->job.owner_gid = c->peer.gid;
	j->job.pid = pid;
	j->job.pidfd = pidfd; /* the job frees it */
	j->downtime_ms = (uint32_t)ctl_arg_int(req, "downtime", 0);
	j->max_rounds = (uint32_t)ctl_arg_int(req, "max-rounds", 0);
	j->strict_downtime = ctl_arg_bool(req, "strict-downtime", false);
	j->qemu = strdup(qemu);
	j->to = strdup(to);
	if (!j->qemu || !j->to) {
		svc_job_free(&j->job);
		return ctl_fail(err, CTL_E_GENERIC, "out of memory"), NULL;
	}
	j->qmp_fd = svc_client_fd_take(c, svc_client_fd_find(c, qemu)); /* found by qemu_admit() */
	r = svc_job_start(c->svc, &j->job); /* frees j on failure */
	if (r < 0)
		return ctl_fail(err, CTL_E_GENERIC, "cannot start a job thread: %s", strerror(-r)),
		       NULL;
	c->created = &j->job;
	return json_pack("{s:I}", "id", (json_int_t)j->job.id);
}

static json_t *cmd_query_jobs(void *ctx, const struct ctl_request *req, struct ctl_error *err)
{
	struct svc_client *c = client(ctx);
	json_t *a = json_array();

	for (struct svc_job *j = c->svc->jobs; a && j; j = j->next)
		if (svc_job_visible(j, &c->peer))
			json_array_insert_new(a, 0, svc_job_json(j)); /* oldest first */
	return a ? a : (ctl_fail(err, CTL_E_GENERIC, "out of memory"), NULL);
}

/* A job the client may see, or NotFound (the same for jobs of others: no probing). */
static struct svc_job *visible_job(struct svc_client *c, const struct ctl_request *req,
				   struct ctl_error *err)
{
	long long id = ctl_arg_int(req, "id", 0);
	struct svc_job *j = svc_job_find(c->svc, (uint64_t)id);

	if (!j || !svc_job_visible(j, &c->peer))
		return ctl_fail(err, CTL_E_NOTFOUND,
				"there is no job %lld (finished jobs are kept "
				"for a while: the last %d)",
				id, SVC_HISTORY),
		       NULL;
	return j;
}

static json_t *cmd_query_job(void *ctx, const struct ctl_request *req, struct ctl_error *err)
{
	struct svc_job *j = visible_job(client(ctx), req, err);

	return j ? svc_job_json(j) : NULL;
}

static json_t *cmd_cancel(void *ctx, const struct ctl_request *req, struct ctl_error *err)
{
	struct svc_job *j = visible_job(client(ctx), req, err);

	if (!j)
		return NULL;
	if (j->state != SVC_JOB_RUNNING)
		return ctl_fail(err, CTL_E_GENERIC, "job %" PRIu64 " has already ended", j->id),
		       NULL;
	if (svc_job_cancel(j, -ECANCELED))
		svc_log("job %" PRIu64 ": cancelled by client %u (uid %u)", j->id,
			client(ctx)->serial, client(ctx)->peer.uid);
	return json_object();
}

/* Only root or the daemon's own user: a receiver writes with the daemon's key and disk. */
static int receive_admit(struct svc_client *c, struct ctl_error *err)
{
	struct svc *svc = c->svc;

	if (c->peer.uid != 0 && c->peer.uid != geteuid())
		return ctl_fail(err, CTL_E_PERM,
				"only root or the daemon's own user (uid %u) may start a "
				"receiver: it accepts images with the daemon's key into its "
				"snapshot directory",
				geteuid());
	if (need_key(svc, "receive", err) < 0)
		return -EINVAL;
	return svc_job_admit(c, err);
}

/* received/ in the snapshot directory (made once, no symlink followed), the socket, a stop. */
static int receive_open(struct svc *svc, struct svc_recv_job *j, const char *listen,
			struct ctl_error *err)
{
	char msg[300], where[80];

	if (mkdirat(svc->dirfd, SVC_RECV_DIR, 0750) < 0 && errno != EEXIST)
		return ctl_fail(err, CTL_E_GENERIC, "cannot create %s/" SVC_RECV_DIR ": %s",
				svc->o.snapdir, strerror(errno));
	j->dir_fd =
	    openat(svc->dirfd, SVC_RECV_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (j->dir_fd < 0)
		return ctl_fail(err, CTL_E_GENERIC, "cannot open %s/" SVC_RECV_DIR ": %s",
				svc->o.snapdir, strerror(errno));
	j->listen_fd = stream_listen(listen, msg, sizeof(msg));
	if (j->listen_fd < 0)
		return ctl_fail(err, j->listen_fd == -EADDRINUSE ? CTL_E_BUSY : CTL_E_PARAM, "%s",
				msg);
	stream_sockname(j->listen_fd, where, sizeof(where));
	j->listen = strdup(where);
	j->job.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!j->listen || j->job.stop_fd < 0)
		return ctl_fail(err, CTL_E_GENERIC, "out of memory or fds");
	return 0;
}

static json_t *cmd_receive(void *ctx, const struct ctl_request *req, struct ctl_error *err)
{
	struct svc_client *c = client(ctx);
	struct svc_recv_job *j;
	int r;

	if (receive_admit(c, err) < 0)
		return NULL;
	j = svc_recv_job_new(c->peer.uid);
	if (!j)
		return ctl_fail(err, CTL_E_GENERIC, "out of memory"), NULL;
	if (receive_open(c->svc, j, ctl_arg_str(req, "listen"), err) < 0) {
		svc_job_free(&j->job);
		return NULL;
	}
	r = svc_job_start(c->svc, &j->job); /* frees j on failure */
	if (r < 0)
		return ctl_fail(err, CTL_E_GENERIC, "cannot start a job thread: %s", strerror(-r)),
		       NULL;
	c->created = &j->job;
	return json_pack("{s:I, s:s}", "id", (json_int_t)j->job.id, "listen", j->listen);
}

static json_t *uffd_features_json(const struct svc *svc)
{
	static const struct {
		const char *name;
		uint64_t bit;
	} feats[] = {
	    {"wp", UFFD_FEATURE_PAGEFAULT_FLAG_WP},
	    {"wp-unpopulated", UFFD_FEATURE_WP_UNPOPULATED},
	    {"wp-hugetlbfs-shmem", UFFD_FEATURE_WP_HUGETLBFS_SHMEM},
	    {"wp-async", UFFD_FEATURE_WP_ASYNC},
	};
	json_t *a = json_array();

	for (size_t i = 0; a && i < sizeof(feats) / sizeof(feats[0]); i++)
		if (svc->uffd_ok && (svc->uffd_features & feats[i].bit))
			json_array_append_new(a, json_string(feats[i].name));
	if (a && svc->pagemap_scan)
		json_array_append_new(a, json_string("pagemap-scan"));
	return a;
}

static json_t *cmd_query_status(void *ctx, const struct ctl_request *req, struct ctl_error *err)
{
	struct svc *svc = client(ctx)->svc;
	json_t *o = json_pack(
	    "{s:s, s:i, s:s, s:o*, s:{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:I}, s:s, "
	    "s:s, s:i, s:i, s:b}",
	    "version", UFFSNAP_VERSION, "protocol", SVC_PROTOCOL, "kernel", svc->kernel, "features",
	    uffd_features_json(svc), "limits", "max-jobs", svc->o.max_jobs, "max-user-jobs",
	    svc->o.max_user_jobs, "max-user-clients", svc->o.max_user_clients, "idle-timeout",
	    svc->o.idle_timeout_s, "max-clients", svc->o.max_clients, "line", CTL_LINE_MAX, "fds",
	    SVC_FDS_MAX, "output", SVC_OUT_MAX, "max-job-mem",
	    (json_int_t)(svc->o.max_job_mem >> 20), "snapshot-dir", svc->o.snapdir, "capabilities",
	    svc->caps_kept ? svc->caps_kept : "", "running-jobs", svc->running, "clients",
	    svc->nclients, "process-events", svc->procev != NULL);

	return o ? o : (ctl_fail(err, CTL_E_GENERIC, "out of memory"), NULL);
}

static json_t *cmd_quit(void *ctx, const struct ctl_request *req, struct ctl_error *err)
{
	struct svc_client *c = client(ctx);

	if (!c->svc->o.allow_quit)
		return ctl_fail(err, CTL_E_PERM,
				"this daemon does not take 'quit' (it runs "
				"without --allow-quit); stop its service instead"),
		       NULL;
	if (c->peer.uid != 0 && c->peer.uid != geteuid())
		return ctl_fail(err, CTL_E_PERM, "only root or the daemon's own user may stop it"),
		       NULL;
	svc_log("client %u (uid %u) asked to quit", c->serial, c->peer.uid);
	c->svc->stopping = true;
	return json_object();
}

static json_t *cmd_getfd(void *ctx, const struct ctl_request *req, struct ctl_error *err)
{
	struct svc_client *c = client(ctx);
	const char *name = ctl_arg_str(req, "fdname");
	int i;

	if (svc_client_fd_find(c, name) >= 0)
		return ctl_fail(err, CTL_E_PARAM,
				"an fd named '%s' already exists on this "
				"connection (closefd it first)",
				name),
		       NULL;
	i = svc_client_fd_find(c, NULL);
	if (i < 0)
		return ctl_fail(err, CTL_E_NOTFOUND,
				"no file descriptor came with this request: "
				"attach one with SCM_RIGHTS to the sendmsg() of the getfd line"),
		       NULL;
	c->fdnames[i] = strdup(name);
	if (!c->fdnames[i])
		return ctl_fail(err, CTL_E_GENERIC, "out of memory"), NULL;
	return json_object();
}

static json_t *cmd_closefd(void *ctx, const struct ctl_request *req, struct ctl_error *err)
{
	struct svc_client *c = client(ctx);
	const char *name = ctl_arg_str(req, "fdname");
	int i = svc_client_fd_find(c, name);

	if (i < 0)
		return ctl_fail(err, CTL_E_NOTFOUND, "no fd named '%s' on this connection", name),
		       NULL;
	close(svc_client_fd_take(c, i));
	return json_object();
}

/* The pre-copy budget: of a pre-copy snapshot, a chain's images, and a migration. */
/* clang-format off */
#define CTL_PRECOPY_ARGS                                                                           \
    {"downtime", CTL_ARG_INT, false, 1, 60000, "pre-copy: the final hold's budget, ms (50)"},     \
    {"max-rounds", CTL_ARG_INT, false, 1, SNAP_MAX_ROUNDS - 1,                                    \
     "pre-copy: rounds before giving up converging (10)"},                                        \
    {"strict-downtime", CTL_ARG_BOOL, false, 0, 0, "pre-copy: fail if it does not converge"}
/* clang-format on */
static const struct ctl_arg snapshot_args[] = {
    {"pid", CTL_ARG_INT, false, 1, CTL_PID_MAX, "the process to snapshot"},
    {"qemu", CTL_ARG_NAME, false, 0, 0, "or the guest of this QMP connection (from getfd)"},
    {"fd", CTL_ARG_NAME, false, 0, 0, "write the image to this fd (from getfd)"},
    {"file", CTL_ARG_NAME, false, 0, 0, "write the image to this new file in the snapshot dir"},
    {"to", CTL_ARG_HOSTPORT, false, 0, 0, "stream the image to this receiver (HOST:PORT)"},
    {"strict", CTL_ARG_BOOL, false, 0, 0, "fail if memory not yet saved is discarded"},
    {"window", CTL_ARG_INT, false, 1, 512, "pages saved around each write fault (16)"},
    {"copy-threads", CTL_ARG_INT, false, 1, SNAP_MAX_COPY_THREADS,
     "threads saving what the target has not written (half the CPUs, <= 4)"},
    {"mem-limit", CTL_ARG_INT, false, 1, SVC_MAX_JOB_MEM_MIB,
     "MiB of image data held in memory while the output lags (32 for fd/file, 64 for to)"},
    {"precopy", CTL_ARG_BOOL, false, 0, 0, "pre-copy: no write of the target ever waits"},
    CTL_PRECOPY_ARGS,
    {"incremental", CTL_ARG_BOOL, false, 0, 0, "a chain of images FILE-NNNN.img"},
    {"every", CTL_ARG_INT, false, 1, 86400, "chain: seconds from one image to the next"},
    {"count", CTL_ARG_INT, false, 0, 1000000, "chain: images to take (0: until cancel)"},
    {NULL},
};
static const struct ctl_arg migrate_args[] = {
    {"qemu", CTL_ARG_NAME, true, 0, 0, "the guest of this QMP connection (from getfd)"},
    {"to", CTL_ARG_HOSTPORT, true, 0, 0, "the migration receiver (uffsnapd --receive --qemu)"},
    CTL_PRECOPY_ARGS,
    {NULL},
};
static const struct ctl_arg receive_args[] = {
    {"listen", CTL_ARG_HOSTPORT, true, 0, 0, "ADDR:PORT to accept senders on (port 0: any)"},
    {NULL},
};
static const struct ctl_arg id_args[] = {
    {"id", CTL_ARG_INT, true, 1, CTL_JOBID_MAX, "the job"},
    {NULL},
};
static const struct ctl_arg fdname_args[] = {
    {"fdname", CTL_ARG_NAME, true, 0, 0, "the fd's name on this connection"},
    {NULL},
};

const struct ctl_command svc_commands[] = {
    {"snapshot", cmd_snapshot, "start a snapshot job", snapshot_args, snapshot_check},
    {"migrate", cmd_migrate, "start a live migration job of a QEMU guest", migrate_args, NULL},
    {"receive", cmd_receive, "start a receiver job (root or the daemon's user)", receive_args,
     NULL},
    {"query-jobs", cmd_query_jobs, "list the jobs you may see", NULL, NULL},
    {"query-job", cmd_query_job, "one job", id_args, NULL},
    {"cancel", cmd_cancel, "end a running job", id_args, NULL},
    {"query-status", cmd_query_status, "version, kernel features, limits, jobs", NULL, NULL},
    {"quit", cmd_quit, "cancel the jobs and exit (needs --allow-quit)", NULL, NULL},
    {"getfd", cmd_getfd, "name the fd passed with this line", fdname_args, NULL},
    {"closefd", cmd_closefd, "close a named fd", fdname_args, NULL},
    {NULL},
};

void svc_handle_line(struct svc_client *c, const char *line, size_t len)
{
	struct ctl_request req;
	struct ctl_error err = {0};
	json_t *ret = NULL;
	int r = ctl_request_parse(svc_commands, line, len, &req, &err);

	if (c->fds_dropped) { /* this request came with more fds than a connection may hold */
		c->fds_dropped = false;
		r = ctl_fail(&err, CTL_E_LIMIT,
			     "more than %d fds were passed on this connection; "
			     "the extra ones were closed (closefd the ones you no longer need)",
			     SVC_FDS_MAX);
	}
	if (r >= 0)
		ret = req.cmd->handler(c, &req, &err);
	if (ret)
		svc_client_send(c, ctl_line_return(ret, req.id));
	else
		svc_client_send(c, ctl_line_error(&err, req.id));
	if (c->created) {
		json_t *data = json_pack("{s:I}", "id", (json_int_t)c->created->id);

		if (data)
			c->created->ops->created(c->created, data);
		svc_job_event(c->svc, c->created, "JOB_CREATED", data);
		c->created = NULL;
	}
	ctl_request_clear(&req);
}
