/*
 * lock.c - the per-configuration backup lock (lock.h).
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash.h"
#include "util.h"
#include "lock.h"

#define LOCK_DIR_RUN "/run/lock"
#define LOCK_DIR_TMP "/tmp"

/* Opening, locking and checking the path again is retried this often when
 * the file is replaced under us (a holder removes it as it finishes). */
#define LOCK_TRIES 16

struct lock {
	int fd;
	char path[4096];
};

static const char *lock_dir(void)
{
	struct stat st;

	if (stat(LOCK_DIR_RUN, &st) == 0 && S_ISDIR(st.st_mode) &&
	    access(LOCK_DIR_RUN, W_OK | X_OK) == 0)
		return LOCK_DIR_RUN;
	return LOCK_DIR_TMP;
}

int lock_path(char *out, size_t size, const char *server, const char *token)
{
	struct dd_sha256_ctx *ctx = dd_sha256_new();
	char hex[DD_ID_HEX_LEN + 1];
	struct dd_id id;
	int n;

	if (!ctx)
		return dd_error_set(-ENOMEM, "out of memory");
	dd_sha256_update(ctx, server, strlen(server));
	dd_sha256_update(ctx, "\n", 1);
	dd_sha256_update(ctx, token, strlen(token));
	dd_sha256_final(ctx, &id);
	dd_sha256_free(ctx);
	dd_id_to_hex(hex, &id);
	n = snprintf(out, size, "%s/dedup-agent.%lu.%.*s.lock", lock_dir(),
		     (unsigned long)geteuid(), LOCK_KEY_HEX, hex);
	if (n < 0 || (size_t)n >= size)
		return dd_error_set(-ENAMETOOLONG, "lock file path too long");
	return 0;
}

/* The pid the holder wrote into the file, or 0 if unknown. */
static unsigned long lock_holder(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	unsigned long pid;
	char *end;

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	errno = 0;
	pid = strtoul(buf, &end, 10);
	if (errno || end == buf || (*end && *end != '\n'))
		return 0;
	return pid;
}

/*
 * Opens the lock file at `path` and locks it: 0 with *fd locked, 1 when the
 * file was removed or replaced between the open and the lock (try again),
 * negative on failure.
 */
static int lock_try(int *fd, const char *path)
{
	struct stat st, now;
	char pid[32];
	int rc;

	*fd = -1;
	/* O_NOFOLLOW: the directory may be world-writable. */
	*fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (*fd < 0)
		return dd_error_set(-errno, "cannot open lock file '%s': %s",
				    path, strerror(errno));
	if (fstat(*fd, &st) < 0)
		return dd_error_set(-errno, "cannot stat lock file '%s': %s",
				    path, strerror(errno));
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid())
		return dd_error_set(-EPERM,
				    "lock file '%s' is not a regular file of this user; remove it",
				    path);
	if (flock(*fd, LOCK_EX | LOCK_NB) < 0) {
		unsigned long holder;

		if (errno != EWOULDBLOCK)
			return dd_error_set(-errno, "cannot lock '%s': %s",
					    path, strerror(errno));
		holder = lock_holder(*fd);
		if (holder)
			snprintf(pid, sizeof(pid), "pid %lu, ", holder);
		else
			pid[0] = '\0';
		return dd_error_set(-EWOULDBLOCK,
				    "another backup with this configuration is still running (%slock '%s')",
				    pid, path);
	}
	/* A holder removes the file before it lets go: the lock counts only
	 * if the path still names the file locked. */
	rc = stat(path, &now);
	if (rc < 0 && errno != ENOENT)
		return dd_error_set(-errno, "cannot stat lock file '%s': %s",
				    path, strerror(errno));
	if (rc < 0 || now.st_dev != st.st_dev || now.st_ino != st.st_ino) {
		close(*fd);
		*fd = -1;
		return 1;
	}
	return 0;
}

int lock_take(struct lock **out, const char *server, const char *token)
{
	char path[4096], pid[32];
	struct lock *l = NULL;
	bool written;
	int fd = -1, n, rc, tries = 0;

	*out = NULL;
	if ((rc = lock_path(path, sizeof(path), server, token)) < 0)
		return rc;
	while ((rc = lock_try(&fd, path)) == 1)
		if (++tries == LOCK_TRIES) {
			rc = dd_error_set(-EAGAIN, "lock file '%s' keeps being replaced",
					  path);
			break;
		}
	if (rc < 0)
		goto cleanup;
	/* For the message a second run prints; the lock works without it,
	 * so a failed write is not an error. */
	n = snprintf(pid, sizeof(pid), "%lu\n", (unsigned long)getpid());
	written = ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) == n;
	(void)written;
	if (!(l = malloc(sizeof(*l)))) {
		rc = dd_error_set(-ENOMEM, "out of memory");
		goto cleanup;
	}
	l->fd = fd;
	snprintf(l->path, sizeof(l->path), "%s", path);
	fd = -1;
	*out = l;
	rc = 0;
cleanup:
	if (fd >= 0)
		close(fd);
	return rc;
}

void lock_free(struct lock *l)
{
	bool written;

	if (!l)
		return;
	/* Still holding the lock: remove the file, so that lock files do not
	 * pile up (lock_try checks the path again after locking). If it
	 * stays, clear the pid so that nobody names a process that has gone.
	 * Closing the file releases the lock. */
	if (unlink(l->path) < 0) {
		written = ftruncate(l->fd, 0) == 0;
		(void)written;
	}
	close(l->fd);
	free(l);
}
