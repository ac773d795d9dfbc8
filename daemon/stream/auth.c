/* SPDX-License-Identifier: MIT */
/* Pre-shared key loading and HMAC-SHA256 proofs (proto/STREAM.md "Authentication"). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "stream/auth.h"

#define STREAM_LABEL "uffsnap-stream-v1"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int stream_key_parse(const char *text, size_t n, struct stream_key *ret)
{
	struct stream_key k = {.len = 0};
	int hi = -1;

	for (size_t i = 0; i < n; i++) {
		int v = hexval(text[i]);

		if (text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r')
			continue;
		if (v < 0 || k.len >= STREAM_KEY_MAX)
			return stream_key_wipe(&k), -EINVAL;
		if (hi < 0) {
			hi = v;
			continue;
		}
		k.bytes[k.len++] = hi << 4 | v;
		hi = -1;
	}
	if (hi >= 0 || k.len < STREAM_KEY_MIN)
		return stream_key_wipe(&k), -EINVAL;
	*ret = k;
	stream_key_wipe(&k);
	return 0;
}

int stream_key_load(const char *path, struct stream_key *ret, char *msg, size_t len)
{
	char text[2 * STREAM_KEY_MAX + 64];
	struct stat st;
	ssize_t n;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return r = -errno,
		       snprintf(msg, len, "cannot open key file '%s': %s", path, strerror(-r)), r;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(msg, len, "key file '%s' is not a regular file", path);
		return -EINVAL;
	}
	if (st.st_mode & 077) {
		close(fd);
		snprintf(msg, len,
			 "key file '%s' is accessible by group or others (mode %04o); "
			 "make it private: chmod 600 '%s'",
			 path, (unsigned)(st.st_mode & 07777), path);
		return -EPERM;
	}
	n = read(fd, text, sizeof(text));
	r = n < 0 ? -errno : 0;
	close(fd);
	if (r < 0)
		return snprintf(msg, len, "cannot read key file '%s': %s", path, strerror(-r)), r;
	r = (size_t)n == sizeof(text) ? -EINVAL : stream_key_parse(text, n, ret);
	explicit_bzero(text, sizeof(text));
	if (r < 0)
		snprintf(
		    msg, len,
		    "key file '%s' does not hold a key: expected %d to %d hex digits, e.g. from "
		    "\"head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'\"",
		    path, 2 * STREAM_KEY_MIN, 2 * STREAM_KEY_MAX);
	return r;
}

void stream_key_wipe(struct stream_key *k)
{
	explicit_bzero(k, sizeof(*k));
}

int stream_proof(const struct stream_key *k, char role, const uint8_t hello_body[STREAM_HELLO_SIZE],
		 const uint8_t nonce_r[STREAM_NONCE_SIZE], uint8_t out[STREAM_MAC_SIZE])
{
	uint8_t msg[1 + sizeof(STREAM_LABEL) - 1 + STREAM_HELLO_SIZE + STREAM_NONCE_SIZE];
	unsigned int outlen = 0;

	msg[0] = (uint8_t)role;
	memcpy(msg + 1, STREAM_LABEL, sizeof(STREAM_LABEL) - 1);
	memcpy(msg + sizeof(STREAM_LABEL), hello_body, STREAM_HELLO_SIZE);
	memcpy(msg + sizeof(STREAM_LABEL) + STREAM_HELLO_SIZE, nonce_r, STREAM_NONCE_SIZE);
	if (!HMAC(EVP_sha256(), k->bytes, (int)k->len, msg, sizeof(msg), out, &outlen) ||
	    outlen != STREAM_MAC_SIZE)
		return -EIO;
	return 0;
}

bool stream_proof_ok(const struct stream_key *k, char role,
		     const uint8_t hello_body[STREAM_HELLO_SIZE],
		     const uint8_t nonce_r[STREAM_NONCE_SIZE], const uint8_t proof[STREAM_MAC_SIZE])
{
	uint8_t want[STREAM_MAC_SIZE];
	bool ok;

	if (stream_proof(k, role, hello_body, nonce_r, want) < 0)
		return false;
	ok = CRYPTO_memcmp(want, proof, STREAM_MAC_SIZE) == 0;
	explicit_bzero(want, sizeof(want));
	return ok;
}

int stream_random(void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = getrandom(p, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= n;
	}
	return 0;
}
