/* SPDX-License-Identifier: MIT */
/*
 * uffsnapctl image read FILE --addr ADDR --length N [--output OUT]: the snapshot's bytes of a
 * range. The whole range is checked against the index before anything is written, so a range
 * that is partly missing or discarded fails without leaving partial output behind. An
 * incremental image is read through its chain (its parents); any image is opened as a chain,
 * a full one being a chain of one.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli-args.h"
#include "cli-image.h"
#include "cmd-image.h"
#include "sys/out-file.h"

/* Bytes copied per img_reader_read(): large enough to amortise, small enough for any box. */
#define READ_CHUNK (1u << 20)

struct read_args {
	const char *path;
	const char *output; /* NULL or "-": stdout */
	const char *parent; /* --parent: an incremental image's parent */
	uint64_t addr;
	uint64_t length;
	int have_addr, have_length;
	bool force; /* --output may replace an existing file */
};

static int read_number(const struct cli_invocation *inv, const char *opt, const char *s,
		       uint64_t *ret)
{
	int r = cli_parse_u64(s, ret);

	if (r == -ERANGE)
		return cli_usage_error(inv, "%s '%s' is too large (at most 0xffffffffffffffff)",
				       opt, s),
		       r;
	if (r < 0)
		return cli_usage_error(inv, "%s '%s' is not a number (hex 0x... or decimal)", opt,
				       s),
		       r;
	return 0;
}

static int read_check_args(const struct cli_invocation *inv, const struct read_args *a)
{
	if (!a->have_addr)
		return cli_usage_error(inv, "missing --addr ADDR"), -EINVAL;
	if (!a->have_length)
		return cli_usage_error(inv, "missing --length N"), -EINVAL;
	if (a->length == 0)
		return cli_usage_error(inv, "--length must be greater than 0"), -EINVAL;
	if (a->addr + a->length < a->addr)
		return cli_usage_error(inv,
				       "range 0x%" PRIx64 " + %" PRIu64
				       " wraps around the end of the address space",
				       a->addr, a->length),
		       -EINVAL;
	return 0;
}

static int read_parse(const struct cli_invocation *inv, int argc, char **argv, struct read_args *a)
{
	static const struct option opts[] = {
	    {"addr", required_argument, NULL, 'a'},   {"length", required_argument, NULL, 'l'},
	    {"output", required_argument, NULL, 'o'}, {"force", no_argument, NULL, 'f'},
	    {"parent", required_argument, NULL, 'p'}, {NULL, 0, NULL, 0},
	};
	int c, r = 0;

	while (r >= 0 && (c = cli_getopt(inv, argc, argv, "a:l:o:fp:", opts)) != -1) {
		if (c == 'a')
			r = read_number(inv, "--addr", optarg, &a->addr), a->have_addr = 1;
		else if (c == 'l')
			r = read_number(inv, "--length", optarg, &a->length), a->have_length = 1;
		else if (c == 'o')
			a->output = optarg;
		else if (c == 'f')
			a->force = true;
		else if (c == 'p')
			a->parent = optarg;
		else
			r = -EINVAL;
	}
	if (r < 0)
		return r;
	a->path = cli_one_operand(inv, argc, argv, "FILE");
	if (!a->path)
		return -EINVAL;
	return read_check_args(inv, a);
}

/* The last extent starting at or below addr (extents are sorted by address). */
static const struct img_chain_extent *read_find(const struct img_chain_extent *e, size_t n,
						uint64_t addr)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (e[mid].addr <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? &e[lo - 1] : NULL;
}

/* Says why the image has nothing at addr: not mapped at the instant (UNMAPPED), or not in it. */
static int read_hole(const char *name, struct img_chain *c, uint64_t addr)
{
	struct img_error err = {0};
	uint8_t b;

	img_chain_read(c, addr, &b, 1, &err);
	if (strstr(err.msg, "not mapped"))
		cli_file_error(name,
			       "address 0x%" PRIx64 " was not mapped at the snapshot instant (an "
			       "earlier round or a parent image had it, then it was unmapped)",
			       addr);
	else
		cli_file_error(name,
			       "address 0x%" PRIx64 " is not in the image%s (it was not mapped, "
			       "or not copied, at the snapshot instant)",
			       addr, img_chain_depth(c) > 1 ? " nor in its parents" : "");
	return -ENOENT;
}

/* Fails, naming the first address, if any part of [addr, end) is a hole or discarded. */
static int read_check_range(const char *name, struct img_chain *c, uint64_t addr, uint64_t end)
{
	const struct img_chain_extent *ext, *e;
	uint64_t ps = img_chain_page_size(c), eend;
	size_t n = img_chain_extents(c, &ext);

	for (uint64_t cur = addr; cur < end; cur = eend) {
		e = read_find(ext, n, cur);
		if (!e || __builtin_mul_overflow(e->npages, ps, &eend) ||
		    __builtin_add_overflow(e->addr, eend, &eend))
			eend = e ? UINT64_MAX : 0;
		if (eend <= cur)
			return read_hole(name, c, cur);
		if (e->type == IMG_FRAME_DISCARDED) {
			cli_file_error(name,
				       "address 0x%" PRIx64 " was discarded after the snapshot "
				       "instant (pages 0x%" PRIx64 "-0x%" PRIx64 "): its content "
				       "is not in the image",
				       cur, e->addr, eend);
			return -ESTALE;
		}
		if (eend == UINT64_MAX)
			break;
	}
	return 0;
}

/* " at offset N", unless the library's message already says where. */
static const char *read_where(const struct img_error *err, char *buf, size_t len)
{
	if (strstr(err->msg, "offset"))
		return "";
	snprintf(buf, len, " at offset %" PRIu64, err->offset);
	return buf;
}

static int read_write_all(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static bool read_to_stdout(const struct read_args *a)
{
	return !a->output || !strcmp(a->output, "-");
}

/* Copies the range, chunk by chunk, from the image to out. */
static int read_copy(const char *name, struct img_chain *r, const struct read_args *a, int out)
{
	struct img_error err = {0};
	uint8_t *buf = malloc(READ_CHUNK);
	char e[128], where[48];
	int k = buf ? 0 : -ENOMEM;

	for (uint64_t done = 0; k >= 0 && done < a->length; done += READ_CHUNK) {
		size_t n = a->length - done < READ_CHUNK ? a->length - done : READ_CHUNK;

		k = img_chain_read(r, a->addr + done, buf, n, &err);
		if (k < 0) {
			cli_file_error(name, "cannot read 0x%" PRIx64 ": %s%s", a->addr + done,
				       err.msg[0] ? err.msg : cli_strerror(k, e, sizeof(e)),
				       err.msg[0] ? read_where(&err, where, sizeof(where)) : "");
			break;
		}
		k = read_write_all(out, buf, n);
		if (k < 0)
			cli_file_error(read_to_stdout(a) ? "(stdout)" : a->output, "cannot write: %s",
				       cli_strerror(k, e, sizeof(e)));
	}
	free(buf);
	return k;
}

/*
 * The index can point past a corrupt frame (a sequence gap, an unknown mandatory frame, a
 * second META): read the image front to back first, as verify does, and refuse a corrupt one.
 * An incomplete one is read as far as it goes (the reader says so).
 */
static int read_verify(const struct cli_image *img)
{
	struct img_summary sum;
	char e[128], why[sizeof(sum.error.msg) + 96];
	int r = img_verify_fd(img->fd, &sum, NULL);

	if (r < 0)
		cli_file_error(img->name, "cannot read: %s", cli_strerror(r, e, sizeof(e)));
	else if (sum.status == IMG_CORRUPT) {
		cli_status_describe(&sum, why, sizeof(why));
		cli_file_error(img->name, "%s (see 'uffsnapctl image verify')", why);
		r = -EBADMSG;
	}
	return r;
}

static int read_open(const struct cli_image *img, const char *parent, struct img_chain **ret)
{
	struct img_error err;

	/* Checked first: verifying a pipe would consume what the reader needs. */
	if (img->seekable && read_verify(img) < 0)
		return -EBADMSG;
	return cli_chain_open(img, parent, "reading a range", false, ret, &err);
}

/* Writes the range to stdout, or to a new --output file given its name when complete. */
static int read_output(const char *name, struct img_chain *r, const struct read_args *a)
{
	struct out_file o = OUT_FILE_INIT;
	int fd;

	if (read_to_stdout(a)) {
		/* a reader that goes away is a write error (EPIPE): one line, status 1 */
		signal(SIGPIPE, SIG_IGN);
		return read_copy(name, r, a, STDOUT_FILENO);
	}
	fd = cli_output_open(a->output, a->force, 0666, &o);
	return cli_output_close(a->output, &o, fd < 0 ? fd : read_copy(name, r, a, fd));
}

int cmd_image_read(const struct cli_invocation *inv, int argc, char **argv)
{
	struct cli_image img = {.fd = -EBADF};
	struct read_args a = {0};
	struct img_chain *r = NULL;
	int ret = CLI_EXIT_FAILURE;

	if (read_parse(inv, argc, argv, &a) < 0)
		return CLI_EXIT_USAGE;
	if (read_to_stdout(&a) && isatty(STDOUT_FILENO))
		return cli_usage_error(inv, "refusing to write binary data to a terminal; "
					    "redirect stdout or use --output FILE");
	if (a.force && read_to_stdout(&a))
		return cli_usage_error(inv, "--force goes with --output FILE");
	if (cli_image_open(a.path, &img) < 0)
		return CLI_EXIT_FAILURE;
	if (read_open(&img, a.parent, &r) < 0 ||
	    read_check_range(img.name, r, a.addr, a.addr + a.length) < 0)
		goto out;
	if (!img_chain_link(r, 0)->complete)
		cli_file_error(img.name, "warning: the image is incomplete (no valid trailer); "
					 "reading the frames it holds");
	if (read_output(img.name, r, &a) >= 0)
		ret = CLI_EXIT_OK;
out:
	img_chain_free(r);
	cli_image_close(&img);
	return ret;
}
