/* SPDX-License-Identifier: MIT */
/*
 * Streaming across two network namespaces joined by a veth pair, with the real receiver
 * (uffsnapd --receive), the real sender (uffsnapd --pid PID --to HOST:PORT --json) and the
 * predictable-store workload as the target. Scenarios:
 *   basic     the received image verifies and is exactly one instant (uffsnap-check)
 *   netem     real packet loss both ways (tc netem, with delay; without netem in the kernel,
 *             an nftables numgen rule, and delay is said not to be emulated) and the link cut
 *             for a few seconds mid-stream: the stream resumes, still exactly one instant
 *   linkcut   the link goes down for a few seconds mid-stream: the stream resumes, still exact
 *   recvkill  the receiver is killed mid-stream: the sender fails cleanly, the target is fine,
 *             the partial image is incomplete
 *   slow      a rate-limited link (tc tbf) and a small memory bound: the sender stays within
 *             it (its JSON's stream.mem_peak within its half, and VmHWM from /proc), the
 *             spool is used, the target keeps running during the stream, the receiver logs
 *             periodic progress
 *   peers     wrong key, no key, garbage, a silent peer and one that stops mid-frame, while a
 *             good sender streams: each refused or failed alone, the good image is exact
 *   crowd     every connection the receiver takes (--max-conns) held open by a peer without
 *             the key: a real sender still gets in (one of them makes room) and its image is
 *             exact; then SIGHUP stops the receiver cleanly (status 0)
 *   busy      every connection held by authenticated senders named "." that send nothing: one
 *             more is answered ERROR 7 (busy); a real sender retries until they time out and
 *             its image is exact; theirs are named "_.-SESSION" while they wait and leave no
 *             empty .partial once expired
 *
 * usage: test-stream-net UFFSNAPD WORKLOAD CHECK UFFSNAPCTL SCENARIO
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test-check.h"
#include "snapshot/snap-harness.h"
#include "stream-net.h"
#include "stream-peer.h"
#include "test-proc.h"

#define PORT 7600

struct t {
	struct stream_paths p;
	struct net n;
	struct wl_proc *w;
	char layout[128], sout[128];
	pid_t recv, send;
};

static int start_workload(struct t *t, const char *threads, const char *pages)
{
	const char *args[] = {"--threads", threads, "--pages", pages, NULL};
	int r = wl_proc_spawn(t->p.workload, args, &t->w);

	if (r < 0)
		return fprintf(stderr, "FAIL: cannot start the workload: %s\n", strerror(-r)), -1;
	snprintf(t->layout, sizeof(t->layout), "%s/layout.json", t->n.dir);
	wl_write_file(t->layout, t->w->layout_json);
	snprintf(t->sout, sizeof(t->sout), "%s/sender.out", t->n.dir);
	return 0;
}

/* One complete image in the directory; it verifies and is one instant; the target is fine. */
static int check_result(struct t *t)
{
	char img[256], cmd[512];

	if (net_count(t->n.out, ".img", img, sizeof(img)) != 1)
		return fprintf(stderr, "FAIL: expected one complete image in %s\n", t->n.out), -1;
	snprintf(cmd, sizeof(cmd), "%s image verify %s", t->p.ctl, img);
	if (system(cmd) != 0)
		return fprintf(stderr, "FAIL: uffsnapctl image verify %s\n", img), -1;
	if (wl_run_check(t->p.check, img, t->layout) != 0)
		return fprintf(stderr, "FAIL: the received image is not one instant\n"), -1;
	return snap_target_unharmed(t->w);
}

static int wait_sender(struct t *t, unsigned timeout_s, int want)
{
	int r = net_wait(t->send, timeout_s);

	t->send = 0;
	if (r != want) {
		fprintf(stderr, "FAIL: the sender exited %d, expected %d\n", r, want);
		net_sh(NULL, "cat %s %s >&2", t->sout, t->n.recv_log);
		return -1;
	}
	return 0;
}

static int shape(struct t *t, const char *qdisc)
{
	return net_sh(t->n.ns_a, "tc qdisc replace dev %s root %s", t->n.if_a, qdisc);
}

/* The sender's summary says it succeeded (or failed, as want_ok says). */
static int sender_result(struct t *t, bool want_ok, struct snap_line *l)
{
	if (net_last_line(t->sout, l) < 0)
		return fprintf(stderr, "FAIL: the sender printed no JSON summary\n"), -1;
	if (l->ok != want_ok || (want_ok && !l->complete))
		return fprintf(stderr, "FAIL: the sender's summary says ok=%d complete=%d\n", l->ok,
			       l->complete),
		       -1;
	return 0;
}

static int run_basic(struct t *t)
{
	struct snap_line l;

	if (start_workload(t, "4", "1024") < 0)
		return -1;
	t->recv = net_receiver(&t->p, &t->n, PORT, NULL);
	t->send = net_sender(&t->p, &t->n, t->w->pid, PORT, t->n.key, NULL, t->sout);
	if (wait_sender(t, 240, 0) < 0 || sender_result(t, true, &l) < 0)
		return -1;
	return check_result(t);
}

/* Cuts the link for a few seconds once the receiver holds some of the image; the receiver's
 * idle timeout (2 s) drops its end meanwhile, so the sender must reconnect and resume. */
static int cut_and_resume(struct t *t)
{
	struct snap_line l;

	if (net_wait_received(&t->n, 8 << 20) < 0)
		return -1;
	net_sh(t->n.ns_a, "ip link set %s down", t->n.if_a);
	test_sleep_ms(4000);
	net_sh(t->n.ns_a, "ip link set %s up", t->n.if_a);
	if (wait_sender(t, 400, 0) < 0 || sender_result(t, true, &l) < 0)
		return -1;
	if (l.reconnects < 1)
		return fprintf(stderr, "FAIL: the sender did not resume (reconnects 0)\n"), -1;
	printf("resumed %llu time(s), %llu bytes sent again\n", (unsigned long long)l.reconnects,
	       (unsigned long long)l.resent);
	return check_result(t);
}

static int run_netem(struct t *t)
{
	bool netem;
	int r = net_impair(&t->n, 2, &netem);

	if (r)
		return r;
	if (start_workload(t, "4", "4096") < 0)
		return -1;
	t->recv = net_receiver(&t->p, &t->n, PORT, "--idle-timeout 2");
	t->send =
	    net_sender(&t->p, &t->n, t->w->pid, PORT, t->n.key, "--resume-timeout 120", t->sout);
	if (cut_and_resume(t) < 0)
		return -1;
	if (!netem) {
		uint64_t dropped = net_dropped(&t->n);

		printf("nftables dropped %llu packets\n", (unsigned long long)dropped);
		if (!dropped)
			return fprintf(stderr, "FAIL: no packet was lost: the loss rule did not "
					       "apply\n"),
			       -1;
	}
	return 0;
}

static int run_linkcut(struct t *t)
{
	shape(t, "tbf rate 40mbit burst 64kb latency 400ms");
	if (start_workload(t, "4", "4096") < 0)
		return -1;
	t->recv = net_receiver(&t->p, &t->n, PORT, "--idle-timeout 2");
	t->send =
	    net_sender(&t->p, &t->n, t->w->pid, PORT, t->n.key, "--resume-timeout 60", t->sout);
	return cut_and_resume(t);
}

static int run_recvkill(struct t *t)
{
	char partial[256], cmd[512];
	struct snap_line l;

	shape(t, "tbf rate 40mbit burst 64kb latency 400ms");
	if (start_workload(t, "4", "4096") < 0)
		return -1;
	t->recv = net_receiver(&t->p, &t->n, PORT, NULL);
	t->send =
	    net_sender(&t->p, &t->n, t->w->pid, PORT, t->n.key, "--resume-timeout 3", t->sout);
	if (net_wait_received(&t->n, 4 << 20) < 0)
		return -1;
	kill(t->recv, SIGKILL);
	net_wait(t->recv, 10);
	t->recv = 0;
	if (wait_sender(t, 120, 1) < 0 || sender_result(t, false, &l) < 0)
		return -1;
	if (snap_target_unharmed(t->w) < 0)
		return -1;
	if (net_count(t->n.out, ".img.partial", partial, sizeof(partial)) != 1)
		return fprintf(stderr, "FAIL: no partial image left\n"), -1;
	snprintf(cmd, sizeof(cmd), "%s image verify %s 2>&1 | grep -q incomplete", t->p.ctl,
		 partial);
	if (system(cmd) != 0)
		return fprintf(stderr, "FAIL: the partial image is not reported incomplete\n"), -1;
	return 0;
}

struct slow_samples {
	long base_kib, hwm_kib; /* VmRSS once the stream runs; the last VmHWM read */
	bool advanced;		/* the target's counters moved while the sender streamed */
};

/* Is the sender uffsnapd yet (not `ip netns exec` or sh on the way to exec it)? */
static bool is_uffsnapd(pid_t pid)
{
	char comm[32];

	return test_proc_read(pid, "comm", comm, sizeof(comm)) > 0 && !strncmp(comm, "uffsnapd", 8);
}

/* Samples the sender's memory and the target's counters until the sender exits. */
static void sample_slow(struct t *t, struct slow_samples *m)
{
	uint64_t c0[64], c1[64];
	int sampled = 0;
	long v;

	m->base_kib = m->hwm_kib = -1;
	while (waitpid(t->send, NULL, WNOHANG) == 0) {
		bool streaming = is_uffsnapd(t->send) && net_recv_progress(t->n.recv_log, NULL);

		if (streaming && m->base_kib < 0)
			m->base_kib = net_status_kib(t->send, "VmRSS");
		if (streaming && (v = net_status_kib(t->send, "VmHWM")) > 0)
			m->hwm_kib = v;
		if (streaming && sampled < 10 && wl_proc_counters(t->w, sampled ? c1 : c0) == 0 &&
		    sampled++ && c1[0] > c0[0])
			m->advanced = true;
		test_sleep_ms(100);
	}
	t->send = 0;
}

static int run_slow(struct t *t)
{
	const long limit_kib = 8 << 10, allowance_kib = 48 << 10;
	struct slow_samples m = {0};
	struct snap_line l;
	unsigned lines;

	shape(t, "tbf rate 40mbit burst 64kb latency 400ms");
	if (start_workload(t, "4", "8192") < 0)
		return -1;
	t->recv = net_receiver(&t->p, &t->n, PORT, NULL);
	setenv("ASAN_OPTIONS", "quarantine_size_mb=4:detect_leaks=1", 1);
	t->send = net_sender(&t->p, &t->n, t->w->pid, PORT, t->n.key, "--mem-limit 8", t->sout);
	sample_slow(t, &m);
	if (sender_result(t, true, &l) < 0)
		return net_sh(NULL, "cat %s >&2", t->sout), -1;
	net_recv_progress(t->n.recv_log, &lines);
	printf("sender VmHWM %ld KiB (VmRSS %ld KiB when the stream ran), stream.mem_peak %llu "
	       "KiB, spooled %llu MiB of %llu MiB; the receiver logged progress %u times\n",
	       m.hwm_kib, m.base_kib, (unsigned long long)l.mem_peak >> 10,
	       (unsigned long long)l.spooled >> 20, (unsigned long long)l.accepted >> 20, lines);
	/* --mem-limit with --to: half the stream's, half the fault queue's */
	if (l.mem_peak > (uint64_t)limit_kib << 9)
		return fprintf(stderr, "FAIL: the sink held more than its half of the bound\n"), -1;
	if (m.base_kib < 0 || m.hwm_kib > m.base_kib + limit_kib + allowance_kib)
		return fprintf(stderr, "FAIL: the sender's VmHWM grew past bound + allowance\n"),
		       -1;
	if (l.spooled == 0)
		return fprintf(stderr, "FAIL: the spool was not used\n"), -1;
	if (!m.advanced)
		return fprintf(stderr, "FAIL: the target's counters did not advance during the "
				       "stream\n"),
		       -1;
	if (lines < 2 || !net_log_has(t->n.recv_log, "MiB/s"))
		return fprintf(stderr, "FAIL: the receiver did not log periodic progress\n"), -1;
	return check_result(t);
}

static int expect_refusal(struct t *t, const char *key, const char *needle)
{
	char err[160], cmd[1024];
	int r;

	snprintf(err, sizeof(err), "%s/refused.err", t->n.dir);
	snprintf(cmd, sizeof(cmd),
		 "ip netns exec %s %s --pid %d --to %s:%d --key %s >/dev/null 2>%s", t->n.ns_a,
		 t->p.uffsnapd, t->w->pid, t->n.ip_b, PORT, key, err);
	r = system(cmd);
	if (!WIFEXITED(r) || WEXITSTATUS(r) != 1 || !net_log_has(err, needle)) {
		fprintf(stderr, "FAIL: sender with key '%s': expected exit 1 and '%s'\n", key,
			needle);
		net_sh(NULL, "cat %s >&2", err);
		return -1;
	}
	return 0;
}

static int run_peers(struct t *t)
{
	char wrong[160], open_key[160], partial[256];

	shape(t, "tbf rate 40mbit burst 64kb latency 400ms");
	if (start_workload(t, "4", "2048") < 0)
		return -1;
	t->recv = net_receiver(&t->p, &t->n, PORT,
			       "--handshake-timeout 2 --resume-timeout 3 --idle-timeout 3");
	t->send = net_sender(&t->p, &t->n, t->w->pid, PORT, t->n.key, NULL, t->sout);
	if (net_wait_received(&t->n, 1 << 20) < 0)
		return -1;
	snprintf(wrong, sizeof(wrong), "%s/wrong.key", t->n.dir);
	snprintf(open_key, sizeof(open_key), "%s/open.key", t->n.dir);
	net_sh(NULL, "head -c 32 /dev/urandom | od -An -tx1 | tr -d \" \\n\" > %s; chmod 600 %s",
	       wrong, wrong);
	net_sh(NULL, "cp %s %s; chmod 644 %s", t->n.key, open_key, open_key);
	if (expect_refusal(t, wrong, "did not prove") < 0 ||
	    expect_refusal(t, open_key, "group or others") < 0 ||
	    expect_refusal(t, "/nonexistent/key", "cannot open key file") < 0)
		return -1;
	if (peer_run_all(t->n.ns_a, t->n.ip_b, PORT, t->n.key) < 0)
		return -1;
	if (wait_sender(t, 240, 0) < 0 || check_result(t) < 0)
		return -1;
	test_sleep_ms(4500); /* the mid-frame session expires */
	if (!net_log_has(t->n.recv_log, "wrong key") ||
	    !net_log_has(t->n.recv_log, "not resumed within")) {
		fprintf(stderr, "FAIL: the receiver did not log the refusals\n");
		return -1;
	}
	/* the corrupt one and the one cut mid-frame stay incomplete */
	if (net_count(t->n.out, ".img.partial", partial, sizeof(partial)) != 2)
		return fprintf(stderr, "FAIL: expected the bad peers' two partial images\n"), -1;
	return 0;
}

static int run_crowd(struct t *t)
{
	struct peer_hold h = {.n = 4};
	struct snap_line l;
	int code;
	pid_t holder;

	if (start_workload(t, "2", "1024") < 0)
		return -1;
	t->recv = net_receiver(&t->p, &t->n, PORT, "--max-conns 4 --handshake-timeout 600");
	holder = peer_hold(t->n.ns_a, t->n.ip_b, PORT, t->n.key, &h, &code);
	if (holder < 0)
		return -1;
	t->send = net_sender(&t->p, &t->n, t->w->pid, PORT, t->n.key, NULL, t->sout);
	code = wait_sender(t, 240, 0) < 0 || sender_result(t, true, &l) < 0 ? -1 : 0;
	kill(holder, SIGKILL);
	waitpid(holder, NULL, 0);
	if (code < 0)
		return -1;
	if (!net_log_has(t->n.recv_log, "to make room"))
		return fprintf(stderr, "FAIL: the receiver did not say it made room\n"), -1;
	if (check_result(t) < 0)
		return -1;
	/* a closed terminal's SIGHUP stops it as SIGTERM does: status 0, not death by signal */
	kill(t->recv, SIGHUP);
	code = net_wait(t->recv, 60);
	t->recv = 0;
	if (code != 0)
		return fprintf(stderr, "FAIL: the receiver exited %d on SIGHUP (want 0)\n", code), -1;
	return 0;
}

/* Until the receiver's log has needle twice (a hang guard only, not a measurement). */
static int wait_log_twice(struct t *t, const char *needle)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "[ $(grep -c '%s' %s) -ge 2 ]", needle, t->n.recv_log);
	for (int i = 0; i < 2400; i++, test_sleep_ms(100))
		if (system(cmd) == 0)
			return 0;
	return fprintf(stderr, "FAIL: the receiver never logged '%s' twice\n", needle), -1;
}

static int run_busy(struct t *t)
{
	struct peer_hold h = {.n = 2, .name = ".", .probe = true};
	char first[256];
	struct snap_line l;
	int code, r = -1;
	pid_t holder;

	if (start_workload(t, "2", "1024") < 0)
		return -1;
	t->recv = net_receiver(&t->p, &t->n, PORT,
			       "--max-conns 2 --idle-timeout 2 --resume-timeout 2");
	holder = peer_hold(t->n.ns_a, t->n.ip_b, PORT, t->n.key, &h, &code);
	if (holder < 0)
		return -1;
	if (code != 7) {
		fprintf(stderr, "FAIL: one connection too many got ERROR %d, not 7 (busy)\n", code);
		goto out;
	}
	if (net_count(t->n.out, ".img.partial", first, sizeof(first)) != 2 ||
	    strncmp(strrchr(first, '/') + 1, "_.-", 3)) {
		fprintf(stderr, "FAIL: the senders named '.' did not get two '_.-' files: %s\n",
			first);
		goto out;
	}
	t->send = net_sender(&t->p, &t->n, t->w->pid, PORT, t->n.key, NULL, t->sout);
	if (wait_sender(t, 240, 0) < 0 || sender_result(t, true, &l) < 0 || check_result(t) < 0)
		goto out;
	if (wait_log_twice(t, "nothing was received") < 0)
		goto out;
	if (net_count(t->n.out, ".img.partial", first, sizeof(first)) != 0) {
		fprintf(stderr, "FAIL: an empty session left %s\n", first);
		goto out;
	}
	r = 0;
out:
	kill(holder, SIGKILL);
	waitpid(holder, NULL, 0);
	return r;
}

static int run(struct t *t, const char *scenario)
{
	if (!strcmp(scenario, "crowd"))
		return run_crowd(t);
	if (!strcmp(scenario, "busy"))
		return run_busy(t);
	if (!strcmp(scenario, "basic"))
		return run_basic(t);
	if (!strcmp(scenario, "netem"))
		return run_netem(t);
	if (!strcmp(scenario, "linkcut"))
		return run_linkcut(t);
	if (!strcmp(scenario, "recvkill"))
		return run_recvkill(t);
	if (!strcmp(scenario, "slow"))
		return run_slow(t);
	if (!strcmp(scenario, "peers"))
		return run_peers(t);
	fprintf(stderr, "unknown scenario '%s'\n", scenario);
	return -1;
}

int main(int argc, char **argv)
{
	struct t t = {0};
	int r;

	if (argc != 6) {
		fprintf(stderr, "usage: %s UFFSNAPD WORKLOAD CHECK UFFSNAPCTL SCENARIO\n", argv[0]);
		return 2;
	}
	if (getuid() != 0) {
		printf("SKIP: needs root (network namespaces, ptrace, /dev/userfaultfd)\n");
		return 77;
	}
	t.p = (struct stream_paths){argv[1], argv[2], argv[3], argv[4]};
	signal(SIGPIPE, SIG_IGN);
	r = net_setup(&t.n);
	if (r == 0)
		r = run(&t, argv[5]);
	if (t.send > 0) {
		kill(t.send, SIGKILL);
		net_wait(t.send, 10);
	}
	if (t.recv > 0) {
		kill(t.recv, SIGTERM);
		if (net_wait(t.recv, 10) != 0 && r == 0) {
			fprintf(stderr, "FAIL: the receiver did not stop cleanly on SIGTERM\n");
			r = -1;
		}
	}
	wl_proc_free(t.w);
	if (r != 0 && r != 77)
		net_sh(NULL, "tail -n 30 %s >&2", t.n.recv_log);
	net_teardown(&t.n);
	if (r == 0)
		printf("ok %s\n", argv[5]);
	return r == 77 ? 77 : r ? 1 : 0;
}
