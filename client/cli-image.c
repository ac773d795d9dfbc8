/* SPDX-License-Identifier: MIT */
/* Opening image files for uffsnapctl, and the one-line messages about them. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli-image.h"

void cli_file_error(const char *name, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "uffsnapctl: %s: ", name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

const char *cli_strerror(int neg_errno, char *buf, size_t len)
{
	snprintf(buf, len, "%s", strerror(-neg_errno));
	if (buf[0] && isupper((unsigned char)buf[0]) && !isupper((unsigned char)buf[1]))
		buf[0] = (char)tolower((unsigned char)buf[0]);
	return buf;
}

/* Refuses a directory and an empty regular file; notes whether pread() will work. */
static int cli_image_check(struct cli_image *img)
{
	struct stat st;

	if (fstat(img->fd, &st) < 0) {
		int r = -errno;
		char e[128];

		cli_file_error(img->name, "cannot stat: %s", cli_strerror(r, e, sizeof(e)));
		return r;
	}
	if (S_ISDIR(st.st_mode)) {
		cli_file_error(img->name, "is a directory, not an image file");
		return -EISDIR;
	}
	if (S_ISREG(st.st_mode) && st.st_size == 0) {
		cli_file_error(img->name, "empty file (0 bytes), not an image");
		return -ENODATA;
	}
	img->seekable = S_ISREG(st.st_mode) || S_ISBLK(st.st_mode);
	return 0;
}

int cli_image_open(const char *path, struct cli_image *ret)
{
	struct cli_image img = {.name = path, .fd = -EBADF};
	char e[128];
	int r;

	if (!strcmp(path, "-")) {
		img.name = "(stdin)";
		img.fd = STDIN_FILENO;
	} else {
		img.fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (img.fd < 0) {
			r = -errno;
			cli_file_error(path, "cannot open: %s", cli_strerror(r, e, sizeof(e)));
			return r;
		}
		img.owned = true;
	}
	r = cli_image_check(&img);
	if (r < 0) {
		cli_image_close(&img);
		return r;
	}
	*ret = img;
	return 0;
}

void cli_image_close(struct cli_image *img)
{
	if (!img)
		return;
	if (img->owned && img->fd >= 0)
		close(img->fd);
	img->fd = -EBADF;
	img->owned = false;
}

/* One row per header flag (FORMAT.md "File header"). */
static const struct {
	uint32_t flag;
	const char *name, *words;
} cli_flags[] = {
    {IMG_HEADER_F_REWRITES, "pre-copy", "pre-copy (pages rewritten by later rounds)"},
    {IMG_HEADER_F_INCREMENTAL, "incremental", "incremental (what changed since its parent)"},
};

const char *cli_flags_describe(uint32_t flags, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(cli_flags) / sizeof(cli_flags[0]); i++)
		if ((flags & cli_flags[i].flag) && used < len)
			used += snprintf(buf + used, len - used, "%s%s", used ? "; " : "",
					 cli_flags[i].words);
	return buf;
}

json_t *cli_flags_json(uint32_t flags)
{
	json_t *a = json_array();

	for (size_t i = 0; i < sizeof(cli_flags) / sizeof(cli_flags[0]); i++)
		if (flags & cli_flags[i].flag)
			json_array_append_new(a, json_string(cli_flags[i].name));
	return a;
}

const char *cli_status_name(enum img_status status)
{
	switch (status) {
	case IMG_COMPLETE:
		return "complete";
	case IMG_INCOMPLETE:
		return "incomplete";
	default:
		return "corrupt";
	}
}

void cli_status_describe(const struct img_summary *s, char *buf, size_t len)
{
	const char *msg = s->error.msg[0] ? s->error.msg : "no details";

	if (s->status == IMG_COMPLETE)
		snprintf(buf, len, "complete");
	else if (s->status == IMG_INCOMPLETE && s->valid_bytes != s->error.offset)
		snprintf(buf, len, "incomplete at offset %llu: %s (valid up to byte %llu)",
			 (unsigned long long)s->error.offset, msg,
			 (unsigned long long)s->valid_bytes);
	else if (s->status == IMG_INCOMPLETE)
		snprintf(buf, len, "incomplete at offset %llu: %s",
			 (unsigned long long)s->error.offset, msg);
	else
		snprintf(buf, len, "corrupt at offset %llu: %s",
			 (unsigned long long)s->error.offset, msg);
}

const char *cli_error_where(const struct img_error *err, char *buf, size_t len)
{
	if (strstr(err->msg, "offset"))
		return "";
	snprintf(buf, len, " at offset %" PRIu64, err->offset);
	return buf;
}

int cli_image_reader_open(const struct cli_image *img, const char *purpose,
			  struct img_reader **ret)
{
	struct img_error err = {0};
	char e[128], where[48];
	int r;

	if (!img->seekable) {
		cli_file_error(img->name, "not a regular file: %s needs random access "
					  "(save the image to a file first)", purpose);
		return -ESPIPE;
	}
	r = img_reader_open(img->fd, ret, &err);
	if (r == -ENODATA && err.msg[0])
		cli_file_error(img->name,
			       "cannot use the image for %s: %s (at offset %" PRIu64
			       "; see 'uffsnapctl image verify')",
			       purpose, err.msg, err.offset);
	else if (r == -ENODATA)
		cli_file_error(img->name,
			       "incomplete image: %s needs its index; "
			       "see 'uffsnapctl image verify'",
			       purpose);
	else if (r == -EBADMSG || r == -EPROTONOSUPPORT)
		cli_file_error(img->name,
			       "cannot use the image: %s%s (see 'uffsnapctl image verify')",
			       err.msg, cli_error_where(&err, where, sizeof(where)));
	else if (r < 0)
		cli_file_error(img->name, "cannot read: %s", cli_strerror(r, e, sizeof(e)));
	return r;
}

int cli_chain_open(const struct cli_image *img, const char *parent, const char *purpose, bool quiet,
		   struct img_chain **ret, struct img_error *err)
{
	char e[128], where[48];
	bool corrupt;
	int r;

	*err = (struct img_error){0};
	if (!img->seekable || !img->owned) {
		snprintf(err->msg, sizeof(err->msg),
			 "not a regular file: %s needs random access (save the image to a file "
			 "first)",
			 purpose);
		r = -ESPIPE;
	} else {
		r = img_chain_open(img->name, parent, ret, err);
	}
	if (r >= 0 || quiet)
		return r;
	/*
	 * The library's messages name the image at fault. Where the image itself is damaged (no
	 * parent involved), where it is and verify's pointer help; for a chain that does not link
	 * up, they would not.
	 */
	corrupt = (r == -EBADMSG || r == -EPROTONOSUPPORT) && !strstr(err->msg, "parent");
	if (!err->msg[0])
		cli_file_error(img->name, "cannot read: %s", cli_strerror(r, e, sizeof(e)));
	else if (corrupt)
		cli_file_error(img->name,
			       "cannot use the image: %s%s (see 'uffsnapctl image verify')",
			       err->msg, cli_error_where(err, where, sizeof(where)));
	else
		cli_file_error(img->name, "cannot use the image for %s: %s", purpose, err->msg);
	return r;
}

const char *cli_digest_hex(const uint8_t *digest, size_t n, char *buf)
{
	for (size_t i = 0; i < n; i++)
		snprintf(buf + 2 * i, 3, "%02x", digest[i]);
	buf[2 * n] = '\0';
	return buf;
}

int cli_output_open(const char *path, bool force, mode_t mode, struct out_file *o)
{
	char e[128];
	int r;

	if (!path || !strcmp(path, "-"))
		return STDOUT_FILENO;
	r = out_file_open(o, path, force, mode);
	if (r == -EEXIST)
		cli_file_error(path, "exists (use --force to replace it)");
	else if (r == -EISDIR)
		cli_file_error(path, "is a directory: name a file to write");
	else if (r < 0)
		cli_file_error(path, "cannot create: %s", cli_strerror(r, e, sizeof(e)));
	return r < 0 ? r : o->fd;
}

int cli_output_close(const char *path, struct out_file *o, int status)
{
	char e[128];
	int k = status;

	if (o->fd < 0) /* stdout, or never opened */
		return status;
	if (k >= 0 && !o->in_place && fsync(o->fd) < 0) {
		k = -errno;
		cli_file_error(path, "cannot write: %s", cli_strerror(k, e, sizeof(e)));
	}
	if (k >= 0 && (k = out_file_commit(o)) < 0)
		cli_file_error(path, "cannot %s: %s", k == -EEXIST ? "name it" : "write",
			       k == -EEXIST ? "it was created meanwhile (use --force to replace it)"
					    : cli_strerror(k, e, sizeof(e)));
	out_file_close(o); /* before a commit, removes only what it created */
	return k;
}
