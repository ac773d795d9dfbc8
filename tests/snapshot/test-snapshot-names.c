/* SPDX-License-Identifier: MIT */
/*
 * A target whose names are not UTF-8 is snapshotted like any other. Linux takes any bytes but
 * '/' and NUL in a file name and any in a command name, while JSON strings are Unicode; the
 * image's metadata used to be refused ("cannot write the image: Cannot allocate memory")
 * when the executable, a mapped file or the command name held such bytes.
 *
 * The test copies itself to a file named "exe\xff" in a fresh directory and runs that copy as
 * the target, with an argument holding 0xfe; the target names itself "na\xfdme" and maps a
 * file named "map\xfc" privately. uffsnapd must succeed, and the metadata must show each name
 * with the byte written as \xNN (engine/ustr.h): target.exe, target.comm, process.cmdline and
 * the mapped file's VMA path.
 *
 * usage: test-snapshot-names UFFSNAPD WORKLOAD CHECK
 *        test-snapshot-names --target MAPPED_FILE ARG (the target itself)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "snap-harness.h"
#include "uffsnap/image.h"

#define MAP_LEN 8192

/* The target: maps the file, names itself, says so on stdout, waits to be killed. */
static int target_main(const char *file)
{
	int fd = open(file, O_RDWR | O_CLOEXEC);
	char *p =
	    fd < 0 ? MAP_FAILED : mmap(NULL, MAP_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (p == MAP_FAILED || prctl(PR_SET_NAME, "na\xfdme") < 0)
		return 1;
	p[0] = 1; /* a private page of its own */
	if (write(STDOUT_FILENO, "y", 1) != 1)
		return 1;
	for (;;)
		pause();
}

static int copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY | O_CLOEXEC), out = -1, r = -1;
	struct stat st;

	if (in >= 0 && fstat(in, &st) == 0)
		out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
	if (out >= 0 && sendfile(out, in, NULL, st.st_size) == st.st_size)
		r = 0;
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return r;
}

static pid_t start_target(const char *exe, const char *file, int *ret_ready)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		execl(exe, exe, "--target", file, "arg\xfe", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	*ret_ready = p[0];
	return pid;
}

/* Does s (NULL: no) end with want? */
static bool ends_with(const char *s, const char *want)
{
	size_t n = s ? strlen(s) : 0, w = strlen(want);

	return n >= w && !strcmp(s + n - w, want);
}

static int check_meta(const char *image)
{
	int fd = open(image, O_RDONLY | O_CLOEXEC), r = -1;
	struct img_reader *rd = NULL;
	struct img_error e;
	json_t *m = NULL, *t, *proc, *v;
	size_t i;
	bool mapped = false;

	if (fd < 0 || img_reader_open(fd, &rd, &e) < 0 || !img_reader_complete(rd) ||
	    !(m = json_loads(img_reader_meta(rd), 0, NULL))) {
		fprintf(stderr, "FAIL: the image is not complete, or its metadata not JSON\n");
		goto out;
	}
	t = json_object_get(m, "target");
	proc = json_object_get(m, "process");
	json_array_foreach(json_object_get(m, "vmas"), i, v) mapped |=
	    ends_with(json_string_value(json_object_get(v, "path")), "/map\\xfc");
	if (!ends_with(json_string_value(json_object_get(t, "exe")), "/exe\\xff"))
		fprintf(stderr, "FAIL: target.exe is %s\n",
			json_string_value(json_object_get(t, "exe")));
	else if (strcmp(json_string_value(json_object_get(t, "comm")) ?: "", "na\\xfdme"))
		fprintf(stderr, "FAIL: target.comm is %s\n",
			json_string_value(json_object_get(t, "comm")));
	else if (!mapped)
		fprintf(stderr, "FAIL: no VMA has the path .../map\\xfc\n");
	else if (!ends_with(json_string_value(json_object_get(proc, "cmdline")), " arg\\xfe"))
		fprintf(stderr, "FAIL: process.cmdline is %s\n",
			json_string_value(json_object_get(proc, "cmdline")));
	else
		r = 0;
out:
	json_decref(m);
	img_reader_free(rd);
	if (fd >= 0)
		close(fd);
	return r;
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/uffsnap-names.XXXXXX", exe[64], file[64], image[64];
	struct snap_paths p;
	pid_t pid = -1;
	int ready = -1, rc = 1, fd;
	char c;

	if (argc > 2 && !strcmp(argv[1], "--target"))
		return target_main(argv[2]);
	snap_paths_parse(argc, argv, &p);
	if (getuid() != 0) {
		printf("SKIP: needs root (ptrace any process, /dev/userfaultfd)\n");
		return 77;
	}
	if (!mkdtemp(dir))
		return perror("mkdtemp"), 1;
	snprintf(exe, sizeof(exe), "%s/exe\xff", dir);
	snprintf(file, sizeof(file), "%s/map\xfc", dir);
	snprintf(image, sizeof(image), "%s/image", dir);
	fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, MAP_LEN) < 0 || copy_file("/proc/self/exe", exe) < 0) {
		perror("setting up the target");
		goto out;
	}
	pid = start_target(exe, file, &ready);
	if (pid < 0 || read(ready, &c, 1) != 1) {
		fprintf(stderr, "FAIL: the target did not start\n");
		goto out;
	}
	if (snap_wait(snap_start(&p, pid, image, NULL)) != 0) {
		fprintf(stderr, "FAIL: uffsnapd failed\n");
		goto out;
	}
	if (check_meta(image) == 0 && snap_target_released(pid) == 0) {
		printf("ok: the names are in the metadata, escaped\n");
		rc = 0;
	}
out:
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (fd >= 0)
		close(fd);
	if (ready >= 0)
		close(ready);
	unlink(exe);
	unlink(file);
	unlink(image);
	snprintf(image, sizeof(image), "%s/image.json", dir);
	unlink(image);
	rmdir(dir);
	return rc;
}
