/* SPDX-License-Identifier: MIT */
/*
 * uffsnapctl qemu restore against real QEMUs (TCG, no guest kernel: the guest sits in its
 * firmware, which is enough). A source QEMU with a memfd backend (share=on) is stopped and its
 * device state taken with x-ignore-shared through a pipe; an image is built with the writer
 * from that state and the RAM read from QEMU's memfd. Then: destinations that differ (machine
 * type, backend id, backend size) are refused naming the difference, their files untouched; a
 * matching one gets the RAM byte for byte (holes where zero) and runs after the restore; and
 * uffsnapctl starts one itself from the recorded command line (--dry-run first).
 * Usage: test-qemu-restore UFFSNAPCTL (UFFSNAP_TEST_KEEP=1 keeps its directory). Exit 0 pass, 1
 * fail, 77 skip (no QEMU).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qmp.h"
#include "test-proc.h"
#include "uffsnap/image.h"

#define QEMU	 "qemu-system-x86_64"
#define MACHINE	 "pc-i440fx-7.2"
#define RAM_SIZE (64u << 20)
#define RAM_ADDR 0x7f0000000000ull
#define PAGE	 4096u

static const char *uffsnapctl;
static char tmp[] = "/tmp/test-qemu-restore.XXXXXX";
static int failures;

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                       \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

struct qemu {
	pid_t pid;
	struct qmp *q;
	char sock[PATH_MAX];
};

/* Starts QEMU with args (NULL-ended, after the common ones) and connects to its QMP. */
static int qemu_start(struct qemu *qe, const char *name, const char *const *args)
{
	const char *argv[64] = {QEMU, "-accel", "tcg", "-nodefaults", "-display", "none", "-qmp"};
	char qmp[PATH_MAX + 32], msg[256];
	int n = 7;

	snprintf(qe->sock, sizeof(qe->sock), "%s/%s.sock", tmp, name);
	snprintf(qmp, sizeof(qmp), "unix:%s,server=on,wait=off", qe->sock);
	argv[n++] = qmp;
	while (*args)
		argv[n++] = *args++;
	argv[n] = NULL;
	qe->pid = fork();
	if (qe->pid == 0) {
		execvp(QEMU, (char **)argv);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		if (access(qe->sock, F_OK) == 0 &&
		    qmp_open_path(qe->sock, 10000, &qe->q, msg, sizeof(msg)) == 0)
			return 0;
		if (waitpid(qe->pid, NULL, WNOHANG) == qe->pid)
			break;
		usleep(20000);
	}
	fprintf(stderr, "cannot start %s QEMU\n", name);
	return -1;
}

static void qemu_stop(struct qemu *qe)
{
	if (qe->q)
		qmp_close(qe->q);
	if (qe->pid > 0) {
		kill(qe->pid, SIGKILL);
		waitpid(qe->pid, NULL, 0);
	}
	*qe = (struct qemu){0};
}

static int exec_cmd(struct qmp *q, const char *cmd, json_t *args, int fd, json_t **ret)
{
	char msg[256];
	int r = qmp_exec(q, cmd, args, fd, ret, msg, sizeof(msg));

	if (r < 0)
		fprintf(stderr, "%s: %s\n", cmd, msg);
	json_decref(args);
	return r;
}

static char *qemu_status(struct qmp *q)
{
	json_t *st = NULL;
	char *s = NULL;

	if (exec_cmd(q, "query-status", NULL, -1, &st) == 0)
		s = strdup(json_string_value(json_object_get(st, "status")));
	json_decref(st);
	return s;
}

/* QEMU's memfd backing its guest RAM, opened through /proc. */
static int qemu_memfd(pid_t pid)
{
	char path[PATH_MAX];

	if (test_proc_find_fd(pid, "/memfd:memory-backend-memfd", path, sizeof(path)) <= 0)
		return -1;
	return open(path, O_RDONLY | O_CLOEXEC);
}

/* Stops the source and takes its device state (x-ignore-shared) through a pipe. */
static int take_devstate(struct qmp *q, uint8_t **ret, size_t *ret_len)
{
	size_t len = 0, cap = 1 << 20;
	uint8_t *buf = malloc(cap);
	json_t *ev = NULL;
	char msg[256];
	int p[2], r;

	if (!buf || pipe2(p, O_CLOEXEC) < 0)
		return -1;
	r = exec_cmd(q, "migrate-set-capabilities",
		     json_pack("{s:[{s:s,s:b},{s:s,s:b}]}", "capabilities", "capability",
			       "x-ignore-shared", "state", 1, "capability", "events", "state", 1),
		     -1, NULL);
	if (!r)
		r = exec_cmd(q, "stop", NULL, -1, NULL);
	if (!r)
		r = exec_cmd(q, "getfd", json_pack("{s:s}", "fdname", "ds"), p[1], NULL);
	close(p[1]);
	if (!r)
		r = exec_cmd(q, "migrate", json_pack("{s:s}", "uri", "fd:ds"), -1, NULL);
	for (ssize_t n = 1; !r && n > 0;) { /* QEMU closes its end when the stream is done */
		if (len == cap && !(buf = realloc(buf, cap *= 2)))
			return -1;
		n = read(p[0], buf + len, cap - len);
		len += n > 0 ? n : 0;
	}
	close(p[0]);
	if (!r)
		r = qmp_wait_event(q, "MIGRATION", 30000, &ev, msg, sizeof(msg));
	json_decref(ev);
	*ret = buf;
	*ret_len = len;
	return r || !len ? -1 : 0;
}

static const char *const source_args[] = {
    "-machine", MACHINE ",memory-backend=ram0",
    "-m",	"64M",
    "-object",	"memory-backend-memfd,id=ram0,size=64M,share=on",
    NULL};

/* The image: guest metadata as uffsnapd writes it, the device state, RAM pages (ZERO runs). */
/* Writes ram[from, to) as PAGES and ZERO frames. */
static int write_ram(struct img_writer *w, const uint8_t *ram, uint64_t from, uint64_t to)
{
	int r = 0;

	for (uint64_t off = from; !r && off < to;) {
		static const uint8_t zero[PAGE];
		bool z = !memcmp(ram + off, zero, PAGE);
		uint64_t end = off + PAGE;

		while (end < to && !memcmp(ram + end, zero, PAGE) == z)
			end += PAGE;
		r = z ? img_writer_zero(w, RAM_ADDR + off, (end - off) / PAGE)
		      : img_writer_pages(w, RAM_ADDR + off, (end - off) / PAGE, ram + off);
		off = end;
	}
	return r;
}

/* The image of ds and ram; the page at hole (if not 0) recorded as discarded instead. */
static int write_image(const char *path, const uint8_t *ds, size_t ds_len, const uint8_t *ram,
		       uint64_t hole)
{
	json_t *argv = json_pack(
	    "[s,s,s,s,s,s,s,s,s,s,s,s,s,s]", QEMU, "-accel", "tcg", "-nodefaults", "-display",
	    "none", "-machine", MACHINE ",memory-backend=ram0", "-m", "64M", "-object",
	    "memory-backend-memfd,id=ram0,size=64M,share=on", "-incoming", "tcp:127.0.0.1:1");
	json_t *meta = json_pack(
	    "{s:s,s:i,s:{s:s,s:s,s:s,s:s,s:o,s:[{s:s,s:s,s:I,s:s,s:b}],s:{s:I,s:I}}}", "format",
	    "uffsnap", "version", 1, "guest", "hypervisor", "qemu", "qemu_version", "7.2.22",
	    "machine", MACHINE, "binary", "/usr/bin/" QEMU, "argv", argv, "backends", "id", "ram0",
	    "type", "memory-backend-memfd", "size", (json_int_t)RAM_SIZE, "addr", "0x7f0000000000",
	    "share", 1, "devstate", "size", (json_int_t)ds_len, "crc32c",
	    (json_int_t)img_crc32c(0, ds, ds_len));
	char *text = json_dumps(meta, JSON_COMPACT);
	struct img_writer_opts opts = {.page_size = PAGE};
	struct img_writer *w = NULL;
	struct img_sink *s = NULL;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), r;

	r = fd < 0 || !text ? -EIO : img_sink_fd_new(fd, &s);
	if (!r)
		r = img_writer_new(&opts, s, &w);
	if (!r)
		r = img_writer_begin(w, text, strlen(text));
	if (!r)
		r = img_writer_devstate(w, ds, ds_len);
	if (!r && hole) {
		r = write_ram(w, ram, 0, hole);
		if (!r)
			r = img_writer_discarded(w, RAM_ADDR + hole, 1);
		if (!r)
			r = write_ram(w, ram, hole + PAGE, RAM_SIZE);
	} else if (!r) {
		r = write_ram(w, ram, 0, RAM_SIZE);
	}
	if (!r)
		r = img_writer_finish(w);
	img_writer_free(w);
	img_sink_free(s);
	if (fd >= 0)
		close(fd);
	free(text);
	json_decref(meta);
	return r;
}

/* Runs uffsnapctl with args; its stderr goes to tmp/err, stdout to tmp/out. */
static int run_ctl(const char *const *args)
{
	const char *argv[32] = {uffsnapctl};
	char out[PATH_MAX], err[PATH_MAX];
	int n = 1, status;
	pid_t pid;

	while (*args)
		argv[n++] = *args++;
	argv[n] = NULL;
	snprintf(out, sizeof(out), "%s/out", tmp);
	snprintf(err, sizeof(err), "%s/err", tmp);
	pid = fork();
	if (pid == 0) {
		if (!freopen(out, "w", stdout) || !freopen(err, "w", stderr))
			_exit(126);
		execv(uffsnapctl, (char **)argv);
		_exit(127);
	}
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static bool file_has(const char *name, const char *text)
{
	char path[PATH_MAX], buf[8192] = "";
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	f = fopen(path, "re");
	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	fclose(f);
	if (!strstr(buf, text))
		fprintf(stderr, "%s lacks '%s'; it has:\n%s\n", name, text, buf);
	return strstr(buf, text);
}

/* What the last run_ctl() printed on stdout (static buffer). */
static const char *cmd_out(void)
{
	static char buf[8192];
	char path[PATH_MAX];
	FILE *f;
	size_t n = 0;

	snprintf(path, sizeof(path), "%s/out", tmp);
	f = fopen(path, "re");
	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = 0;
	return buf;
}

/* A destination: a file backend (filled with 0xaa so a write shows) and -incoming defer. */
static int dest_start(struct qemu *qe, const char *name, const char *machine, const char *id,
		      const char *size)
{
	char file[PATH_MAX], obj[PATH_MAX + 128], mach[128];
	const char *args[] = {"-machine", mach,	       "-m",	size, "-object",
			      obj,	  "-incoming", "defer", NULL};
	uint64_t bytes = strtoull(size, NULL, 10) << 20;
	uint8_t *fill = malloc(bytes);
	int fd;

	snprintf(file, sizeof(file), "%s/%s.ram", tmp, name);
	snprintf(obj, sizeof(obj), "memory-backend-file,id=%s,size=%sM,mem-path=%s,share=on", id,
		 size, file);
	snprintf(mach, sizeof(mach), "%s,memory-backend=%s", machine, id);
	fd = open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	memset(fill, 0xaa, bytes);
	if (fd < 0 || write(fd, fill, bytes) != (ssize_t)bytes)
		return -1;
	close(fd);
	free(fill);
	if (qemu_start(qe, name, args) < 0)
		return -1;
	qmp_close(qe->q); /* QEMU's -qmp takes one client at a time: uffsnapctl's turn */
	qe->q = NULL;
	return 0;
}

static int qemu_reconnect(struct qemu *qe)
{
	char msg[256];

	if (qmp_open_path(qe->sock, 10000, &qe->q, msg, sizeof(msg)) < 0)
		return fprintf(stderr, "%s: %s\n", qe->sock, msg), -1;
	return 0;
}

static bool file_untouched(const char *name)
{
	char path[PATH_MAX];
	uint8_t buf[PAGE];
	int fd;
	bool ok = true;

	snprintf(path, sizeof(path), "%s/%s.ram", tmp, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	while (fd >= 0 && ok && read(fd, buf, sizeof(buf)) == sizeof(buf))
		for (size_t i = 0; i < sizeof(buf); i++)
			ok &= buf[i] == 0xaa;
	if (fd >= 0)
		close(fd);
	return fd >= 0 && ok;
}

static void check_mismatches(const char *img)
{
	struct qemu d = {0};
	const char *args[] = {"qemu", "restore", img, "--qmp", NULL, NULL};

	if (dest_start(&d, "q35", "pc-q35-7.2", "mem1", "64") == 0) {
		args[4] = d.sock;
		CHECK(run_ctl(args) == 1, "a q35 destination was not refused");
		CHECK(file_has("err", "machine type is pc-q35-7.2, the image's guest ran " MACHINE),
		      "machine type");
		CHECK(file_has("err", "has no memory backend 'ram0'"), "missing backend");
		CHECK(file_has("err", "has memory backend 'mem1', which the image does not have"),
		      "extra backend");
		CHECK(file_untouched("q35"), "a refused destination's file was written");
	}
	qemu_stop(&d);
	if (dest_start(&d, "small", MACHINE, "ram0", "32") == 0) {
		args[4] = d.sock;
		CHECK(run_ctl(args) == 1, "a smaller backend was not refused");
		CHECK(file_has("err", "memory backend 'ram0' has 32.0 MiB (33554432 bytes), the "
				      "image's has 64.0 MiB (67108864 bytes)"),
		      "backend size");
		CHECK(file_untouched("small"), "a refused destination's file was written");
	}
	qemu_stop(&d);
}

/* The backend file holds the RAM exactly, and no blocks where the RAM was zero. */
static void check_ram_file(const char *name, const uint8_t *ram)
{
	char path[PATH_MAX];
	uint8_t *got = malloc(RAM_SIZE);
	uint64_t nonzero = 0;
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0 && pread(fd, got, RAM_SIZE, 0) == RAM_SIZE, "cannot read %s", path);
	CHECK(!memcmp(got, ram, RAM_SIZE), "%s does not hold the guest RAM", path);
	for (uint64_t off = 0; off < RAM_SIZE; off += PAGE) {
		static const uint8_t zero[PAGE];

		nonzero += memcmp(ram + off, zero, PAGE) != 0;
	}
	CHECK(fd >= 0 && fstat(fd, &st) == 0 && (uint64_t)st.st_blocks * 512 <= nonzero * PAGE,
	      "%s: %llu bytes allocated for %llu non-zero pages", path,
	      (unsigned long long)st.st_blocks * 512, (unsigned long long)nonzero);
	if (fd >= 0)
		close(fd);
	free(got);
}

/*
 * The RAM as written, before any guest runs on it: an image whose device state QEMU refuses
 * (the RAM is written first; then QEMU fails the migration and exits).
 */
static void check_ram_written(const char *bad_img, const uint8_t *ram, const char *name,
			      const char *flag)
{
	struct qemu d = {0};
	const char *args[] = {"qemu", "restore", bad_img, "--qmp", NULL, flag, NULL};
	char file[64];

	if (dest_start(&d, name, MACHINE, "ram0", "64") < 0)
		return;
	args[4] = d.sock;
	CHECK(run_ctl(args) == 1, "a bad device state was not refused");
	CHECK(file_has("err", "device state"), "the refusal names the device state");
	snprintf(file, sizeof(file), "%s.ram", name);
	check_ram_file(file, ram);
	qemu_stop(&d);
}

/*
 * A page discarded in the image: refused without --allow-holes; with it, that page is zeros
 * and every page after it in the same chunk is still the image's (they are read one by one).
 */
static void check_holes(const uint8_t *ds, size_t ds_len, uint8_t *ram)
{
	/*
	 * The page after the hole is given data of its own: how much the firmware wrote before
	 * the source stopped depends on the machine's load (under load, sometimes nothing).
	 */
	const uint64_t hole = (16u << 20) + 5 * PAGE;
	char img[PATH_MAX];
	const char *args[] = {"qemu", "restore", img, "--qmp", NULL, NULL};
	struct qemu d = {0};

	for (uint64_t i = 0; i < PAGE; i++)
		ram[hole + PAGE + i] = (uint8_t)(i * 7 + 1);
	snprintf(img, sizeof(img), "%s/holes.img", tmp);
	CHECK(write_image(img, ds, ds_len, ram, hole) == 0, "cannot write %s", img);
	if (dest_start(&d, "holes", MACHINE, "ram0", "64") < 0)
		return;
	args[4] = d.sock;
	CHECK(run_ctl(args) == 1 && file_has("err", "allow-holes"),
	      "an image with a discarded page was not refused");
	CHECK(file_untouched("holes"), "a refused restore wrote the RAM file");
	qemu_stop(&d);
	memset(ram + hole, 0, PAGE);
	check_ram_written(img, ram, "holes2", "--allow-holes");
}

static void check_restore(const char *img)
{
	struct qemu d = {0};
	const char *args[] = {"qemu", "restore", img, "--qmp", NULL, NULL};
	char *st;

	if (dest_start(&d, "dest", MACHINE, "ram0", "64") < 0)
		return;
	args[4] = d.sock;
	CHECK(run_ctl(args) == 0, "the restore failed");
	CHECK(file_has("out", "guest running"), "the restore's report");
	if (qemu_reconnect(&d) < 0)
		return qemu_stop(&d);
	st = qemu_status(d.q);
	CHECK(st && !strcmp(st, "running"), "the restored guest is %s", st);
	free(st);
	exec_cmd(d.q, "stop", NULL, -1, NULL);
	st = qemu_status(d.q);
	CHECK(st && !strcmp(st, "paused"), "the restored guest does not stop (now: %s)", st);
	free(st);
	qemu_stop(&d);
}

static void check_started(const char *img)
{
	char dir[PATH_MAX], sock[PATH_MAX + 16], msg[256];
	const char *dry[] = {"qemu", "restore", img, "--ram-dir", dir, "--dry-run", NULL};
	const char *run[] = {"qemu", "restore", img, "--ram-dir", dir, NULL};
	struct qmp *q = NULL;
	char *st;

	snprintf(dir, sizeof(dir), "%s/started", tmp);
	snprintf(sock, sizeof(sock), "%s/qmp.sock", dir);
	CHECK(run_ctl(dry) == 0, "--dry-run failed");
	CHECK(file_has("out", "memory-backend-file,id=ram0,size=64M,mem-path="), "dry-run backend");
	CHECK(file_has("out", "-incoming defer -qmp unix:"), "dry-run incoming and qmp");
	CHECK(!strstr(cmd_out(), "tcp:127.0.0.1:1"), "dry-run keeps the old -incoming");
	CHECK(access(dir, F_OK) < 0, "--dry-run created %s", dir);
	CHECK(run_ctl(run) == 0, "the restore into a started QEMU failed");
	CHECK(file_has("out", "guest running") && file_has("out", "keeps running"), "report");
	if (qmp_open_path(sock, 10000, &q, msg, sizeof(msg)) == 0) {
		pid_t pid = qmp_peer_pid(q);

		st = qemu_status(q);
		CHECK(st && !strcmp(st, "running"), "the started QEMU is %s", st);
		free(st);
		exec_cmd(q, "quit", NULL, -1, NULL);
		qmp_close(q);
		for (int i = 0; i < 100 && kill(pid, 0) == 0; i++)
			usleep(50000);
	} else {
		CHECK(0, "no QMP at %s: %s", sock, msg);
	}
	/* Its files are never overwritten: a second restore into the same DIR is refused. */
	CHECK(run_ctl(run) == 1 && file_has("err", "refusing to overwrite"), "second restore");
}

int main(int argc, char **argv)
{
	struct qemu src = {0};
	uint8_t *ds = NULL, *ram = malloc(RAM_SIZE);
	size_t ds_len = 0;
	char img[PATH_MAX], cmd[PATH_MAX + 16];
	int fd;

	if (argc != 2)
		return fprintf(stderr, "usage: test-qemu-restore UFFSNAPCTL\n"), 2;
	uffsnapctl = argv[1];
	if (system("command -v " QEMU " >/dev/null") != 0) {
		fprintf(stderr, "SKIP: %s is not installed\n", QEMU);
		return 77;
	}
	if (!mkdtemp(tmp) || qemu_start(&src, "source", source_args) < 0)
		return 1;
	fd = qemu_memfd(src.pid);
	if (fd < 0 || take_devstate(src.q, &ds, &ds_len) < 0 ||
	    pread(fd, ram, RAM_SIZE, 0) != RAM_SIZE) {
		fprintf(stderr, "cannot take the source's device state and RAM\n");
		return 1;
	}
	close(fd);
	qemu_stop(&src);
	snprintf(img, sizeof(img), "%s/guest.img", tmp);
	if (write_image(img, ds, ds_len, ram, 0) < 0)
		return fprintf(stderr, "cannot write the image\n"), 1;
	fprintf(stderr, "device state %zu bytes\n", ds_len);
	check_mismatches(img);
	check_restore(img);
	snprintf(img, sizeof(img), "%s/bad-devstate.img", tmp);
	memcpy(ds, "not QEMU's stream", 17);
	if (write_image(img, ds, ds_len, ram, 0) < 0)
		return fprintf(stderr, "cannot write the image\n"), 1;
	check_ram_written(img, ram, "written", NULL);
	check_holes(ds, ds_len, ram); /* last: it zeroes a page of ram */
	snprintf(img, sizeof(img), "%s/guest.img", tmp);
	check_started(img);
	free(ds);
	free(ram);
	if (!failures && !getenv("UFFSNAP_TEST_KEEP")) { /* else left to look at */
		snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", tmp);
	}
	fprintf(stderr, "%s\n", failures ? "FAILED" : "all qemu restore checks passed");
	return failures ? 1 : 0;
}
