/* SPDX-License-Identifier: MIT */
/*
 * A hand-driven daemon for the control client's unit tests: a real listening Unix socket in a
 * fresh directory; the test writes the daemon's lines itself and reads the client's requests
 * (with any fd passed). Replies may be written before the request they answer: the client
 * reads them when it waits, so one thread drives both ends.
 */
#pragma once

#include <pthread.h>
#include <stddef.h>
#include <jansson.h>

#include "uffsnap/client.h"

#define PEER_GREETING                                                                              \
	"{\"uffsnap\": {\"version\": {\"major\": 0, \"minor\": 1, \"micro\": 0, \"package\": "     \
	"\"0.1.0\"}, \"protocol\": 1, \"capabilities\": [\"fd-passing\", \"events\", "             \
	"\"jobs\"]}}\n"

#define PEER_MAX_REQUESTS 8

struct peer {
	char dir[64];
	char path[128];
	int listen_fd;
	int fd;		      /* the accepted connection, -1 before */
	const char *first;    /* written as soon as the client connects */
	int shut_after_first; /* then shutdown(SHUT_WR): the client sees EOF */
	char *buf;	      /* received, not yet returned as lines */
	size_t len, cap;
	int got_fd; /* the last fd received with SCM_RIGHTS, -1 none */
	pthread_t writer;
	int writer_running;
	char *big; /* what the writer thread writes */
	size_t big_len;
	int extra_fds; /* more than one fd came with one message */
	/* peer_serve(): one reply per request read, requests and their fds recorded. */
	pthread_t server;
	int serving;
	const char *const *replies;
	size_t nreplies, nrequests;
	json_t *requests[PEER_MAX_REQUESTS];
	int request_fds[PEER_MAX_REQUESTS]; /* the fd that came with each, -1 none */
};

/* Listens on a fresh socket; aborts the test on failure. */
void peer_listen(struct peer *p);

/* Connects a client; the peer writes first (e.g. PEER_GREETING) on accept. Returns connect's r. */
int peer_connect(struct peer *p, const char *first, struct uffsnap_client **ret_client,
		 struct uffsnap_client_error *ret_error);

/* Writes s on the connection (all of it). */
void peer_send(struct peer *p, const char *s);

/* Writes len bytes from another thread (for data larger than the socket buffer). */
void peer_send_async(struct peer *p, const char *data, size_t len);

/* The next line the client sent, parsed (the test decrefs it); fails the test on EOF/timeout. */
json_t *peer_request(struct peer *p);

/*
 * Answers the next n requests from a thread, one reply line each (a line may carry events
 * before the reply); peer_served() waits for it to end and returns how many requests it read
 * (in p->requests and p->request_fds). Cmocka must not assert from that thread.
 */
void peer_serve(struct peer *p, const char *const *replies, size_t n);
size_t peer_served(struct peer *p);

/* Closes the connection (the client then sees EOF). */
void peer_hangup(struct peer *p);

/* Joins the writer, closes everything, removes the socket and directory. */
void peer_close(struct peer *p);
