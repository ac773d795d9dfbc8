/* SPDX-License-Identifier: MIT */
/* Pre-shared key and the handshake proofs (proto/STREAM.md "Authentication"). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stream/wire.h"

#define STREAM_KEY_MIN 32
#define STREAM_KEY_MAX 256

struct stream_key {
	uint8_t bytes[STREAM_KEY_MAX];
	size_t len;
};

/*
 * Reads a key file: hex text, >= 64 hex digits. -EPERM if the file is group/world readable or
 * writable, -EINVAL if its content is not a key; msg (len bytes) then says what is wrong.
 */
int stream_key_load(const char *path, struct stream_key *ret, char *msg, size_t len);
/* Parses hex text (whitespace ignored) into a key; -EINVAL if not hex or shorter than 32 bytes. */
int stream_key_parse(const char *text, size_t n, struct stream_key *ret);
void stream_key_wipe(struct stream_key *k);

/* role: 'R' (receiver proof) or 'S' (sender proof). */
int stream_proof(const struct stream_key *k, char role, const uint8_t hello_body[STREAM_HELLO_SIZE],
		 const uint8_t nonce_r[STREAM_NONCE_SIZE], uint8_t out[STREAM_MAC_SIZE]);
/* Constant-time check of a proof; true if it is right. */
bool stream_proof_ok(const struct stream_key *k, char role,
		     const uint8_t hello_body[STREAM_HELLO_SIZE],
		     const uint8_t nonce_r[STREAM_NONCE_SIZE],
		     const uint8_t proof[STREAM_MAC_SIZE]);
/* Cryptographically random bytes. */
int stream_random(void *buf, size_t len);
