/* SPDX-License-Identifier: MIT */
/*
 * The process events connector through libnl. What the kernel requires (checked on 6.18 by
 * tests/system/test-proc-events.c):
 * - joining the CN_IDX_PROC multicast group: net/netlink/af_netlink.c netlink_setsockopt()
 *   NETLINK_ADD_MEMBERSHIP wants CAP_NET_ADMIN unless the protocol allows non-root receivers
 *   (NL_CFG_F_NONROOT_RECV), which the connector does only since Linux 6.6 ("connector/cn_proc:
 *   Allow non-root users access"); Debian 12's 6.1 still answers EPERM;
 * - PROC_CN_MCAST_LISTEN: drivers/connector/cn_proc.c cn_proc_mcast_ctl() ignores senders
 *   outside the initial user and pid namespaces, and before 6.6 needs CAP_NET_ADMIN;
 * - delivery (netlink_broadcast()) checks nothing of the receiver: a socket subscribed while
 *   privileged keeps receiving after every capability is dropped and the uid changed.
 * So service mode subscribes before svc_caps_drop() and keeps CAP_NET_ADMIN only until then.
 * Reads go straight to recv(2) on libnl's fd so that ENOBUFS (events lost) reaches the caller
 * as -ENOBUFS; libnl's nl_recv() would fold it into NLE_NOMEM.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <netlink/netlink.h>
#include <netlink/msg.h>
#include <netlink/socket.h>

#include "sys/proc-events.h"

/* Receive buffer asked for: a fork storm must not overflow it at once (SO_RCVBUFFORCE). */
#define PROCEV_RCVBUF (4u << 20)
/* One recv: many events; each is an nlmsghdr + cn_msg + proc_event, under 128 bytes. */
#define PROCEV_READ_BUF 16384

struct procev {
	struct nl_sock *sk;
	int fd;
};

static int nl_to_errno(int nle)
{
	switch (-nle) {
	case NLE_PERM:
		return -EPERM;
	case NLE_NOMEM:
		return -ENOMEM;
	case NLE_PROTO_MISMATCH:
	case NLE_OPNOTSUPP:
		return -EPROTONOSUPPORT;
	default:
		return -EIO;
	}
}

static int procev_subscribe(struct procev *p)
{
	/* The connector's control message: one cn_msg carrying one proc_cn_mcast_op (built in
	 * bytes: cn_msg ends in a flexible array, so it cannot head a struct portably). */
	enum proc_cn_mcast_op op = PROC_CN_MCAST_LISTEN;
	struct cn_msg hdr = {.id = {.idx = CN_IDX_PROC, .val = CN_VAL_PROC}, .len = sizeof(op)};
	uint8_t ctl[sizeof(hdr) + sizeof(op)];
	int r;

	memcpy(ctl, &hdr, sizeof(hdr));
	memcpy(ctl + sizeof(hdr), &op, sizeof(op));
	/* Membership first: without CAP_NET_ADMIN this is where the kernel says EPERM. */
	r = nl_socket_add_membership(p->sk, CN_IDX_PROC);
	if (r < 0)
		return nl_to_errno(r);
	r = nl_send_simple(p->sk, NLMSG_DONE, 0, ctl, sizeof(ctl));
	return r < 0 ? nl_to_errno(r) : 0;
}

int procev_open(struct procev **ret)
{
	struct procev *p = calloc(1, sizeof(*p));
	int r, size = PROCEV_RCVBUF;

	if (!p)
		return -ENOMEM;
	p->sk = nl_socket_alloc();
	if (!p->sk) {
		free(p);
		return -ENOMEM;
	}
	r = nl_connect(p->sk, NETLINK_CONNECTOR);
	if (r < 0) {
		r = nl_to_errno(r);
		goto fail;
	}
	p->fd = nl_socket_get_fd(p->sk);
	/* Past net.core.rmem_max only with CAP_NET_ADMIN: then the plain size is the best. */
	if (setsockopt(p->fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
		nl_socket_set_buffer_size(p->sk, PROCEV_RCVBUF, 0);
	r = nl_socket_set_nonblocking(p->sk);
	if (r >= 0)
		r = procev_subscribe(p);
	else
		r = nl_to_errno(r);
	if (r < 0)
		goto fail;
	*ret = p;
	return 0;
fail:
	procev_free(p);
	return r;
}

int procev_fd(const struct procev *p)
{
	return p->fd;
}

/* Fills e from one proc_event; false for the kinds we do not report. */
static bool procev_decode(const struct proc_event *ev, struct procev_event *e)
{
	memset(e, 0, sizeof(*e));
	switch (ev->what) {
	case PROC_EVENT_FORK:
		e->type = PROCEV_FORK;
		e->pid = ev->event_data.fork.parent_pid;
		e->tgid = ev->event_data.fork.parent_tgid;
		e->child_pid = ev->event_data.fork.child_pid;
		e->child_tgid = ev->event_data.fork.child_tgid;
		return true;
	case PROC_EVENT_EXEC:
		e->type = PROCEV_EXEC;
		e->pid = ev->event_data.exec.process_pid;
		e->tgid = ev->event_data.exec.process_tgid;
		return true;
	case PROC_EVENT_EXIT:
		e->type = PROCEV_EXIT;
		e->pid = ev->event_data.exit.process_pid;
		e->tgid = ev->event_data.exit.process_tgid;
		e->exit_code = (int)ev->event_data.exit.exit_code;
		return true;
	default:
		return false;
	}
}

/* One datagram: netlink messages, each a cn_msg from CN_IDX_PROC with a proc_event. */
static int procev_parse(void *buf, int len, void (*cb)(void *, const struct procev_event *),
			void *ctx)
{
	struct nlmsghdr *h = buf;
	int n = 0;

	for (; nlmsg_ok(h, len); h = nlmsg_next(h, &len)) {
		struct cn_msg *cn = nlmsg_data(h);
		struct procev_event e;
		struct proc_event ev;

		if (h->nlmsg_type == NLMSG_ERROR || h->nlmsg_type == NLMSG_NOOP ||
		    nlmsg_datalen(h) < (int)(sizeof(*cn) + sizeof(struct proc_event)))
			continue;
		if (cn->id.idx != CN_IDX_PROC || cn->id.val != CN_VAL_PROC)
			continue;
		/* After the 20-byte cn_msg the event is only 4-byte aligned: copy it out. */
		memcpy(&ev, cn->data, sizeof(ev));
		if (procev_decode(&ev, &e)) {
			cb(ctx, &e);
			n++;
		}
	}
	return n;
}

int procev_read(struct procev *p, void (*cb)(void *ctx, const struct procev_event *e), void *ctx)
{
	/* Aligned for nlmsghdr and proc_event (which holds a __u64 timestamp). */
	uint64_t buf[PROCEV_READ_BUF / sizeof(uint64_t)];
	int total = 0;

	for (;;) {
		struct sockaddr_nl from = {0};
		socklen_t flen = sizeof(from);
		ssize_t n = recvfrom(p->fd, buf, sizeof(buf), MSG_DONTWAIT,
				     (struct sockaddr *)&from, &flen);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return total;
		if (n < 0)
			return -errno;
		if (from.nl_pid != 0) /* only the kernel speaks on this socket */
			continue;
		total += procev_parse(buf, (int)n, cb, ctx);
	}
}

void procev_free(struct procev *p)
{
	if (!p)
		return;
	nl_socket_free(p->sk); /* closes the fd */
	free(p);
}
