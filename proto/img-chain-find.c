/* SPDX-License-Identifier: MIT */
/*
 * Finding an incremental image's parent (FORMAT.md "Chains"): its META names the parent by the
 * digest in the parent's trailer, with the parent's file name as a hint. The hint is tried
 * first; then every regular file of the child's directory, reading only its last 80 bytes, so
 * that a renamed parent is still found cheaply. A directory is scanned once per chain: deep
 * chains whose hints are all stale cost one scan, not one per link.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "img-chain-int.h"

struct chain_file {
	char *name;
	uint8_t digest[IMG_DIGEST_SIZE];
};

struct chain_finder {
	char *dir;
	struct chain_file *v; /* the complete images of dir */
	size_t n;
	struct chain_finder *next;
};

static int hex_value(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int parse_digest(const char *hex, uint8_t out[IMG_DIGEST_SIZE])
{
	if (!hex || strlen(hex) != 2 * IMG_DIGEST_SIZE)
		return -EBADMSG;
	for (int i = 0; i < IMG_DIGEST_SIZE; i++) {
		int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EBADMSG;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* The hint without any directory: it names a file beside the child, never elsewhere. */
static void copy_file_hint(const char *file, char *out, size_t len)
{
	const char *slash = file ? strrchr(file, '/') : NULL;
	const char *base = slash ? slash + 1 : file;

	out[0] = '\0';
	if (base && *base && strcmp(base, ".") && strcmp(base, "..") && strlen(base) < len)
		memcpy(out, base, strlen(base) + 1);
}

int chain_parse_parent(const char *meta, const char *child, struct chain_parent *ret,
		       struct img_error *err)
{
	json_t *m = json_loads(meta, 0, NULL), *p = json_object_get(m, "parent");
	const char *hex = json_string_value(json_object_get(p, "digest"));
	const char *time = json_string_value(json_object_get(p, "time"));
	int r = parse_digest(hex, ret->digest);

	if (r >= 0) {
		memcpy(ret->hex, hex, sizeof(ret->hex));
		snprintf(ret->time, sizeof(ret->time), "%s", time ? time : "?");
		copy_file_hint(json_string_value(json_object_get(p, "file")), ret->file,
			       sizeof(ret->file));
	}
	json_decref(m);
	if (r < 0)
		return img_fail(err, 0, -EBADMSG,
				"%s is incremental, but its metadata names no parent "
				"(parent.digest: 64 lowercase hex digits)",
				child);
	return 0;
}

int chain_trailer_digest(int fd, uint8_t ret[IMG_DIGEST_SIZE])
{
	uint8_t buf[IMG_TRAILER_SIZE];
	struct img_trailer t;
	struct stat st;
	ssize_t n;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_size < IMG_HEADER_SIZE + IMG_TRAILER_SIZE)
		return -ENODATA;
	n = pread(fd, buf, sizeof(buf), st.st_size - IMG_TRAILER_SIZE);
	if (n < 0)
		return -errno;
	if (n != sizeof(buf) || img_trailer_decode(buf, &t, NULL) < 0 ||
	    t.image_size != (uint64_t)st.st_size)
		return -ENODATA;
	memcpy(ret, t.digest, IMG_DIGEST_SIZE);
	return 0;
}

/* The digest of dir/name's trailer; O_NONBLOCK so that a FIFO there cannot block the open. */
static int file_digest(int dirfd, const char *name, uint8_t out[IMG_DIGEST_SIZE])
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY), r;

	if (fd < 0)
		return -errno;
	r = chain_trailer_digest(fd, out);
	close(fd);
	return r;
}

static int finder_add(struct chain_finder *f, const char *name, const uint8_t *digest)
{
	struct chain_file *v = realloc(f->v, (f->n + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	f->v = v;
	v[f->n].name = strdup(name);
	if (!v[f->n].name)
		return -ENOMEM;
	memcpy(v[f->n++].digest, digest, IMG_DIGEST_SIZE);
	return 0;
}

/* Reads every regular file's trailer in dir once; files without a valid one are left out. */
static int finder_scan(struct chain_finder *f)
{
	DIR *d = opendir(f->dir);
	struct dirent *e;
	int r = 0;

	if (!d)
		return -errno;
	while (r >= 0 && (e = readdir(d))) {
		uint8_t digest[IMG_DIGEST_SIZE];

		if (e->d_type != DT_REG && e->d_type != DT_LNK && e->d_type != DT_UNKNOWN)
			continue;
		if (file_digest(dirfd(d), e->d_name, digest) == 0)
			r = finder_add(f, e->d_name, digest);
	}
	closedir(d);
	return r;
}

/* The scan of dir, made on first use. */
static int finder_get(struct chain_finder **list, const char *dir, struct chain_finder **ret)
{
	struct chain_finder *f;
	int r;

	for (f = *list; f; f = f->next)
		if (!strcmp(f->dir, dir))
			return *ret = f, 0;
	f = calloc(1, sizeof(*f));
	if (!f || !(f->dir = strdup(dir))) {
		free(f);
		return -ENOMEM;
	}
	f->next = *list;
	*list = f;
	r = finder_scan(f);
	*ret = f;
	return r;
}

void chain_finder_free(struct chain_finder *f)
{
	while (f) {
		struct chain_finder *next = f->next;

		for (size_t i = 0; i < f->n; i++)
			free(f->v[i].name);
		free(f->v);
		free(f->dir);
		free(f);
		f = next;
	}
}

static char *path_join(const char *dir, const char *name)
{
	char *p = NULL;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

/* The child's directory ("." for a bare name), malloc'd. */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

/* The parent by its file name hint: 1 found, 0 not there (or another file), -ENODATA cut. */
static int try_hint(const char *dir, const struct chain_parent *p)
{
	uint8_t digest[IMG_DIGEST_SIZE];
	int dirfd, r;

	if (!p->file[0])
		return 0;
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return 0;
	r = file_digest(dirfd, p->file, digest);
	close(dirfd);
	if (r == -ENODATA)
		return -ENODATA;
	return r == 0 && !memcmp(digest, p->digest, IMG_DIGEST_SIZE);
}

static int not_found(const char *dir, const char *child, const struct chain_parent *p, bool top,
		     int hint, struct img_error *err)
{
	if (hint == -ENODATA)
		return img_fail(err, 0, -ENODATA,
				"parent image %s/%s of %s is incomplete (no trailer): an "
				"incremental image reads through complete parents only",
				dir, p->file, child);
	return img_fail(err, 0, -ENOENT,
			"parent image %.12s of %s (taken %s) not found beside it%s", p->hex, child,
			p->time, top ? "; give --parent PATH" : "");
}

int chain_find_parent(struct chain_finder **finder, const char *child_path,
		      const struct chain_parent *p, bool top, char **ret_path,
		      struct img_error *err)
{
	char *dir = dir_of(child_path);
	struct chain_finder *f;
	int hint, r;

	if (!dir)
		return -ENOMEM;
	hint = try_hint(dir, p);
	if (hint == 1) {
		*ret_path = path_join(dir, p->file);
		r = *ret_path ? 0 : -ENOMEM;
		goto out;
	}
	r = finder_get(finder, dir, &f);
	for (size_t i = 0; r >= 0 && i < f->n; i++)
		if (!memcmp(f->v[i].digest, p->digest, IMG_DIGEST_SIZE)) {
			*ret_path = path_join(dir, f->v[i].name);
			r = *ret_path ? 0 : -ENOMEM;
			goto out;
		}
	/* An unreadable directory is as good as one without the parent: say that. */
	if (r >= 0 || r != -ENOMEM)
		r = not_found(dir, child_path, p, top, hint, err);
out:
	free(dir);
	return r;
}
