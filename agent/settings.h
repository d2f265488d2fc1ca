/*
 * settings.h - where the agent finds its server: flags win over the
 * environment (DEDUP_SERVER, DEDUP_TOKEN, DEDUP_CA, DEDUP_FINGERPRINT),
 * the environment over the config file (`server`, `token`, `ca`,
 * `fingerprint`, `key_file`, `passphrase_file` keys; --config FILE or the default
 * DD_SYSCONFDIR "/dedup/agent.conf"). The file may also set `threads`,
 * how many threads a backup reads, cuts and hashes files on (1..64; a
 * command's --threads wins; unset: one per online CPU).
 *
 * The server is verified either by a CA file (its self-signed certificate
 * is its own CA) or by pinning its certificate's SHA-256 fingerprint, as
 * `dedup-server cert show` prints it. When a fingerprint is set, it alone
 * decides: the CA file and the host name are not checked.
 */
#ifndef DD_AGENT_SETTINGS_H
#define DD_AGENT_SETTINGS_H

#define SETTINGS_DEFAULT_CONFIG DD_SYSCONFDIR "/dedup/agent.conf"

/* What the command line said; borrowed strings, NULL when not given. */
struct settings_source {
	const char *server;
	const char *token;
	const char *ca;
	const char *config;   /* explicit --config; NULL = the default file */
	const char *fingerprint;  /* "sha256:<64 hex>" */
	const char *key_file;     /* --key-file */
	const char *passphrase_file;  /* --passphrase-file */
};

/* The resolved settings; owned strings. `ca` may be NULL (then the system
 * trust store verifies the server). */
struct settings {
	char *server;         /* https://host:port, no trailing '/' */
	char *token;
	char *ca;
	char *fingerprint;    /* 64 lowercase hex digits, or NULL */
	/* Client-side encryption (docs/ENCRYPTION.md): the key file and
	 * where its passphrase comes from; NULL when not set. Absolute. */
	char *key_file;
	char *passphrase_file;
	unsigned threads;     /* `threads` of the file; 0: not set */
};

#define SETTINGS_THREADS_MAX 64u

/* Parses a thread count (1..SETTINGS_THREADS_MAX) into *out; -EINVAL with
 * a message otherwise. */
int settings_parse_threads(unsigned *out, const char *value);

/*
 * Resolves the settings. A missing default config file is fine; a missing
 * explicit one, an unknown key or a syntax error is an error naming the
 * file (and line). Missing server or token, a server URL that is not
 * https://, a token with characters unfit for a header, or a fingerprint
 * that is not "sha256:" and 64 hex digits (colons between byte pairs are
 * allowed) is -EINVAL with a message saying where to set it. On failure
 * *out holds nothing.
 */
int settings_load(struct settings *out, const struct settings_source *src);

/*
 * Only the encryption keys: key_file (--key-file, DEDUP_KEY_FILE,
 * `key_file =`) and passphrase_file (--passphrase-file,
 * DEDUP_PASSPHRASE_FILE, `passphrase_file =`); the other fields of *out
 * are NULL. For `dedup-agent key`, which needs no server.
 */
int settings_load_key(struct settings *out, const struct settings_source *src);
void settings_release(struct settings *s);

#endif
