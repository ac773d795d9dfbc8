/* SPDX-License-Identifier: MIT */
/*
 * The process and CPU facts an ELF core carries beyond registers and memory. They do not change
 * between the snapshot instant and now, except by the program's own doing (a new session, a
 * rewritten argv), so reading them after the instant is good enough: /proc/PID/auxv is the
 * copy the kernel made at exec (mm->saved_auxv).
 */
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/proc.h"
#include "engine/ustr.h"

#define CPUID_LEAF_XSTATE 0xd
#define XSTATE_FIRST_EXT  2  /* components 0 and 1 (x87, SSE) are the legacy 512-byte area */
#define XSTATE_LAST	  18
#define CMDLINE_MAX	  4096 /* the core keeps 79 bytes (ELF_PRARGSZ); a little more is shown */
#define AUXV_MAX	  4096 /* bytes; the kernel keeps fewer than 64 pairs */

static ssize_t read_file(pid_t pid, const char *name, char *buf, size_t len)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", pid, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len);
	if (n < 0)
		n = -errno;
	close(fd);
	return n;
}

static json_t *auxv_json(pid_t pid)
{
	uint64_t v[AUXV_MAX / 8];
	ssize_t n = read_file(pid, "auxv", (char *)v, sizeof(v));
	json_t *a = n > 0 ? json_array() : NULL;

	for (ssize_t i = 0; a && i + 1 < n / 8; i += 2) {
		char hex[24];

		snprintf(hex, sizeof(hex), "0x%" PRIx64, v[i + 1]);
		if (json_array_append_new(a, json_pack("[I, s]", (json_int_t)v[i], hex)) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* The command line with its NULs as spaces, as the kernel's fill_psinfo() does. */
static json_t *cmdline_json(pid_t pid)
{
	char buf[CMDLINE_MAX + 1];
	ssize_t n = read_file(pid, "cmdline", buf, CMDLINE_MAX);

	if (n < 0)
		return NULL;
	while (n > 0 && buf[n - 1] == '\0')
		n--;
	for (ssize_t i = 0; i < n; i++)
		buf[i] = buf[i] ? buf[i] : ' ';
	buf[n] = '\0';
	return ustr_json(buf);
}

/* /proc/PID/stat after the comm: state ppid pgrp session ... nice (proc(5) fields 3..19). */
static int stat_ids(pid_t pid, int ret[4])
{
	char buf[1024], *p;
	ssize_t n = read_file(pid, "stat", buf, sizeof(buf) - 1);
	long f[17];

	if (n <= 0)
		return n < 0 ? (int)n : -ENODATA;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld",
			 &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7], &f[8], &f[9],
			 &f[10], &f[11], &f[12], &f[13], &f[14], &f[15]) != 16)
		return -EBADMSG;
	ret[0] = (int)f[0], ret[1] = (int)f[1], ret[2] = (int)f[2], ret[3] = (int)f[15];
	return 0;
}

/* Real uid and gid, the first numbers of "Uid:" and "Gid:" in /proc/PID/status. */
static void status_ids(pid_t pid, unsigned ret[2])
{
	char buf[4096], *p;
	ssize_t n = read_file(pid, "status", buf, sizeof(buf) - 1);

	buf[n > 0 ? n : 0] = '\0';
	p = strstr(buf, "\nUid:");
	ret[0] = p ? (unsigned)strtoul(p + 5, NULL, 10) : 0;
	p = strstr(buf, "\nGid:");
	ret[1] = p ? (unsigned)strtoul(p + 5, NULL, 10) : 0;
}

static json_t *process_json(pid_t pid)
{
	int ids[4];
	unsigned ug[2];

	if (stat_ids(pid, ids) < 0)
		return NULL;
	status_ids(pid, ug);
	return json_pack("{s:i, s:i, s:i, s:i, s:I, s:I, s:o*, s:o*}", "ppid", ids[0], "pgrp",
			 ids[1], "sid", ids[2], "nice", ids[3], "uid", (json_int_t)ug[0], "gid",
			 (json_int_t)ug[1], "cmdline", cmdline_json(pid), "auxv", auxv_json(pid));
}

/*
 * Where each XSAVE component sits in the standard (uncompacted) format ptrace's NT_X86_XSTATE
 * uses: CPUID.(EAX=0DH, ECX=i) gives size (EAX) and offset (EBX). These differ between CPU
 * makers (AMD packs AVX-512 state where Intel has MPX), and readers of the core need to know.
 */
static json_t *xsave_layout_json(void)
{
	json_t *a = json_array();

	for (unsigned i = XSTATE_FIRST_EXT; a && i <= XSTATE_LAST; i++) {
		unsigned int eax, ebx, ecx, edx;

		if (!__get_cpuid_count(CPUID_LEAF_XSTATE, i, &eax, &ebx, &ecx, &edx) || !eax ||
		    (ecx & 1)) /* ECX bit 0: a supervisor component, not in the user format */
			continue;
		if (json_array_append_new(a, json_pack("[i, i, i]", (int)i, (int)ebx, (int)eax)) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

int snap_proc_describe(pid_t pid, json_t *meta)
{
	json_t *proc = process_json(pid), *layout = xsave_layout_json();

	if (proc && json_object_set_new(meta, "process", proc) < 0)
		return json_decref(layout), -ENOMEM;
	if (!layout || json_object_set_new(meta, "cpu", json_pack("{s:o}", "xsave_layout",
								   layout)) < 0)
		return -ENOMEM;
	return 0;
}
