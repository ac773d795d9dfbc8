/* SPDX-License-Identifier: MIT */
/* service/auth.c: who may snapshot whom, on given facts (the kernel's ptrace rules). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "service/auth.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define PID 4242
#define CAP_NET_RAW_BIT (1ull << 13)

/* A client of uid/gid 1000 without CAP_SYS_PTRACE, and a target of its own. */
static const struct svc_peer user = {.pid = 100, .uid = 1000, .gid = 1000};
static const struct svc_peer tracer = {.pid = 100, .uid = 1000, .gid = 1000, .cap_ptrace = true};

static struct svc_auth_facts own(void)
{
	return (struct svc_auth_facts){
	    .tgid = PID, .state = 'S', .uid = {1000, 1000, 1000}, .gid = {1000, 1000, 1000},
	    .dumpable = true};
}

struct acase {
	const char *what;
	const struct svc_peer *peer;
	struct svc_auth_facts f;
	const char *class; /* NULL: allowed */
	const char *says;  /* a part of the message */
};

static void check(const struct acase *c)
{
	struct ctl_error err = {0};
	int r = svc_auth_decide(c->peer, PID, &c->f, &err);

	print_message("%s: %s\n", c->what, c->class ? err.desc : "allowed");
	if (!c->class) {
		assert_int_equal(r, 0);
		return;
	}
	assert_int_equal(r, -EINVAL);
	assert_non_null(err.class);
	assert_string_equal(err.class, c->class);
	assert_non_null(strstr(err.desc, c->says));
}

static void test_rules(void **state)
{
	struct acase c[] = {
	    {"own process", &user, own(), NULL, NULL},
	    {"tracer, other user", &tracer, own(), NULL, NULL},
	    {"kernel thread", &tracer, own(), CTL_E_TARGET, "kernel thread"},
	    {"zombie", &tracer, own(), CTL_E_TARGET, "has exited"},
	    {"dead", &user, own(), CTL_E_TARGET, "has exited"},
	    {"a thread, not a process", &tracer, own(), CTL_E_PARAM, "is a thread of process 4243"},
	    {"yama 3, even a tracer", &tracer, own(), CTL_E_PERM, "ptrace_scope is 3"},
	    {"yama 2, a tracer", &tracer, own(), NULL, NULL},
	    {"yama 2, own process", &user, own(), CTL_E_PERM, "ptrace_scope is 2"},
	    {"yama 1, a descendant", &user, own(), NULL, NULL},
	    {"yama 1, not a descendant", &user, own(), CTL_E_PERM, "not a descendant"},
	    {"yama 1, not a descendant, a tracer", &tracer, own(), NULL, NULL},
	    {"yama 1, a descendant of another user", &user, own(), CTL_E_PERM, "uid 1000 may not"},
	    {"other real uid", &user, own(), CTL_E_PERM, "same uid and gid"},
	    {"other effective uid", &user, own(), CTL_E_PERM, "(uid 0, gid 1000)"},
	    {"other saved uid (was set-uid)", &user, own(), CTL_E_PERM, "same uid and gid"},
	    {"other gid", &user, own(), CTL_E_PERM, "same uid and gid"},
	    {"other saved gid", &user, own(), CTL_E_PERM, "same uid and gid"},
	    {"not dumpable", &user, own(), CTL_E_PERM, "not dumpable"},
	    {"not dumpable, a tracer", &tracer, own(), NULL, NULL},
	    {"capabilities the client lacks", &user, own(), CTL_E_PERM, "holds capabilities"},
	    {"capabilities the client has too", NULL, own(), NULL, NULL},
	};
	struct svc_peer capped = user;

	c[1].f.uid[0] = c[1].f.uid[1] = c[1].f.uid[2] = 0;
	c[1].f.dumpable = false;
	c[1].f.cap_prm = ~0ull;
	c[2].f.kthread = true;
	c[3].f.state = 'Z';
	c[4].f.state = 'X';
	c[5].f.tgid = PID + 1;
	c[6].f.yama_scope = 3;
	c[7].f.yama_scope = 2;
	c[8].f.yama_scope = 2;
	c[9].f.yama_scope = 1, c[9].f.ancestor = true;
	c[10].f.yama_scope = 1;
	c[11].f.yama_scope = 1;
	c[12].f.yama_scope = 1, c[12].f.ancestor = true, c[12].f.uid[1] = 0;
	c[13].f.uid[0] = 1001;
	c[14].f.uid[1] = 0;
	c[15].f.uid[2] = 0;
	c[16].f.gid[0] = 1001;
	c[17].f.gid[2] = 1001;
	c[18].f.dumpable = false;
	c[19].f.dumpable = false;
	c[20].f.cap_prm = CAP_NET_RAW_BIT;
	capped.cap_prm = CAP_NET_RAW_BIT | 1;
	c[21].peer = &capped;
	c[21].f.cap_prm = CAP_NET_RAW_BIT;
	for (size_t i = 0; i < N(c); i++)
		check(&c[i]);
}

/* The first rule that fails is the one reported: target state, then Yama, then identity. */
static void test_order(void **state)
{
	struct acase c = {"a zombie thread of another user, yama 3", &user, own(), CTL_E_TARGET,
			  "has exited"};

	c.f.state = 'Z';
	c.f.tgid = 1;
	c.f.yama_scope = 3;
	c.f.uid[0] = 0;
	check(&c);
	c.f.state = 'S';
	c.class = CTL_E_PARAM, c.says = "thread of process 1";
	check(&c);
	c.f.tgid = PID;
	c.class = CTL_E_PERM, c.says = "ptrace_scope is 3";
	check(&c);
	c.f.yama_scope = 0;
	c.says = "same uid and gid";
	check(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rules),
	    cmocka_unit_test(test_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
