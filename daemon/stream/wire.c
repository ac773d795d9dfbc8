/* SPDX-License-Identifier: MIT */
/* Control messages of the stream transport (proto/STREAM.md "Control messages"). */
#include <errno.h>
#include <string.h>

#include "stream/wire.h"
#include "uffsnap/image.h"

_Static_assert(STREAM_MSG_HEADER_SIZE == 16, "message header size is part of the protocol");
_Static_assert(STREAM_HELLO_SIZE ==
		   2 + 2 + 4 + STREAM_SESSION_SIZE + STREAM_NONCE_SIZE + STREAM_NAME_SIZE + 8,
	       "HELLO layout");
_Static_assert(STREAM_CHALLENGE_SIZE == 8 + STREAM_NONCE_SIZE + STREAM_MAC_SIZE + 8,
	       "CHALLENGE layout");
_Static_assert(STREAM_AUTH_SIZE == STREAM_MAC_SIZE, "AUTH layout");
_Static_assert(STREAM_ERROR_SIZE == 8 + sizeof(((struct stream_errmsg *)0)->msg), "ERROR layout");
_Static_assert(STREAM_INCOMING_SIZE == 8 + STREAM_URI_SIZE, "INCOMING layout");
_Static_assert(STREAM_MSG_MAX_SIZE >= STREAM_MSG_HEADER_SIZE + STREAM_HELLO_SIZE, "max size");

static const uint8_t stream_magic[4] = {0x55, 0x53, 0x54, 0x52}; /* "USTR" */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v;
	p[1] = v >> 8;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = v >> (8 * i);
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = v >> (8 * i);
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static int zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* Body sizes by type; 0 for an unknown type. */
static size_t body_size(uint16_t type)
{
	static const size_t sizes[] = {
	    [STREAM_MSG_HELLO] = STREAM_HELLO_SIZE,
	    [STREAM_MSG_CHALLENGE] = STREAM_CHALLENGE_SIZE,
	    [STREAM_MSG_AUTH] = STREAM_AUTH_SIZE,
	    [STREAM_MSG_ACCEPT] = STREAM_ACCEPT_SIZE,
	    [STREAM_MSG_ACK] = STREAM_ACK_SIZE,
	    [STREAM_MSG_ERROR] = STREAM_ERROR_SIZE,
	    [STREAM_MSG_INCOMING] = STREAM_INCOMING_SIZE,
	};

	return type < sizeof(sizes) / sizeof(sizes[0]) ? sizes[type] : 0;
}

/* Header: magic[4] type:2 body_len:2 reserved:4 crc:4, crc over bytes 0..11 and the body. */
static size_t finish(uint16_t type, uint8_t *out)
{
	size_t n = body_size(type);

	memcpy(out, stream_magic, 4);
	put16(out + 4, type);
	put16(out + 6, n);
	put32(out + 8, 0);
	put32(out + 12, img_crc32c(img_crc32c(0, out, 12), out + STREAM_MSG_HEADER_SIZE, n));
	return STREAM_MSG_HEADER_SIZE + n;
}

int stream_name_valid(const char *name)
{
	size_t n = strnlen(name, STREAM_NAME_SIZE);

	if (n == 0 || n >= STREAM_NAME_SIZE)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

int stream_uri_valid(const char *uri)
{
	size_t n = strnlen(uri, STREAM_URI_SIZE);

	if (n == 0 || n >= STREAM_URI_SIZE)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (uri[i] <= 0x20 || uri[i] > 0x7e)
			return 0;
	return 1;
}

size_t stream_hello_encode(const struct stream_hello *h, uint8_t *out)
{
	uint8_t *b = out + STREAM_MSG_HEADER_SIZE;

	memset(b, 0, STREAM_HELLO_SIZE);
	put16(b, h->major);
	put16(b + 2, h->minor);
	put32(b + 4, h->flags);
	memcpy(b + 8, h->session, STREAM_SESSION_SIZE);
	memcpy(b + 24, h->nonce, STREAM_NONCE_SIZE);
	memcpy(b + 56, h->name, strnlen(h->name, STREAM_NAME_SIZE - 1));
	return finish(STREAM_MSG_HELLO, out);
}

size_t stream_challenge_encode(const struct stream_challenge *c, uint8_t *out)
{
	uint8_t *b = out + STREAM_MSG_HEADER_SIZE;

	memset(b, 0, STREAM_CHALLENGE_SIZE);
	put16(b, c->major);
	put16(b + 2, c->minor);
	memcpy(b + 8, c->nonce, STREAM_NONCE_SIZE);
	memcpy(b + 40, c->proof, STREAM_MAC_SIZE);
	return finish(STREAM_MSG_CHALLENGE, out);
}

size_t stream_auth_encode(const struct stream_auth *a, uint8_t *out)
{
	memcpy(out + STREAM_MSG_HEADER_SIZE, a->proof, STREAM_MAC_SIZE);
	return finish(STREAM_MSG_AUTH, out);
}

/* ACCEPT and ACK share a layout: offset:8 flags:4 reserved:4. */
static size_t offset_encode(uint16_t type, uint64_t offset, uint32_t flags, uint8_t *out)
{
	uint8_t *b = out + STREAM_MSG_HEADER_SIZE;

	put64(b, offset);
	put32(b + 8, flags);
	put32(b + 12, 0);
	return finish(type, out);
}

size_t stream_accept_encode(const struct stream_accept *a, uint8_t *out)
{
	return offset_encode(STREAM_MSG_ACCEPT, a->offset, a->flags, out);
}

size_t stream_ack_encode(const struct stream_ack *a, uint8_t *out)
{
	return offset_encode(STREAM_MSG_ACK, a->offset, a->flags, out);
}

size_t stream_error_encode(uint32_t code, const char *msg, uint8_t *out)
{
	uint8_t *b = out + STREAM_MSG_HEADER_SIZE;

	memset(b, 0, STREAM_ERROR_SIZE);
	put32(b, code);
	memcpy(b + 8, msg, strnlen(msg, STREAM_ERROR_SIZE - 8 - 1));
	return finish(STREAM_MSG_ERROR, out);
}

size_t stream_incoming_encode(const struct stream_incoming *in, uint8_t *out)
{
	uint8_t *b = out + STREAM_MSG_HEADER_SIZE;

	memset(b, 0, STREAM_INCOMING_SIZE);
	memcpy(b + 8, in->uri, strnlen(in->uri, STREAM_URI_SIZE - 1));
	return finish(STREAM_MSG_INCOMING, out);
}

static int decode_hello(const uint8_t *b, struct stream_hello *h)
{
	h->major = get16(b);
	h->minor = get16(b + 2);
	h->flags = get32(b + 4);
	if (h->major != STREAM_PROTO_MAJOR)
		return -EPROTONOSUPPORT;
	if ((h->flags & ~(STREAM_HELLO_F_RESUME | STREAM_HELLO_F_MIGRATE)) || !zero(b + 120, 8) ||
	    zero(b + 8, STREAM_SESSION_SIZE))
		return -EBADMSG;
	memcpy(h->session, b + 8, STREAM_SESSION_SIZE);
	memcpy(h->nonce, b + 24, STREAM_NONCE_SIZE);
	memcpy(h->name, b + 56, STREAM_NAME_SIZE);
	/* NUL padding only: no bytes after the first NUL. */
	size_t n = strnlen(h->name, STREAM_NAME_SIZE);
	if (!stream_name_valid(h->name) || !zero(b + 56 + n, STREAM_NAME_SIZE - n))
		return -EBADMSG;
	return 0;
}

static int decode_challenge(const uint8_t *b, struct stream_challenge *c)
{
	c->major = get16(b);
	c->minor = get16(b + 2);
	if (c->major != STREAM_PROTO_MAJOR)
		return -EPROTONOSUPPORT;
	if (!zero(b + 4, 4) || !zero(b + 72, 8))
		return -EBADMSG;
	memcpy(c->nonce, b + 8, STREAM_NONCE_SIZE);
	memcpy(c->proof, b + 40, STREAM_MAC_SIZE);
	return 0;
}

static int decode_offset(const uint8_t *b, uint32_t known_flags, uint64_t *offset, uint32_t *flags)
{
	*offset = get64(b);
	*flags = get32(b + 8);
	return (*flags & ~known_flags) || get32(b + 12) ? -EBADMSG : 0;
}

static int decode_error(const uint8_t *b, struct stream_errmsg *e)
{
	e->code = get32(b);
	if (get32(b + 4) || e->code == 0)
		return -EBADMSG;
	memcpy(e->msg, b + 8, sizeof(e->msg));
	e->msg[sizeof(e->msg) - 1] = '\0';
	/* Keep only printable ASCII from a peer's text. */
	for (char *p = e->msg; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			*p = '?';
	return 0;
}

/* flags and reserved zero; the URI NUL-padded, printable. */
static int decode_incoming(const uint8_t *b, struct stream_incoming *in)
{
	size_t n;

	if (!zero(b, 8))
		return -EBADMSG;
	memcpy(in->uri, b + 8, STREAM_URI_SIZE);
	n = strnlen(in->uri, STREAM_URI_SIZE);
	if (!stream_uri_valid(in->uri) || !zero(b + 8 + n, STREAM_URI_SIZE - n))
		return -EBADMSG;
	return 0;
}

static int decode_body(uint16_t type, const uint8_t *b, struct stream_msg *m)
{
	switch (type) {
	case STREAM_MSG_HELLO:
		memcpy(m->hello_raw, b, STREAM_HELLO_SIZE);
		return decode_hello(b, &m->hello);
	case STREAM_MSG_CHALLENGE:
		return decode_challenge(b, &m->challenge);
	case STREAM_MSG_AUTH:
		memcpy(m->auth.proof, b, STREAM_MAC_SIZE);
		return 0;
	case STREAM_MSG_ACCEPT:
		return decode_offset(b, STREAM_ACCEPT_F_RESUMED, &m->accept.offset,
				     &m->accept.flags);
	case STREAM_MSG_ACK:
		return decode_offset(b, STREAM_ACK_F_COMPLETE, &m->ack.offset, &m->ack.flags);
	case STREAM_MSG_ERROR:
		return decode_error(b, &m->error);
	case STREAM_MSG_INCOMING:
		return decode_incoming(b, &m->incoming);
	}
	return -EBADMSG;
}

int stream_msg_decode(const uint8_t *buf, size_t len, struct stream_msg *ret, size_t *ret_used)
{
	size_t n = len < 4 ? len : 4, body;
	uint16_t type;
	int r;

	if (memcmp(buf, stream_magic, n))
		return -EBADMSG;
	if (len < STREAM_MSG_HEADER_SIZE)
		return -EAGAIN;
	type = get16(buf + 4);
	body = body_size(type);
	if (!body || get16(buf + 6) != body || get32(buf + 8))
		return -EBADMSG;
	if (len < STREAM_MSG_HEADER_SIZE + body)
		return -EAGAIN;
	if (get32(buf + 12) != img_crc32c(img_crc32c(0, buf, 12), buf + 16, body))
		return -EBADMSG;
	memset(ret, 0, sizeof(*ret));
	ret->type = type;
	r = decode_body(type, buf + STREAM_MSG_HEADER_SIZE, ret);
	if (r < 0)
		return r;
	*ret_used = STREAM_MSG_HEADER_SIZE + body;
	return 0;
}

const char *stream_error_code_name(uint32_t code)
{
	static const char *const names[] = {
	    [STREAM_ERR_PROTOCOL] = "protocol error",
	    [STREAM_ERR_AUTH] = "authentication failed",
	    [STREAM_ERR_VERSION] = "unsupported protocol version",
	    [STREAM_ERR_NO_SESSION] = "no such session",
	    [STREAM_ERR_CORRUPT] = "image corrupt",
	    [STREAM_ERR_IO] = "receiver I/O error",
	    [STREAM_ERR_BUSY] = "receiver busy",
	    [STREAM_ERR_MISMATCH] = "not the stream this receiver takes",
	};

	return code < sizeof(names) / sizeof(names[0]) && names[code] ? names[code]
								      : "unknown error";
}
