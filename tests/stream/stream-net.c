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

#include <jansson.h>

#include "test-check.h"
#include "stream-net.h"
#include "test-proc.h"

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

pid_t net_receiver(const struct stream_paths *p, struct net *n, unsigned port, const char *extra)
{
	char listen[64], cmd[1024];
	pid_t pid;

	snprintf(listen, sizeof(listen), "%s:%u", n->ip_b, port);
	snprintf(cmd, sizeof(cmd),
		 "exec %s --receive --listen %s --dir %s --key %s --progress-interval 1 %s",
		 p->uffsnapd, listen, n->out, n->key, extra ? extra : "");
	pid = spawn((const char *const[]){"ip", "netns", "exec", n->ns_b, "sh", "-c", cmd, NULL},
		    NULL, n->recv_log);
	for (int i = 0; i < 300 && !net_log_has(n->recv_log, "receiving on"); i++)
		test_sleep_ms(20);
	return pid;
}

pid_t net_sender(const struct stream_paths *p, struct net *n, pid_t target, unsigned port,
		 const char *key, const char *extra, const char *out_path)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "exec %s --pid %d --to %s:%u --key %s --json %s", p->uffsnapd,
		 target, n->ip_b, port, key, extra ? extra : "");
	return spawn((const char *const[]){"ip", "netns", "exec", n->ns_a, "sh", "-c", cmd, NULL},
		     out_path, out_path);
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
		test_sleep_ms(20);
	}
	return -1;
}

static uint64_t ju(json_t *o, const char *key)
{
	return (uint64_t)json_integer_value(json_object_get(o, key));
}

int net_last_line(const char *out_path, struct snap_line *ret)
{
	FILE *f = fopen(out_path, "re");
	char line[8192];
	int found = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		json_t *j = line[0] == '{' ? json_loads(line, 0, NULL) : NULL;
		json_t *st = json_object_get(j, "stream");

		if (json_is_object(st)) {
			*ret = (struct snap_line){
			    .accepted = ju(st, "accepted"),
			    .sent = ju(st, "sent"),
			    .resent = ju(st, "resent"),
			    .acked = ju(st, "acked"),
			    .spooled = ju(st, "spooled"),
			    .mem_used = ju(st, "mem_used"),
			    .mem_peak = ju(st, "mem_peak"),
			    .reconnects = ju(st, "reconnects"),
			    .complete = json_is_true(json_object_get(st, "complete")),
			    .ok = json_is_true(json_object_get(j, "ok")),
			};
			found = 0;
		}
		json_decref(j);
	}
	fclose(f);
	return found;
}

/* "HH:MM:SS uffsnapd: NAME.img: 12.5 MiB received, 4.0 MiB/s" (stream/recv-session.c). */
uint64_t net_recv_progress(const char *log_path, unsigned *ret_lines)
{
	FILE *f = fopen(log_path, "re");
	char line[1024];
	uint64_t bytes = 0;
	unsigned lines = 0;

	while (f && fgets(line, sizeof(line), f)) {
		char *m = strstr(line, " MiB received, ");
		double mib;

		if (!m)
			continue;
		while (m > line && m[-1] != ' ')
			m--;
		if (sscanf(m, "%lf MiB received", &mib) == 1) {
			bytes = (uint64_t)(mib * 1048576.0);
			lines++;
		}
	}
	if (f)
		fclose(f);
	if (ret_lines)
		*ret_lines = lines;
	return bytes;
}

int net_wait_received(const struct net *n, uint64_t bytes)
{
	for (int i = 0; i < 6000; i++) { /* a hang guard, not a measurement */
		if (net_recv_progress(n->recv_log, NULL) >= bytes)
			return 0;
		test_sleep_ms(20);
	}
	return fprintf(stderr, "FAIL: the receiver never reported %llu bytes received\n",
		       (unsigned long long)bytes),
	       -1;
}

long net_status_kib(pid_t pid, const char *field)
{
	char path[64], line[256], fmt[32];
	long v = -ENOENT;
	FILE *f;

	test_proc_path(path, sizeof(path), pid, "status");
	snprintf(fmt, sizeof(fmt), "%s: %%ld", field);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, fmt, &v) == 1)
			break;
	fclose(f);
	return v;
}

/* nftables in the receiver's namespace: each packet in either direction is dropped with
 * probability loss_pct % (numgen random), a counter shows how many were. */
static int nft_loss(struct net *n, unsigned loss_pct)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/loss.nft", n->dir);
	f = fopen(path, "we");
	if (!f)
		return -1;
	fprintf(f,
		"table inet uffsnap_loss {\n"
		"  chain in { type filter hook input priority 0; policy accept;\n"
		"    iifname \"%s\" numgen random mod 100 < %u counter drop; }\n"
		"  chain out { type filter hook output priority 0; policy accept;\n"
		"    oifname \"%s\" numgen random mod 100 < %u counter drop; }\n"
		"}\n",
		n->if_b, loss_pct, n->if_b, loss_pct);
	fclose(f);
	return net_sh(n->ns_b, "nft -f %s", path);
}

int net_impair(struct net *n, unsigned loss_pct, bool *ret_netem)
{
	*ret_netem = net_sh(n->ns_a,
			    "tc qdisc replace dev %s root netem delay 10ms 5ms loss "
			    "%u%% rate 40mbit",
			    n->if_a, loss_pct) == 0 &&
		     net_sh(n->ns_b, "tc qdisc replace dev %s root netem delay 10ms 5ms loss %u%%",
			    n->if_b, loss_pct) == 0;
	if (*ret_netem) {
		printf("netem: delay 10ms +-5ms and %u%% loss both ways, 40 Mbit/s\n", loss_pct);
		return 0;
	}
	net_sh(n->ns_a, "tc qdisc del dev %s root", n->if_a);
	printf("NOTE: delay is NOT emulated: this kernel has no netem qdisc (sch_netem, "
	       "CONFIG_NET_SCH_NETEM); only loss and rate are\n");
	if (net_sh(NULL, "command -v nft")) {
		printf("SKIP: neither netem nor nft (install the nftables package) to lose "
		       "packets\n");
		return 77;
	}
	if (nft_loss(n, loss_pct) != 0) {
		printf("SKIP: cannot add an nftables rule (CONFIG_NF_TABLES, CONFIG_NFT_NUMGEN)\n");
		return 77;
	}
	net_sh(n->ns_a, "tc qdisc replace dev %s root tbf rate 40mbit burst 64kb latency 400ms",
	       n->if_a);
	printf("loss: nftables drops %u%% of packets both ways in %s (numgen random), "
	       "40 Mbit/s (tbf)\n",
	       loss_pct, n->ns_b);
	return 0;
}

uint64_t net_dropped(const struct net *n)
{
	char cmd[256], line[512];
	uint64_t total = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "ip netns exec %s nft list table inet uffsnap_loss 2>/dev/null",
		 n->ns_b);
	f = popen(cmd, "re");
	while (f && fgets(line, sizeof(line), f)) {
		char *c = strstr(line, "counter packets ");
		unsigned long long v;

		if (c && sscanf(c, "counter packets %llu", &v) == 1)
			total += v;
	}
	if (f)
		pclose(f);
	return total;
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
