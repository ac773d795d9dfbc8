/* SPDX-License-Identifier: MIT */
/*
 * uffsnapctl qemu restore: a QEMU guest's image back into a stock QEMU. Into a QEMU the user
 * started with -incoming defer (--qmp SOCKET), or into one it starts itself from the command
 * line the image recorded. Everything is checked before anything is written: the image (its
 * RAM whole, its device state whole), then the destination (inmigrate, machine type, backends).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli-args.h"
#include "cli-image.h"
#include "cli-meta.h"
#include "cli-qemu.h"
#include "cmd-qemu.h"

/* Bounds on QEMU: each QMP reply, the device state's load, a started QEMU's QMP socket. */
#define RESTORE_QMP_TIMEOUT_MS	 10000
#define RESTORE_LOAD_TIMEOUT_MS	 120000
#define RESTORE_START_TIMEOUT_MS 30000

struct restore_args {
	const char *path, *qmp, *ram_dir;
	bool dry_run, allow_holes;
	char **qemu_args; /* after "--", or NULL */
	int nqemu_args;
};

struct restore {
	const char *name; /* the image, for messages */
	struct img_reader *reader;
	struct cli_qemu_guest guest;
	void *devstate;
	size_t devstate_len;
	struct cli_qemu_ram_stats ram;
	struct cli_qemu_load_stats load;
	pid_t qemu_pid;
	char msg[512];
};

/* The one line about what failed goes into rs->msg. */
#define rs_fail(rs, err, ...) cli_qemu_fail((rs)->msg, sizeof((rs)->msg), err, __VA_ARGS__)

static int restore_parse(const struct cli_invocation *inv, int argc, char **argv,
			 struct restore_args *a)
{
	static const struct option opts[] = {
	    {"qmp", required_argument, NULL, 'q'},
	    {"ram-dir", required_argument, NULL, 'd'},
	    {"dry-run", no_argument, NULL, 'n'},
	    {"allow-holes", no_argument, NULL, 'H'},
	    {NULL, 0, NULL, 0},
	};
	int c, end = argc;

	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--")) {
			end = i;
			a->qemu_args = argv + i + 1;
			a->nqemu_args = argc - i - 1;
			break;
		}
	while ((c = cli_getopt(inv, end, argv, "", opts)) != -1) {
		if (c == 'q')
			a->qmp = optarg;
		else if (c == 'd')
			a->ram_dir = optarg;
		else if (c == 'n')
			a->dry_run = true;
		else if (c == 'H')
			a->allow_holes = true;
		else
			return -EINVAL;
	}
	a->path = cli_one_operand(inv, end, argv, "FILE");
	if (!a->path)
		return -EINVAL;
	if (a->qmp && (a->ram_dir || a->dry_run || a->qemu_args))
		return cli_usage_error(inv,
				       "--qmp restores into a QEMU you started: --ram-dir, "
				       "--dry-run and QEMU-ARGS are for one uffsnapctl starts"),
		       -EINVAL;
	if (a->qemu_args && !a->nqemu_args)
		return cli_usage_error(inv, "nothing after '--': give QEMU's command line"),
		       -EINVAL;
	return 0;
}

/* The image's guest metadata, device state and RAM, checked before anything is touched. */
static int restore_load_image(struct restore *rs, bool allow_holes)
{
	int r =
	    cli_qemu_guest_load(img_reader_meta(rs->reader), &rs->guest, rs->msg, sizeof(rs->msg));

	if (r == -ENOMEDIUM)
		snprintf(rs->msg, sizeof(rs->msg),
			 "not a QEMU guest's image (no guest metadata): "
			 "nothing to restore into QEMU");
	if (r < 0)
		return r;
	r = img_reader_devstate(rs->reader, &rs->devstate, &rs->devstate_len);
	if (r == -ENOENT || r == -ENODATA || r == -EBADMSG)
		return rs_fail(rs, r, "%s",
			       r == -ENOENT    ? "the image holds no device state"
			       : r == -ENODATA ? "the image ends inside its device state "
						 "(incomplete): the guest cannot be restored"
					       : "the image's device state is corrupt");
	if (r < 0)
		return rs_fail(rs, r, "reading the device state: %s", strerror(-r));
	if (rs->guest.devstate_recorded &&
	    (rs->guest.devstate_size != rs->devstate_len ||
	     img_crc32c(0, rs->devstate, rs->devstate_len) != rs->guest.devstate_crc))
		return rs_fail(rs, -EBADMSG,
			       "the device state (%zu bytes) does not match the %" PRIu64
			       " bytes and CRC the metadata records",
			       rs->devstate_len, rs->guest.devstate_size);
	return cli_qemu_ram_check(rs->reader, &rs->guest, allow_holes, rs->msg, sizeof(rs->msg));
}

/* Writes each backend's RAM into the file the destination maps it from. */
static int restore_ram(struct restore *rs, struct qmp *q)
{
	for (size_t i = 0; i < rs->guest.nbackends; i++) {
		const struct cli_qemu_backend *b = &rs->guest.backends[i];
		char *path = NULL;
		struct stat st;
		int fd = -EBADF,
		    r = cli_qemu_backend_path(q, b->id, &path, rs->msg, sizeof(rs->msg));

		if (r >= 0 && (fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)) < 0)
			r = -errno, snprintf(rs->msg, sizeof(rs->msg), "backend %s: %s: %s", b->id,
					     path, strerror(errno));
		if (r >= 0)
			r = cli_qemu_ram_check_unmapped(fd, path, qmp_peer_pid(q), rs->msg,
							sizeof(rs->msg));
		if (r >= 0 && (fstat(fd, &st) < 0 || (uint64_t)st.st_size < b->size))
			r = -EFBIG,
			snprintf(rs->msg, sizeof(rs->msg),
				 "backend %s: %s is smaller than the backend", b->id, path);
		if (r >= 0)
			r = cli_qemu_ram_write(rs->reader, b, fd, &rs->ram, rs->msg,
					       sizeof(rs->msg));
		if (fd >= 0)
			close(fd);
		free(path);
		if (r < 0)
			return r;
	}
	return 0;
}

static void restore_report(const struct restore *rs, const char *where, int64_t t0)
{
	char total[32], written[32], holes[32], ds[32];
	uint64_t ram = 0;

	for (size_t i = 0; i < rs->guest.nbackends; i++)
		ram += rs->guest.backends[i].size;
	printf("restored %s into QEMU pid %d (%s): RAM %s in %zu backend%s (%s written, %s "
	       "holes), device state %s loaded in %" PRIu64 " ms, guest %s; %.1f s in all\n",
	       rs->name, (int)rs->qemu_pid, where, cli_format_size(ram, total, sizeof(total)),
	       rs->guest.nbackends, rs->guest.nbackends == 1 ? "" : "s",
	       cli_format_size(rs->ram.bytes_written, written, sizeof(written)),
	       cli_format_size(rs->ram.hole_bytes, holes, sizeof(holes)),
	       cli_format_size(rs->devstate_len, ds, sizeof(ds)), rs->load.migrate_ms,
	       rs->load.status, (cli_qemu_now_ms() - t0) / 1000.0);
	if (rs->ram.missing_bytes)
		printf("warning: %s of guest RAM missing from the image were restored as zeros\n",
		       cli_format_size(rs->ram.missing_bytes, holes, sizeof(holes)));
}

/* Checks the destination, writes the RAM, loads the device state, conts. */
static int restore_into(struct restore *rs, const char *socket, int64_t t0)
{
	struct qmp *q = NULL;
	char where[4096 + 16];
	int r = qmp_open_path(socket, RESTORE_QMP_TIMEOUT_MS, &q, rs->msg, sizeof(rs->msg));

	snprintf(where, sizeof(where), "QMP %s", socket);
	if (r < 0)
		return r;
	rs->qemu_pid = qmp_peer_pid(q);
	r = cli_qemu_check_dest(q, where, &rs->guest, rs->msg, sizeof(rs->msg));
	if (r >= 0)
		r = restore_ram(rs, q);
	if (r >= 0)
		r = cli_qemu_load(q, rs->devstate, rs->devstate_len, RESTORE_LOAD_TIMEOUT_MS,
				  &rs->load, rs->msg, sizeof(rs->msg));
	if (r >= 0)
		restore_report(rs, where, t0);
	qmp_close(q);
	return r;
}

/* --- starting QEMU ourselves ------------------------------------------------------------- */

/*
 * DIR: --ram-dir, else a new directory beside the image, named after it (x.img: x.restore);
 * absolute, as QEMU gets it in mem-path= and -qmp.
 */
static char *restore_dir(const struct restore_args *a)
{
	const char *base = a->ram_dir ? a->ram_dir : a->path;
	size_t n = strlen(base);
	char cwd[4096], *dir = NULL;

	if (!a->ram_dir && n > 4 && !strcmp(base + n - 4, ".img"))
		n -= 4;
	if (base[0] != '/' && !getcwd(cwd, sizeof(cwd)))
		return NULL;
	if (asprintf(&dir, "%s%s%.*s%s", base[0] == '/' ? "" : cwd, base[0] == '/' ? "" : "/",
		     (int)n, base, a->ram_dir ? "" : ".restore") < 0)
		return NULL;
	return dir;
}

/*
 * The recorded command line keeps the snapshotted QEMU's monitors: a unix socket of one that
 * exists now is probably that QEMU's, and the restored QEMU would take its path over.
 */
static void restore_warn_sockets(char **qargv)
{
	for (size_t i = 1; qargv[i] && qargv[i + 1]; i++) {
		const char *v = qargv[i + 1];
		char path[4096];
		struct stat st;

		if (strcmp(qargv[i], "-qmp") && strcmp(qargv[i], "-qmp-pretty") &&
		    strcmp(qargv[i], "-monitor") && strcmp(qargv[i], "-serial"))
			continue;
		if (strncmp(v, "unix:", 5))
			continue;
		snprintf(path, sizeof(path), "%.*s", (int)strcspn(v + 5, ","), v + 5);
		if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode))
			fprintf(stderr,
				"uffsnapctl: warning: the command line keeps %s %s, whose "
				"socket exists (the snapshotted QEMU may listen there): the "
				"restored QEMU takes its path over; give QEMU-ARGS after -- "
				"to change it\n",
				qargv[i], v);
	}
}

/* New, empty RAM files of the backends' sizes: never a file someone may have mapped. */
static int restore_make_dir(struct restore *rs, const char *dir, bool given)
{
	char path[4096];

	if (mkdir(dir, 0700) < 0 && (errno != EEXIST || !given))
		return rs_fail(rs, -errno, "cannot create %s: %s%s", dir, strerror(errno),
			       errno == EEXIST ? " (choose another with "
						 "--ram-dir, or remove it)"
					       : "");
	for (size_t i = 0; i < rs->guest.nbackends; i++) {
		const struct cli_qemu_backend *b = &rs->guest.backends[i];
		int fd;

		snprintf(path, sizeof(path), "%s/%s.ram", dir, b->id);
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0)
			return rs_fail(rs, -errno, "cannot create %s: %s%s", path, strerror(errno),
				       errno == EEXIST ? " (a restored QEMU may "
							 "use it: refusing to "
							 "overwrite it)"
						       : "");
		if (ftruncate(fd, b->size) < 0) {
			int e = -errno;

			close(fd);
			return rs_fail(rs, e, "%s: %s", path, strerror(-e));
		}
		close(fd);
	}
	return 0;
}

/* Starts QEMU in its own session, output to DIR/qemu.log; it outlives uffsnapctl. */
static int restore_spawn(struct restore *rs, char **qargv, const char *dir)
{
	char log[4096];
	int fd;
	pid_t pid;

	snprintf(log, sizeof(log), "%s/qemu.log", dir);
	fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return rs_fail(rs, -errno, "%s: %s", log, strerror(errno));
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		setsid();
		if (null < 0 || dup2(null, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(127);
		execvp(qargv[0], qargv);
		dprintf(2, "uffsnapctl: cannot run %s: %s\n", qargv[0], strerror(errno));
		_exit(127);
	}
	close(fd);
	if (pid < 0)
		return rs_fail(rs, -errno, "fork: %s", strerror(errno));
	rs->qemu_pid = pid;
	return 0;
}

/* Waits for the QMP socket to appear, or QEMU to exit (then its log's last line says why). */
static int restore_wait_socket(struct restore *rs, const char *dir, const char *sock)
{
	int64_t deadline = cli_qemu_now_ms() + RESTORE_START_TIMEOUT_MS;
	struct stat st;
	int status;

	while (stat(sock, &st) < 0) {
		if (waitpid(rs->qemu_pid, &status, WNOHANG) == rs->qemu_pid) {
			char line[256] = "", path[4096];
			FILE *f;

			snprintf(path, sizeof(path), "%s/qemu.log", dir);
			if ((f = fopen(path, "re"))) {
				while (fgets(line, sizeof(line), f))
					;
				fclose(f);
			}
			line[strcspn(line, "\n")] = 0;
			rs->qemu_pid = 0;
			return rs_fail(rs, -ECHILD,
				       "QEMU exited (status %d) before "
				       "opening its QMP socket: %s",
				       WIFEXITED(status) ? WEXITSTATUS(status)
							 : 128 + WTERMSIG(status),
				       line[0] ? line : path);
		}
		if (cli_qemu_now_ms() > deadline)
			return rs_fail(rs, -ETIMEDOUT, "QEMU did not open %s within %d s", sock,
				       RESTORE_START_TIMEOUT_MS / 1000);
		usleep(20 * 1000);
	}
	return 0;
}

static int restore_started(struct restore *rs, const struct restore_args *a, int64_t t0)
{
	char *dir = restore_dir(a), sock[4096], **qargv = NULL;
	int r = dir ? 0 : -ENOMEM;

	if (r >= 0)
		r = cli_qemu_argv_build(&rs->guest, a->qemu_args, a->nqemu_args, dir, &qargv,
					rs->msg, sizeof(rs->msg));
	if (r >= 0)
		restore_warn_sockets(qargv);
	if (r >= 0 && a->dry_run) {
		cli_qemu_argv_print(stdout, qargv);
		goto out;
	}
	snprintf(sock, sizeof(sock), "%s/qmp.sock", dir ? dir : "");
	if (r >= 0)
		r = restore_make_dir(rs, dir, a->ram_dir);
	if (r >= 0 && access(sock, F_OK) == 0)
		r = rs_fail(rs, -EEXIST, "%s exists: another restored QEMU may listen there", sock);
	if (r >= 0)
		r = restore_spawn(rs, qargv, dir);
	if (r >= 0)
		r = restore_wait_socket(rs, dir, sock);
	if (r >= 0)
		r = restore_into(rs, sock, t0);
	if (r >= 0) {
		printf("QEMU pid %d keeps running: QMP %s, output in %s/qemu.log\n",
		       (int)rs->qemu_pid, sock, dir);
	} else if (rs->qemu_pid > 0) {
		/* A QEMU that could not take the guest is of no use: stop the one we started. */
		kill(rs->qemu_pid, SIGTERM);
		waitpid(rs->qemu_pid, NULL, 0);
	}
out:
	cli_qemu_argv_free(qargv);
	free(dir);
	return r;
}

int cmd_qemu_restore(const struct cli_invocation *inv, int argc, char **argv)
{
	struct cli_image img = {.fd = -EBADF};
	struct restore_args a = {0};
	struct restore rs = {0};
	int64_t t0 = cli_qemu_now_ms();
	int r, ret = CLI_EXIT_FAILURE;

	if (restore_parse(inv, argc, argv, &a) < 0)
		return CLI_EXIT_USAGE;
	if (cli_image_open(a.path, &img) < 0)
		return CLI_EXIT_FAILURE;
	rs.name = img.name;
	if (cli_image_reader_open(&img, "restoring a guest", &rs.reader) < 0)
		goto out;
	/* Its own pages are only what changed since its parent: the rest would be missing. */
	if (img_reader_flags(rs.reader) & IMG_HEADER_F_INCREMENTAL) {
		cli_file_error(rs.name,
			       "an incremental image: restore a full one, e.g. made with "
			       "`uffsnapctl image flatten %s --output FULL`",
			       rs.name);
		goto out;
	}
	r = restore_load_image(&rs, a.allow_holes);
	if (r >= 0 && a.qmp)
		r = restore_into(&rs, a.qmp, t0);
	else if (r >= 0)
		r = restore_started(&rs, &a, t0);
	if (r < 0)
		cli_file_error(rs.name, "%s", rs.msg[0] ? rs.msg : strerror(-r));
	if (r >= 0)
		ret = CLI_EXIT_OK;
out:
	free(rs.devstate);
	cli_qemu_guest_free(&rs.guest);
	img_reader_free(rs.reader);
	cli_image_close(&img);
	return ret;
}
