/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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

#include "stream-net.h"

int net_sh(const char *ns, const char *fmt, ...)
{
	char cmd[1024], full[1200];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (ns)
		snprintf(full, sizeof(full), "ip netns exec %s sh -c '%s' >/dev/null 2>&1", ns,
			 cmd);
	else
		snprintf(full, sizeof(full), "%s >/dev/null 2>&1", cmd);
	st = system(full);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int write_key(const char *path)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd),
		 "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n' > %s && chmod 600 %s", path,
		 path);
	return system(cmd) == 0 ? 0 : -1;
}

int net_setup(struct net *n)
{
	unsigned id = getpid() % 100000, sub = getpid() % 250 + 1;

	memset(n, 0, sizeof(*n));
	snprintf(n->ns_a, sizeof(n->ns_a), "ustr%ua", id);
	snprintf(n->ns_b, sizeof(n->ns_b), "ustr%ub", id);
	snprintf(n->if_a, sizeof(n->if_a), "us%ua", id);
	snprintf(n->if_b, sizeof(n->if_b), "us%ub", id);
	snprintf(n->ip_a, sizeof(n->ip_a), "10.231.%u.1", sub);
	snprintf(n->ip_b, sizeof(n->ip_b), "10.231.%u.2", sub);
	snprintf(n->dir, sizeof(n->dir), "/tmp/uffsnap-stream-%u", id);
	if (net_sh(NULL, "ip netns add %s", n->ns_a)) {
		printf("SKIP: cannot create a network namespace (ip netns add): need root and "
		       "iproute2\n");
		return 77;
	}
	n->up = true;
	if (net_sh(NULL, "ip netns add %s", n->ns_b) ||
	    net_sh(NULL, "ip link add %s type veth peer name %s", n->if_a, n->if_b) ||
	    net_sh(NULL, "ip link set %s netns %s", n->if_a, n->ns_a) ||
	    net_sh(NULL, "ip link set %s netns %s", n->if_b, n->ns_b) ||
	    net_sh(n->ns_a, "ip addr add %s/24 dev %s && ip link set %s up && ip link set lo up",
		   n->ip_a, n->if_a, n->if_a) ||
	    net_sh(n->ns_b, "ip addr add %s/24 dev %s && ip link set %s up && ip link set lo up",
		   n->ip_b, n->if_b, n->if_b)) {
		fprintf(stderr, "FAIL: cannot set up the veth pair between %s and %s\n", n->ns_a,
			n->ns_b);
		return -1;
	}
	mkdir(n->dir, 0700);
	snprintf(n->key, sizeof(n->key), "%s/key", n->dir);
	snprintf(n->recv_log, sizeof(n->recv_log), "%s/recv.log", n->dir);
	snprintf(n->out, sizeof(n->out), "%s/images", n->dir);
	mkdir(n->out, 0700);
	return write_key(n->key);
}

void net_teardown(struct net *n)
{
	if (!n->up)
		return;
	net_sh(NULL, "ip netns del %s", n->ns_a); /* takes the veth pair with it */
	net_sh(NULL, "ip netns del %s", n->ns_b);
	if (!getenv("UFFSNAP_KEEP"))
		net_sh(NULL, "rm -rf %s", n->dir);
	n->up = false;
}

static pid_t spawn(const char *const *argv, const char *out_path, const char *err_path)
{
	pid_t parent = getpid(), pid = fork();

	if (pid != 0)
		return pid;
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(127);
	if (out_path) {
		int fd = open(out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

		dup2(fd, STDOUT_FILENO);
	}
	if (err_path) {
		int fd = open(err_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

		dup2(fd, STDERR_FILENO);
	}
	execvp(argv[0], (char *const *)argv);
	_exit(127);
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

pid_t net_receiver(const struct stream_paths *p, struct net *n, unsigned port, const char *extra)
{
	char listen[64], cmd[1024];
	pid_t pid;

	snprintf(listen, sizeof(listen), "%s:%u", n->ip_b, port);
	snprintf(cmd, sizeof(cmd), "exec %s --receive --listen %s --dir %s --key %s %s",
		 p->uffsnapd, listen, n->out, n->key, extra ? extra : "");
	pid = spawn((const char *const[]){"ip", "netns", "exec", n->ns_b, "sh", "-c", cmd, NULL},
		    NULL, n->recv_log);
	for (int i = 0; i < 300 && !net_log_has(n->recv_log, "receiving on"); i++)
		sleep_ms(20);
	return pid;
}

pid_t net_sender(const struct stream_paths *p, struct net *n, pid_t target, unsigned port,
		 const char *key, const char *extra, const char *out_path)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "exec %s --pid %d --to %s:%u --key %s --name sender-a %s",
		 p->snap, target, n->ip_b, port, key, extra ? extra : "");
	return spawn((const char *const[]){"ip", "netns", "exec", n->ns_a, "sh", "-c", cmd, NULL},
		     out_path, NULL);
}

int net_wait(pid_t pid, unsigned timeout_s)
{
	int st;

	for (unsigned i = 0; i < timeout_s * 50; i++) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (r < 0)
			return -1;
		sleep_ms(20);
	}
	return -1;
}

int net_last_line(const char *out_path, struct snap_line *ret)
{
	FILE *f = fopen(out_path, "re");
	char line[512];
	int found = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		struct snap_line l;

		if (sscanf(line,
			   "%*s accepted=%" SCNu64 " sent=%" SCNu64 " resent=%" SCNu64
			   " acked=%" SCNu64 " spooled=%" SCNu64 " mem_used=%" SCNu64
			   " mem_peak=%" SCNu64 " reconnects=%" SCNu64 " complete=%d",
			   &l.accepted, &l.sent, &l.resent, &l.acked, &l.spooled, &l.mem_used,
			   &l.mem_peak, &l.reconnects, &l.complete) == 9) {
			*ret = l;
			found = 0;
		}
	}
	fclose(f);
	return found;
}

long net_rss_kib(pid_t pid)
{
	char path[64], line[256];
	long v = -ENOENT;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

int net_count(const char *dir, const char *suffix, char *ret_first, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t sl = strlen(suffix);
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);

		if (l > sl && !strcmp(e->d_name + l - sl, suffix)) {
			if (n++ == 0 && ret_first)
				snprintf(ret_first, len, "%s/%s", dir, e->d_name);
		}
	}
	closedir(d);
	return n;
}

bool net_log_has(const char *path, const char *needle)
{
	FILE *f = fopen(path, "re");
	char line[1024];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}
