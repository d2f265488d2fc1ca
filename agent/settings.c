/*
 * settings.c - connection settings from flags, environment and config file.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "conf.h"
#include "util.h"
#include "settings.h"

struct conf_load {
	const char *file;
	char *server, *token, *ca, *fingerprint;
	char *key_file, *passphrase_file;
	unsigned threads;
};

static int settings_replace(char **slot, const char *value)
{
	char *copy = strdup(value);

	if (!copy)
		return dd_error_set(-ENOMEM, "out of memory");
	free(*slot);
	*slot = copy;
	return 0;
}

int settings_parse_threads(unsigned *out, const char *value)
{
	uint64_t n;

	if (dd_parse_u64(value, &n) < 0 || n < 1 || n > SETTINGS_THREADS_MAX)
		return dd_error_set(-EINVAL,
				    "threads must be a number from 1 to %u, not '%s'",
				    SETTINGS_THREADS_MAX, value);
	*out = (unsigned)n;
	return 0;
}

static int settings_threads(unsigned *out, const char *value,
			    const char *file, unsigned line)
{
	int rc = settings_parse_threads(out, value);

	if (rc < 0)
		return dd_error_set(rc, "%s:%u: %s", file, line,
				    dd_error_last());
	return 0;
}

/* A path in the config file: a relative one is taken from the file's
 * own directory, so that the file means the same from cron, a service or
 * any working directory. */
static int settings_file_path(char **slot, const char *file,
			      const char *value)
{
	const char *slash = strrchr(file, '/');
	char *joined;
	size_t n;

	if (value[0] == '/' || !slash)
		return settings_replace(slot, value);
	n = (size_t)(slash - file) + 1 + strlen(value) + 1;
	if (!(joined = malloc(n)))
		return dd_error_set(-ENOMEM, "out of memory");
	snprintf(joined, n, "%.*s/%s", (int)(slash - file), file, value);
	free(*slot);
	*slot = joined;
	return 0;
}

static int settings_conf_cb(void *payload, const char *key,
			    const char *value, unsigned line)
{
	struct conf_load *cl = payload;

	if (strcmp(key, "server") == 0)
		return settings_replace(&cl->server, value);
	if (strcmp(key, "token") == 0)
		return settings_replace(&cl->token, value);
	if (strcmp(key, "ca") == 0)
		return settings_file_path(&cl->ca, cl->file, value);
	if (strcmp(key, "fingerprint") == 0)
		return settings_replace(&cl->fingerprint, value);
	if (strcmp(key, "key_file") == 0)
		return settings_file_path(&cl->key_file, cl->file, value);
	if (strcmp(key, "passphrase_file") == 0)
		return settings_file_path(&cl->passphrase_file, cl->file,
					  value);
	if (strcmp(key, "threads") == 0)
		return settings_threads(&cl->threads, value, cl->file, line);
	return dd_error_set(-EINVAL, "%s:%u: unknown key '%s'", cl->file,
			    line, key);
}

/* Picks flag, then environment, then file value; NULL or "" counts as
 * unset. */
static int settings_pick(char **out, const char *flag, const char *env_name,
			 char **from_file)
{
	const char *env = getenv(env_name);

	if (flag && *flag)
		return settings_replace(out, flag);
	if (env && *env)
		return settings_replace(out, env);
	if (*from_file && **from_file) {
		*out = *from_file;
		*from_file = NULL;
	}
	return 0;
}

static int settings_check_token(const char *token)
{
	for (const unsigned char *p = (const unsigned char *)token; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f)
			return dd_error_set(-EINVAL,
					    "the token contains a space or a control or non-ASCII character");
	return 0;
}

/* A hex digit as its lowercase form, or 0. */
static char settings_hex(char c)
{
	if (c >= 'A' && c <= 'F')
		return (char)(c - 'A' + 'a');
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ? c : 0;
}

/*
 * "sha256:" then 64 hex digits, either case, optionally with a colon
 * between byte pairs (as openssl prints it) -> 64 lowercase hex digits,
 * in place.
 */
static int settings_fingerprint(char *fp)
{
	const char *p = fp + 7;
	bool colons;
	size_t n = 0;

	if (strncasecmp(fp, "sha256:", 7) != 0)
		goto bad;
	colons = strlen(p) == 95;
	while (n < 64) {
		char hi = settings_hex(p[0]), lo = hi ? settings_hex(p[1]) : 0;

		if (!lo)
			goto bad;
		fp[n++] = hi;
		fp[n++] = lo;
		p += 2;
		if (colons && n < 64 && *p++ != ':')
			goto bad;
	}
	if (*p)
		goto bad;
	fp[n] = '\0';
	return 0;
bad:
	return dd_error_set(-EINVAL, "the fingerprint must be sha256: and 64 "
			    "hex digits, as `dedup-server cert show` prints it "
			    "(openssl's AB:CD:... form after sha256: too)");
}

/* A relative CA path is made absolute: restore changes directory, and
 * curl reads the file again whenever it reconnects. */
static int settings_absolute(char **path)
{
	char *cwd, *abs;
	size_t n;

	if (!*path || (*path)[0] == '/')
		return 0;
	if (!(cwd = getcwd(NULL, 0)))
		return dd_error_set(-errno, "cannot get the working directory: %s",
				    strerror(errno));
	n = strlen(cwd) + strlen(*path) + 2;
	if (!(abs = malloc(n))) {
		free(cwd);
		return dd_error_set(-ENOMEM, "out of memory");
	}
	snprintf(abs, n, "%s/%s", cwd, *path);
	free(cwd);
	free(*path);
	*path = abs;
	return 0;
}

static void settings_conf_release(struct conf_load *cl)
{
	free(cl->server);
	free(cl->token);
	free(cl->ca);
	free(cl->fingerprint);
	free(cl->key_file);
	free(cl->passphrase_file);
}

static int settings_conf_read(struct conf_load *cl,
			      const struct settings_source *src)
{
	const char *file = src->config ? src->config : SETTINGS_DEFAULT_CONFIG;
	struct stat st;
	int rc;

	cl->file = file;
	rc = dd_conf_parse_file(file, settings_conf_cb, cl);
	if (rc == -ENOENT && !src->config)
		return 0;
	/* as for a key file (key.c), a warning, so that cron still runs */
	if (rc == 0 && cl->token && stat(file, &st) == 0 &&
	    (st.st_mode & S_IROTH))
		agent_warn("config file '%s' holds a token and every user may "
			   "read it (mode %04o): chmod 600 it", file,
			   (unsigned)(st.st_mode & 07777));
	if (rc == -ENOENT)
		return dd_error_set(-ENOENT, "cannot read config file '%s': %s",
				    file, strerror(ENOENT));
	return rc;
}

static int settings_pick_key(struct settings *s,
			     const struct settings_source *src,
			     struct conf_load *cl)
{
	int rc;

	if ((rc = settings_pick(&s->key_file, src->key_file,
				"DEDUP_KEY_FILE", &cl->key_file)) < 0 ||
	    (rc = settings_pick(&s->passphrase_file, src->passphrase_file,
				"DEDUP_PASSPHRASE_FILE",
				&cl->passphrase_file)) < 0 ||
	    (rc = settings_absolute(&s->key_file)) < 0)
		return rc;
	return settings_absolute(&s->passphrase_file);
}

int settings_load_key(struct settings *out, const struct settings_source *src)
{
	struct conf_load cl = { 0 };
	struct settings s = { 0 };
	int rc;

	if ((rc = settings_conf_read(&cl, src)) == 0 &&
	    (rc = settings_pick_key(&s, src, &cl)) == 0) {
		*out = s;
		memset(&s, 0, sizeof(s));
	}
	settings_release(&s);
	settings_conf_release(&cl);
	return rc;
}

int settings_load(struct settings *out, const struct settings_source *src)
{
	struct conf_load cl = { 0 };
	struct settings s = { 0 };
	const char *file = src->config ? src->config : SETTINGS_DEFAULT_CONFIG;
	size_t n;
	int rc;

	if ((rc = settings_conf_read(&cl, src)) < 0 ||
	    (rc = settings_pick_key(&s, src, &cl)) < 0)
		goto cleanup;

	if ((rc = settings_pick(&s.server, src->server, "DEDUP_SERVER",
				&cl.server)) < 0 ||
	    (rc = settings_pick(&s.token, src->token, "DEDUP_TOKEN",
				&cl.token)) < 0 ||
	    (rc = settings_pick(&s.ca, src->ca, "DEDUP_CA", &cl.ca)) < 0 ||
	    (rc = settings_pick(&s.fingerprint, src->fingerprint,
				"DEDUP_FINGERPRINT", &cl.fingerprint)) < 0)
		goto cleanup;

	if (!s.server) {
		rc = dd_error_set(-EINVAL,
				  "no server configured (--server, DEDUP_SERVER or server = in %s)",
				  file);
		goto cleanup;
	}
	if (!s.token) {
		rc = dd_error_set(-EINVAL,
				  "no token configured (--token, DEDUP_TOKEN or token = in %s)",
				  file);
		goto cleanup;
	}
	if (strncmp(s.server, "https://", 8) != 0 || !s.server[8]) {
		rc = dd_error_set(-EINVAL,
				  "server URL '%s' must start with https://",
				  s.server);
		goto cleanup;
	}
	n = strlen(s.server);
	while (n > 8 && s.server[n - 1] == '/')
		s.server[--n] = '\0';
	if ((rc = settings_check_token(s.token)) < 0 ||
	    (rc = settings_absolute(&s.ca)) < 0)
		goto cleanup;
	if (s.fingerprint && (rc = settings_fingerprint(s.fingerprint)) < 0)
		goto cleanup;

	s.threads = cl.threads;
	*out = s;
	memset(&s, 0, sizeof(s));
	rc = 0;
cleanup:
	settings_release(&s);
	settings_conf_release(&cl);
	return rc;
}

void settings_release(struct settings *s)
{
	if (!s)
		return;
	free(s->server);
	if (s->token)
		memset(s->token, 0, strlen(s->token));
	free(s->token);
	free(s->ca);
	free(s->fingerprint);
	free(s->key_file);
	free(s->passphrase_file);
	memset(s, 0, sizeof(*s));
}
