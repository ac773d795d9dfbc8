/* SPDX-License-Identifier: MIT */
/* Writes the seed corpus of fuzz-stream-wire into DIR (corpus/stream/ is its committed output):
 * every control message, a handshake transcript, and broken variants. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "stream/auth.h"
#include "stream/wire.h"

static int save(const char *dir, const char *name, const uint8_t *p, size_t n)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, p, n) != (ssize_t)n)
		return perror(path), 1;
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	struct stream_hello h = {
	    .major = 1, .flags = STREAM_HELLO_F_RESUME, .name = "host-a.example"};
	struct stream_challenge c = {.major = 1};
	struct stream_auth a;
	struct stream_accept ac = {.offset = 4096, .flags = STREAM_ACCEPT_F_RESUMED};
	struct stream_ack ak = {.offset = 1 << 20, .flags = STREAM_ACK_F_COMPLETE};
	struct stream_key k = {.len = 32};
	uint8_t buf[8 * STREAM_MSG_MAX_SIZE], m[STREAM_MSG_MAX_SIZE];
	size_t n = 0, len;
	int bad = 0;

	if (argc != 2)
		return fprintf(stderr, "usage: %s DIR\n", argv[0]), 2;
	memset(k.bytes, 0x5a, 32);
	memset(h.session, 0x11, sizeof(h.session));
	memset(h.nonce, 0x22, sizeof(h.nonce));
	memset(c.nonce, 0x33, sizeof(c.nonce));
	len = stream_hello_encode(&h, m);
	bad |= save(argv[1], "hello", m, len);
	memcpy(buf + n, m, len), n += len;
	stream_proof(&k, 'R', m + STREAM_MSG_HEADER_SIZE, c.nonce, c.proof);
	stream_proof(&k, 'S', m + STREAM_MSG_HEADER_SIZE, c.nonce, a.proof);
	len = stream_challenge_encode(&c, m);
	bad |= save(argv[1], "challenge", m, len);
	memcpy(buf + n, m, len), n += len;
	len = stream_auth_encode(&a, m);
	bad |= save(argv[1], "auth", m, len);
	memcpy(buf + n, m, len), n += len;
	len = stream_accept_encode(&ac, m);
	bad |= save(argv[1], "accept", m, len);
	memcpy(buf + n, m, len), n += len;
	len = stream_ack_encode(&ak, m);
	bad |= save(argv[1], "ack", m, len);
	memcpy(buf + n, m, len), n += len;
	len = stream_error_encode(STREAM_ERR_AUTH, "authentication failed\x01", m);
	bad |= save(argv[1], "error", m, len);
	memcpy(buf + n, m, len), n += len;
	bad |= save(argv[1], "transcript", buf, n);
	bad |= save(argv[1], "cut-hello", buf, 40);
	buf[20] ^= 1;
	bad |= save(argv[1], "bad-crc-hello", buf, STREAM_MSG_HEADER_SIZE + STREAM_HELLO_SIZE);
	return bad;
}
