/* SPDX-License-Identifier: MIT */
/*
 * The stream transport's control messages (proto/STREAM.md): explicit little-endian encode and
 * decode, no I/O. Decoders return 0, -EAGAIN when more bytes are needed, -EBADMSG for a message
 * that does not check out, -EPROTONOSUPPORT for another protocol major version.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define STREAM_PROTO_MAJOR 1
#define STREAM_PROTO_MINOR 1 /* 1.1: migrations (HELLO flag MIGRATE, INCOMING) */

#define STREAM_MSG_HEADER_SIZE 16
#define STREAM_MSG_MAX_SIZE    (STREAM_MSG_HEADER_SIZE + 128)

/* Message types, as on the wire. */
enum stream_msg_type {
	STREAM_MSG_HELLO = 1,
	STREAM_MSG_CHALLENGE = 2,
	STREAM_MSG_AUTH = 3,
	STREAM_MSG_ACCEPT = 4,
	STREAM_MSG_ACK = 5,
	STREAM_MSG_ERROR = 6,
	STREAM_MSG_INCOMING = 7, /* since 1.1 */
};

/* Body sizes, as on the wire. */
#define STREAM_HELLO_SIZE     128
#define STREAM_CHALLENGE_SIZE 80
#define STREAM_AUTH_SIZE      32
#define STREAM_ACCEPT_SIZE    16
#define STREAM_ACK_SIZE	      16
#define STREAM_ERROR_SIZE     128
#define STREAM_INCOMING_SIZE  128
#define STREAM_URI_SIZE	      120 /* on the wire: up to 119 bytes and a NUL */

#define STREAM_NONCE_SIZE   32
#define STREAM_MAC_SIZE	    32
#define STREAM_SESSION_SIZE 16
#define STREAM_NAME_SIZE    64 /* on the wire: up to 63 bytes and a NUL */

#define STREAM_HELLO_F_RESUME	1u
#define STREAM_HELLO_F_MIGRATE	2u /* since 1.1: the image is a guest's RAM on its way to a QEMU */
#define STREAM_ACCEPT_F_RESUMED 1u
#define STREAM_ACK_F_COMPLETE	1u

/* ERROR codes, as on the wire. */
enum stream_error_code {
	STREAM_ERR_PROTOCOL = 1,
	STREAM_ERR_AUTH = 2,
	STREAM_ERR_VERSION = 3,
	STREAM_ERR_NO_SESSION = 4,
	STREAM_ERR_CORRUPT = 5,
	STREAM_ERR_IO = 6,
	STREAM_ERR_BUSY = 7,
	STREAM_ERR_MISMATCH = 8, /* since 1.1: a migration and a receiver that stores images (or the
				  * reverse), or a guest the destination QEMU does not match */
};

struct stream_hello {
	uint16_t major, minor;
	uint32_t flags;
	uint8_t session[STREAM_SESSION_SIZE];
	uint8_t nonce[STREAM_NONCE_SIZE];
	char name[STREAM_NAME_SIZE]; /* NUL-terminated */
};

struct stream_challenge {
	uint16_t major, minor;
	uint8_t nonce[STREAM_NONCE_SIZE];
	uint8_t proof[STREAM_MAC_SIZE];
};

struct stream_auth {
	uint8_t proof[STREAM_MAC_SIZE];
};

struct stream_accept {
	uint64_t offset;
	uint32_t flags;
};

struct stream_ack {
	uint64_t offset;
	uint32_t flags;
};

struct stream_errmsg {
	uint32_t code;
	char msg[120]; /* NUL-terminated */
};

struct stream_incoming {
	char uri[STREAM_URI_SIZE]; /* NUL-terminated: where the destination QEMU listens */
};

/* One decoded message of any type. */
struct stream_msg {
	uint16_t type;
	union {
		struct stream_hello hello;
		struct stream_challenge challenge;
		struct stream_auth auth;
		struct stream_accept accept;
		struct stream_ack ack;
		struct stream_errmsg error;
		struct stream_incoming incoming;
	};
	/* The raw HELLO body, which the proofs cover (STREAM.md "Authentication"). */
	uint8_t hello_raw[STREAM_HELLO_SIZE];
};

/* Encoders write header + body into out (STREAM_MSG_MAX_SIZE bytes); return the length. */
size_t stream_hello_encode(const struct stream_hello *h, uint8_t *out);
size_t stream_challenge_encode(const struct stream_challenge *c, uint8_t *out);
size_t stream_auth_encode(const struct stream_auth *a, uint8_t *out);
size_t stream_accept_encode(const struct stream_accept *a, uint8_t *out);
size_t stream_ack_encode(const struct stream_ack *a, uint8_t *out);
size_t stream_error_encode(uint32_t code, const char *msg, uint8_t *out);
/* uri: 1..119 printable ASCII bytes (stream_uri_valid()). */
size_t stream_incoming_encode(const struct stream_incoming *in, uint8_t *out);

/*
 * Decodes the message at the start of buf[0..len). On success *ret_used is its length. -EAGAIN:
 * a valid beginning, more bytes needed. Any other negative value: reject the peer.
 */
int stream_msg_decode(const uint8_t *buf, size_t len, struct stream_msg *ret, size_t *ret_used);

/* True if name is 1..63 bytes of [A-Za-z0-9._-]. */
int stream_name_valid(const char *name);
/* True if uri is 1..119 bytes of printable ASCII (no space). */
int stream_uri_valid(const char *uri);
const char *stream_error_code_name(uint32_t code);
