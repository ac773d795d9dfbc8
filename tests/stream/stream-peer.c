/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stream/auth.h"
#include "stream-peer.h"
#include "stream/wire.h"
#include "uffsnap/image.h"

static int peer_connect(const char *ip, unsigned port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	struct timeval tv = {.tv_sec = 15};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	inet_pton(AF_INET, ip, &a.sin_addr);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("peer: connect");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Reads until EOF; returns the ERROR code received on the way (0 if none), -1 on timeout. */
static int until_closed(int fd)
{
	uint8_t buf[4096];
	size_t have = 0, used;
	struct stream_msg m;
	int code = 0;

	for (;;) {
		ssize_t n = recv(fd, buf + have, sizeof(buf) - have, 0);

		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return code;
		if (n < 0)
			return -1;
		have += n;
		while (stream_msg_decode(buf, have, &m, &used) == 0) {
			if (m.type == STREAM_MSG_ERROR)
				code = m.error.code;
			memmove(buf, buf + used, have - used);
			have -= used;
		}
		if (have == sizeof(buf))
			have = 0;
	}
}

static int read_msg(int fd, struct stream_msg *m)
{
	uint8_t buf[STREAM_MSG_MAX_SIZE];
	size_t have = 0, used;

	while (have < sizeof(buf)) {
		ssize_t n = recv(fd, buf + have, 1, 0);

		if (n <= 0)
			return -1;
		have += n;
		if (stream_msg_decode(buf, have, m, &used) == 0)
			return 0;
	}
	return -1;
}

/* HELLO and CHALLENGE; then AUTH with the right proof (key) or a wrong one (key NULL). */
static int handshake_as(int fd, const struct stream_key *key, const char *name,
			struct stream_msg *ret)
{
	struct stream_hello h = {.major = 1};
	uint8_t out[STREAM_MSG_MAX_SIZE];
	struct stream_auth a = {{0}};
	struct stream_msg m;
	size_t n;

	snprintf(h.name, sizeof(h.name), "%s", name);
	stream_random(h.session, sizeof(h.session));
	stream_random(h.nonce, sizeof(h.nonce));
	n = stream_hello_encode(&h, out);
	if (write(fd, out, n) != (ssize_t)n || read_msg(fd, &m) < 0 ||
	    m.type != STREAM_MSG_CHALLENGE)
		return -1;
	if (key)
		stream_proof(key, 'S', out + STREAM_MSG_HEADER_SIZE, m.challenge.nonce, a.proof);
	n = stream_auth_encode(&a, out);
	if (write(fd, out, n) != (ssize_t)n)
		return -1;
	return read_msg(fd, ret);
}

static int handshake(int fd, const struct stream_key *key, struct stream_msg *ret)
{
	return handshake_as(fd, key, "bad-peer", ret);
}

static int peer_garbage(const char *ip, unsigned port, const struct stream_key *key)
{
	uint8_t junk[4096];
	int fd = peer_connect(ip, port), r;

	if (fd < 0)
		return -1;
	stream_random(junk, sizeof(junk));
	r = write(fd, junk, sizeof(junk)) < 0 ? -1 : until_closed(fd);
	close(fd);
	return r == STREAM_ERR_PROTOCOL || r == 0 ? 0 : -1;
}

static int peer_wrong_proof(const char *ip, unsigned port, const struct stream_key *key)
{
	struct stream_msg m;
	int fd = peer_connect(ip, port), r;

	if (fd < 0)
		return -1;
	r = handshake(fd, NULL, &m);
	close(fd);
	return r == 0 && m.type == STREAM_MSG_ERROR && m.error.code == STREAM_ERR_AUTH ? 0 : -1;
}

static int peer_silent(const char *ip, unsigned port, const struct stream_key *key)
{
	int fd = peer_connect(ip, port), r;

	if (fd < 0)
		return -1;
	r = until_closed(fd); /* the receiver's handshake timeout closes it */
	close(fd);
	return r >= 0 ? 0 : -1;
}

static int peer_corrupt(const char *ip, unsigned port, const struct stream_key *key)
{
	uint8_t junk[IMG_HEADER_SIZE] = "this is not an image";
	struct stream_msg m;
	int fd = peer_connect(ip, port), r = -1;

	if (fd < 0)
		return -1;
	if (handshake(fd, key, &m) == 0 && m.type == STREAM_MSG_ACCEPT &&
	    write(fd, junk, sizeof(junk)) == sizeof(junk))
		r = until_closed(fd) == STREAM_ERR_CORRUPT ? 0 : -1;
	close(fd);
	return r;
}

static int peer_mid_frame(const char *ip, unsigned port, const struct stream_key *key)
{
	struct img_header h = {.version_major = IMG_VERSION_MAJOR, .page_size = 4096};
	uint8_t buf[IMG_HEADER_SIZE + 30] = {0};
	struct stream_msg m;
	int fd = peer_connect(ip, port), r = -1;

	if (fd < 0)
		return -1;
	img_header_encode(&h, buf);
	memcpy(buf + IMG_HEADER_SIZE, "UFRM", 4);
	if (handshake(fd, key, &m) == 0 && m.type == STREAM_MSG_ACCEPT &&
	    write(fd, buf, sizeof(buf)) == sizeof(buf))
		r = 0;
	close(fd); /* stops mid-frame: the receiver keeps the session for a resume */
	return r;
}

static const struct peer {
	const char *name;
	int (*run)(const char *ip, unsigned port, const struct stream_key *key);
} peers[] = {
    {"garbage", peer_garbage},	     {"wrong proof", peer_wrong_proof},	  {"silent", peer_silent},
    {"corrupt image", peer_corrupt}, {"stops mid-frame", peer_mid_frame},
};

/* Moves this process into network namespace ns and loads the key. */
static int enter_ns(const char *ns, const char *key_file, struct stream_key *key)
{
	char path[256], msg[512];
	int fd;

	snprintf(path, sizeof(path), "/var/run/netns/%s", ns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
		return perror("peer: setns"), -1;
	close(fd);
	if (stream_key_load(key_file, key, msg, sizeof(msg)) < 0)
		return fprintf(stderr, "peer: %s\n", msg), -1;
	return 0;
}

static int peers_in_ns(const char *ns, const char *ip, unsigned port, const char *key_file)
{
	struct stream_key key;
	int failed = 0;

	if (enter_ns(ns, key_file, &key) < 0)
		return 1;
	for (size_t i = 0; i < sizeof(peers) / sizeof(peers[0]); i++) {
		int r = peers[i].run(ip, port, &key);

		printf("bad peer '%s': %s\n", peers[i].name,
		       r == 0 ? "refused as expected" : "FAIL");
		failed |= r != 0;
	}
	fflush(stdout);
	return failed;
}

int peer_run_all(const char *ns, const char *ip, unsigned port, const char *key_file)
{
	pid_t parent = getpid(), pid = fork();
	int st;

	if (pid == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(1);
		_exit(peers_in_ns(ns, ip, port, key_file));
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
		return fprintf(stderr, "FAIL: a bad peer was not refused as expected\n"), -1;
	return 0;
}

/* The holder: opens n connections, then reports (one byte) and waits to be killed. */
static void hold_in_ns(const char *ns, const char *ip, unsigned port, const char *key_file,
		       const struct peer_hold *h, int report)
{
	struct stream_key key;
	struct stream_msg m;
	uint8_t code = 255;

	if (enter_ns(ns, key_file, &key) < 0)
		_exit(1);
	for (int i = 0; i < h->n; i++) {
		int fd = peer_connect(ip, port);

		if (fd < 0 || (h->name && (handshake_as(fd, &key, h->name, &m) < 0 ||
					   m.type != STREAM_MSG_ACCEPT)))
			_exit(1);
	}
	if (h->probe) {
		int fd = peer_connect(ip, port);

		code = fd < 0 ? 254 : (uint8_t)until_closed(fd);
	}
	if (write(report, &code, 1) != 1)
		_exit(1);
	for (;;)
		pause();
}

pid_t peer_hold(const char *ns, const char *ip, unsigned port, const char *key_file,
		const struct peer_hold *h, int *ret_code)
{
	pid_t parent = getpid(), pid;
	int p[2];
	uint8_t code;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(1);
		hold_in_ns(ns, ip, port, key_file, h, p[1]);
	}
	close(p[1]);
	if (pid < 0 || read(p[0], &code, 1) != 1) {
		close(p[0]);
		if (pid > 0)
			kill(pid, SIGKILL), waitpid(pid, NULL, 0);
		return fprintf(stderr, "FAIL: the holder could not open its connections\n"), -1;
	}
	close(p[0]);
	*ret_code = code;
	return pid;
}
