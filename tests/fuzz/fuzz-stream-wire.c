/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for what a stream peer controls (proto/STREAM.md): the control-message
 * decoder, fed the input as a sequence of messages (every message it accepts must re-encode to
 * the same bytes, ERROR excepted: its text is sanitized), the proofs checked against a decoded
 * HELLO, and the receiver's incremental image checker, fed the same input in chunks of varying
 * sizes (it must agree with itself whatever the chunking).
 * Built with clang -fsanitize=fuzzer (UFFSNAP_FUZZ) or with fuzz-replay.c for the corpus tests.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stream/auth.h"
#include "stream/check.h"
#include "stream/wire.h"

static size_t reencode(const struct stream_msg *m, uint8_t *out)
{
	switch (m->type) {
	case STREAM_MSG_HELLO:
		return stream_hello_encode(&m->hello, out);
	case STREAM_MSG_CHALLENGE:
		return stream_challenge_encode(&m->challenge, out);
	case STREAM_MSG_AUTH:
		return stream_auth_encode(&m->auth, out);
	case STREAM_MSG_ACCEPT:
		return stream_accept_encode(&m->accept, out);
	case STREAM_MSG_ACK:
		return stream_ack_encode(&m->ack, out);
	}
	return 0;
}

static void proofs(const struct stream_msg *m)
{
	struct stream_key k = {.len = 32};
	uint8_t nonce[STREAM_NONCE_SIZE] = {1}, proof[STREAM_MAC_SIZE];

	memset(k.bytes, 0x5a, k.len);
	if (stream_proof(&k, 'S', m->hello_raw, nonce, proof) < 0)
		abort();
	if (!stream_proof_ok(&k, 'S', m->hello_raw, nonce, proof) ||
	    stream_proof_ok(&k, 'R', m->hello_raw, nonce, proof))
		abort(); /* right role accepted, the other role's proof refused */
}

static void messages(const uint8_t *data, size_t size)
{
	uint8_t out[STREAM_MSG_MAX_SIZE];
	struct stream_msg m;
	size_t used;

	while (size) {
		if (stream_msg_decode(data, size, &m, &used) < 0)
			return;
		if (used > size || used < STREAM_MSG_HEADER_SIZE)
			abort();
		if (m.type != STREAM_MSG_ERROR &&
		    (reencode(&m, out) != used || memcmp(out, data, used)))
			abort();
		if (m.type == STREAM_MSG_HELLO)
			proofs(&m);
		data += used;
		size -= used;
	}
}

/* Feeds data in chunks whose sizes come from a PRNG seeded by seed; returns the verdict. */
static int check_chunked(const uint8_t *data, size_t size, uint32_t seed, uint64_t *ret_off)
{
	struct stream_check *c;
	struct img_error err;
	int r = 0;

	if (stream_check_new(&c) < 0)
		abort();
	while (size && r == 0) {
		size_t n;

		seed = seed * 1103515245u + 12345u;
		n = 1 + (seed >> 16) % 97;
		if (n > size)
			n = size;
		r = stream_check_feed(c, data, n, &err);
		data += n;
		size -= n;
	}
	*ret_off = stream_check_offset(c);
	stream_check_free(c);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t off_a, off_b;
	int a, b;

	messages(data, size);
	a = check_chunked(data, size, 1, &off_a);
	b = check_chunked(data, size, 7, &off_b);
	/* Chunking changes neither the verdict nor, for a stream that checks out, the count. */
	if ((a < 0) != (b < 0) || (a == 1) != (b == 1) || (a >= 0 && off_a != off_b))
		abort();
	if (a == 0 && off_a != size)
		abort();
	return 0;
}
