// SPDX-License-Identifier: MIT
/*
 * Starting and stopping the test guest, and reading its serial log (guest-harness.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "guest-harness.h"
#include "test-check.h"
#include "test-proc.h"

/*
 * Kept small and quiet so that TCG boots it fast (no modules, no udev, no messages).
 * no_timer_check: a TCG vCPU starved by a loaded host can miss the kernel's IO-APIC timer check
 * at boot, which then panics ("IO-APIC + timer doesn't work"); the usual setting for guests.
 */
#define GUEST_APPEND "console=ttyS0 quiet loglevel=1 panic=-1 mitigations=off no_timer_check"
#define GUEST_MACHINE "pc-i440fx-7.2" /* explicit: a restore needs the exact machine type */
#define MEMFD_LINK "/memfd:memory-backend-memfd"

static int fail(char *why, size_t why_len, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, why_len, fmt, ap);
	va_end(ap);
	return r;
}

static int find_file(char *dst, size_t len, const char *env, const char *built_in)
{
	const char *p = getenv(env);

	snprintf(dst, len, "%s", p && *p ? p : built_in);
	return *dst && access(dst, R_OK) == 0 ? 0 : -ENOENT;
}

int guest_config_find(struct guest_config *ret, char *why, size_t why_len)
{
	struct guest_config c = {.pages = 4096, .per_tick = 1024, .period_ms = 1};

	if (find_file(c.qemu, sizeof(c.qemu), "UFFSNAP_GUEST_QEMU", UFFSNAP_GUEST_QEMU) < 0 ||
	    access(c.qemu, X_OK) < 0)
		return fail(why, why_len, -ENOENT,
			    "no QEMU at '%s': install qemu-system-x86 (./dev does)", c.qemu);
	if (find_file(c.kernel, sizeof(c.kernel), "UFFSNAP_GUEST_KERNEL", UFFSNAP_GUEST_KERNEL) < 0)
		return fail(why, why_len, -ENOENT,
			    "no guest kernel at '%s': ./dev build fetches one (Debian's "
			    "linux-image-6.1.0-N-amd64) and passes -DUFFSNAP_GUEST_KERNEL=PATH; "
			    "see tests/guest/README.md",
			    c.kernel);
	if (find_file(c.initrd, sizeof(c.initrd), "UFFSNAP_GUEST_INITRD", UFFSNAP_GUEST_INITRD) < 0)
		return fail(why, why_len, -ENOENT,
			    "no guest initramfs at '%s': it is built with busybox-static "
			    "(install it, ./dev does, and rebuild)",
			    c.initrd);
	*ret = c;
	return 0;
}

static void build_argv(const struct guest *g, const struct guest_config *cfg, bool incoming,
		       bool qmp, struct guest_argv *a)
{
	static const char *const fixed[] = {
		"-accel", "tcg", "-machine", GUEST_MACHINE ",memory-backend=" GUEST_RAM_ID,
		"-m", "512M", "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none",
	};
	const char **argv = a->argv;
	size_t n = 0, i;

	snprintf(a->append, sizeof(a->append), "%s gc_pages=%u gc_per_tick=%u gc_period_ms=%u",
		 GUEST_APPEND, cfg->pages, cfg->per_tick, cfg->period_ms);
	snprintf(a->serial, sizeof(a->serial), "file:%s", g->serial_path);
	snprintf(a->qmp, sizeof(a->qmp), "unix:%s,server=on,wait=off", g->qmp_path);
	argv[n++] = cfg->qemu;
	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		argv[n++] = fixed[i];
	argv[n++] = "-object";
	argv[n++] = a->backend;
	argv[n++] = "-serial";
	argv[n++] = a->serial;
	if (qmp) {
		argv[n++] = "-qmp";
		argv[n++] = a->qmp;
	}
	argv[n++] = "-kernel";
	argv[n++] = cfg->kernel;
	argv[n++] = "-initrd";
	argv[n++] = cfg->initrd;
	argv[n++] = "-append";
	argv[n++] = a->append;
	if (incoming) {
		argv[n++] = "-incoming";
		argv[n++] = "defer";
	}
	argv[n] = NULL;
}

/* In the child: dies with the test (even by SIGKILL), own process group, output to a file. */
static void exec_qemu(const struct guest *g, const char **argv, pid_t parent)
{
	int fd;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(127);
	setpgid(0, 0);
	fd = open("/dev/null", O_RDONLY);
	if (fd >= 0)
		dup2(fd, STDIN_FILENO);
	fd = open(g->stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd >= 0) {
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
	}
	execv(argv[0], (char *const *)argv);
	_exit(127);
}

int guest_prepare(struct guest *g, char *why, size_t why_len)
{
	memset(g, 0, sizeof(*g));
	snprintf(g->dir, sizeof(g->dir), "/tmp/uffsnap-guest.XXXXXX");
	if (!mkdtemp(g->dir)) {
		int r = -errno;

		g->dir[0] = '\0';
		return fail(why, why_len, r, "mkdtemp: %s", strerror(-r));
	}
	snprintf(g->qmp_path, sizeof(g->qmp_path), "%s/qmp.sock", g->dir);
	snprintf(g->serial_path, sizeof(g->serial_path), "%s/serial.log", g->dir);
	snprintf(g->stderr_path, sizeof(g->stderr_path), "%s/qemu.log", g->dir);
	return 0;
}

void guest_argv(const struct guest *g, const struct guest_config *cfg, struct guest_argv *a)
{
	snprintf(a->backend, sizeof(a->backend),
		 "memory-backend-memfd,id=" GUEST_RAM_ID ",size=512M,share=on");
	build_argv(g, cfg, false, false, a);
}

/* Starts QEMU with a->backend as its RAM. */
static int start(struct guest *g, const struct guest_config *cfg, struct guest_argv *a,
		 bool incoming, char *why, size_t why_len)
{
	pid_t parent = getpid();
	int r = guest_prepare(g, why, why_len);

	if (r < 0)
		return r;
	build_argv(g, cfg, incoming, true, a);
	fflush(NULL);
	g->pid = fork();
	if (g->pid < 0) {
		r = -errno;
		g->pid = 0;
		return fail(why, why_len, r, "fork: %s", strerror(-r));
	}
	if (g->pid == 0)
		exec_qemu(g, a->argv, parent);
	return 0;
}

int guest_start(struct guest *g, const struct guest_config *cfg, char *why, size_t why_len)
{
	struct guest_argv a;

	snprintf(a.backend, sizeof(a.backend),
		 "memory-backend-memfd,id=" GUEST_RAM_ID ",size=512M,share=on");
	return start(g, cfg, &a, false, why, why_len);
}

int guest_start_incoming(struct guest *g, const struct guest_config *cfg, const char *ram_file,
			 char *why, size_t why_len)
{
	struct guest_argv a;

	snprintf(a.backend, sizeof(a.backend),
		 "memory-backend-file,id=" GUEST_RAM_ID ",size=512M,mem-path=%s,share=on",
		 ram_file);
	return start(g, cfg, &a, true, why, why_len);
}

int guest_start_incoming_memfd(struct guest *g, const struct guest_config *cfg, char *why,
			       size_t why_len)
{
	struct guest_argv a;

	snprintf(a.backend, sizeof(a.backend),
		 "memory-backend-memfd,id=" GUEST_RAM_ID ",size=512M,share=on");
	return start(g, cfg, &a, true, why, why_len);
}

bool guest_alive(struct guest *g)
{
	if (g->pid <= 0)
		return false;
	if (waitpid(g->pid, NULL, WNOHANG) == g->pid) {
		g->pid = 0;
		return false;
	}
	return true;
}

static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[512];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
			if (unlink(p) < 0 && errno == EISDIR) /* a restore's own directory */
				remove_dir(p);
		}
	}
	closedir(d);
	rmdir(dir);
}

void guest_stop(struct guest *g)
{
	if (!g)
		return;
	if (g->pid > 0) {
		kill(g->pid, SIGKILL);
		waitpid(g->pid, NULL, 0);
		g->pid = 0;
	}
	if (g->dir[0] && !getenv("UFFSNAP_GUEST_KEEP"))
		remove_dir(g->dir);
	g->dir[0] = '\0';
}

int guest_memfd_path(const struct guest *g, char *buf, size_t len)
{
	int found = test_proc_find_fd(g->pid, MEMFD_LINK, buf, len);

	/* Exactly one: the test guest has one memory backend, and a second would be ambiguous. */
	return found < 0 ? found : found == 1 ? 0 : found ? -EEXIST : -ENOENT;
}

off_t guest_serial_size(const struct guest *g)
{
	struct stat st;

	return stat(g->serial_path, &st) < 0 ? -errno : st.st_size;
}
