/*
 * lock.h - one backup at a time per configuration.
 *
 * A backup holds an exclusive flock(2) on a lock file named after the
 * user and the configuration the run resolved to (its server URL and
 * client token, wherever they came from):
 *
 *     DIR/dedup-agent.UID.KEY.lock
 *
 * DIR is /run/lock when that is a directory the caller may write (root
 * everywhere; every user on Debian, where it is sticky and world-writable),
 * /tmp otherwise. Neither choice reads the environment, so a run from
 * cron's bare environment and one from a login shell find the same file.
 * KEY is the first 16 hex digits of SHA-256("SERVER\nTOKEN"): the token
 * itself never appears in a file name.
 *
 * The lock belongs to the open file: it goes when the process ends,
 * however it ends, so a lock file left behind by a killed run is harmless.
 * The holder writes its pid into the file (for the second run's message)
 * and removes the file before it lets go; a run that locked a file which
 * the path no longer names (removed in between) opens it again, so two
 * runs can never both hold "the" lock.
 */
#ifndef DD_AGENT_LOCK_H
#define DD_AGENT_LOCK_H

#include <stddef.h>

struct lock;

/* Hex digits of the configuration key in the file name. */
#define LOCK_KEY_HEX 16

/*
 * Writes the lock file's path for `server` and `token` into out[size].
 * -ENAMETOOLONG if it does not fit.
 */
int lock_path(char *out, size_t size, const char *server, const char *token);

/*
 * Takes the lock for `server` and `token` without waiting. On 0, *out
 * holds it until lock_free(). -EWOULDBLOCK when another process holds it
 * (the message names that process and the file); any other negative code
 * when the file cannot be opened or belongs to another user. The reason
 * is recorded with dd_error_set().
 */
int lock_take(struct lock **out, const char *server, const char *token);

/* Releases the lock; NULL is a no-op. */
void lock_free(struct lock *l);

#endif
