/*
 * key.c - loading the key, the pipeline's id/seal/open points, sealed
 * manifests (key.h), and the `dedup-agent key` verb.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <termios.h>
#include <unistd.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#include "compress.h"
#include "crypt.h"
#include "proto.h"
#include "agent.h"
#include "key.h"
#include "parent.h"

#define KEY_FILE_MAX 4096
#define KEY_PASS_MAX 1024
#define KEY_MANIFEST_AD "dedup sealed manifest v1"

/* The process's key (key.h: unwrapped once, kept until exit). */
static pthread_mutex_t key_mu = PTHREAD_MUTEX_INITIALIZER;
static struct dd_crypt *key_cached;
static char *key_cached_file;
/* --allow-plain: a client with a key reads plain snapshots too */
static bool key_plain_allowed;

/* ---- passphrases ---- */

/* A secret file others may read or write: said once a run (as ssh would
 * refuse; a warning, so that a backup from cron still runs). */
static void key_warn_mode(const char *file, const char *what)
{
	struct stat st;

	if (stat(file, &st) == 0 && (st.st_mode & 077))
		agent_warn("%s '%s' is open to others (mode %04o): "
			   "chmod 600 it", what, file,
			   (unsigned)(st.st_mode & 07777));
	else if (stat(file, &st) == 0 && st.st_uid != geteuid())
		agent_warn("%s '%s' belongs to another user (uid %u)", what,
			   file, (unsigned)st.st_uid);
}

/* The first line of a file, without its newline. */
static int key_pass_from_file(char *out, size_t outsz, const char *file)
{
	uint8_t *data;
	size_t len;
	int rc = dd_read_file(file, KEY_PASS_MAX, &data, &len);

	if (rc == 0)
		key_warn_mode(file, "passphrase file");
	if (rc < 0)
		return dd_error_set(rc, "cannot read passphrase file '%s': %s",
				    file, rc == -E2BIG ? "too large" :
				    strerror(-rc));
	len = strcspn((char *)data, "\r\n");
	if (len == 0 || len >= outsz) {
		free(data);
		return dd_error_set(-EINVAL, "passphrase file '%s' has no "
				    "passphrase on its first line", file);
	}
	memcpy(out, data, len);
	out[len] = '\0';
	OPENSSL_cleanse(data, len);
	free(data);
	return 0;
}

/* Asks on the terminal with echo off. */
static int key_pass_from_tty(char *out, size_t outsz, const char *prompt)
{
	struct termios old, quiet;
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
	FILE *tty;
	bool echo_off;
	size_t n;

	if (fd < 0)
		return dd_error_set(-EACCES, "no passphrase: set passphrase_file "
				    "(or --passphrase-file, DEDUP_PASSPHRASE_FILE) "
				    "or DEDUP_PASSPHRASE, or run on a terminal");
	if (!(tty = fdopen(fd, "r+"))) {
		close(fd);
		return dd_error_set(-ENOMEM, "out of memory");
	}
	echo_off = tcgetattr(fd, &old) == 0;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	if (echo_off)
		tcsetattr(fd, TCSAFLUSH, &quiet);
	fprintf(tty, "%s", prompt);
	fflush(tty);
	if (!fgets(out, (int)outsz, tty))
		out[0] = '\0';
	if (echo_off)
		tcsetattr(fd, TCSAFLUSH, &old);
	fprintf(tty, "\n");
	fclose(tty);
	n = strcspn(out, "\r\n");
	out[n] = '\0';
	if (n == 0)
		return dd_error_set(-EACCES, "empty passphrase");
	return 0;
}

/* Where a passphrase comes from, in restic's order: a file, then the
 * environment, then the terminal. */
static int key_passphrase(char *out, size_t outsz, const char *file,
			  const char *env_name, const char *prompt)
{
	const char *env = getenv(env_name);

	if (file)
		return key_pass_from_file(out, outsz, file);
	if (env && *env) {
		if (strlen(env) >= outsz)
			return dd_error_set(-EINVAL, "%s is too long", env_name);
		snprintf(out, outsz, "%s", env);
		return 0;
	}
	return key_pass_from_tty(out, outsz, prompt);
}

/* ---- loading ---- */

static int key_read_file(struct dd_crypt **out, const char *file,
			 const char *pass_file)
{
	char pass[KEY_PASS_MAX];
	uint8_t *data = NULL;
	size_t len;
	int rc;

	*out = NULL;
	rc = dd_read_file(file, KEY_FILE_MAX, &data, &len);
	if (rc < 0)
		return dd_error_set(rc == -E2BIG ? -EBADMSG : rc,
				    "cannot read key file '%s': %s", file,
				    rc == -E2BIG ? "not a key file" :
				    strerror(-rc));
	key_warn_mode(file, "key file");
	rc = key_passphrase(pass, sizeof(pass), pass_file, "DEDUP_PASSPHRASE",
			    "passphrase for the dedup key: ");
	if (rc == 0) {
		rc = dd_crypt_unwrap(out, data, len, pass, strlen(pass));
		if (rc < 0)
			rc = agent_error_wrap(rc, "key file '%s'", file);
	}
	OPENSSL_cleanse(pass, sizeof(pass));
	free(data);
	return rc;
}

/* ---- damaged sealed chunks (key.h) ---- */

/* The file: this line first, then one id in hex a line. Each id is
 * appended as "\n<hex>\n" in one write(2) on an O_APPEND descriptor, so
 * writers of several processes never interleave, and a line torn by a
 * crash stays alone on its line; lines that are not an id are skipped. */
#define KEY_AVOID_MAGIC "dedup-agent damaged 1\n"
#define KEY_AVOID_MAX 65536u
/* The file read: room for every id twice (two agents may both add one),
 * with the blank lines; a larger file is not ours and not read. */
#define KEY_AVOID_FILE_MAX ((size_t)2 * KEY_AVOID_MAX * (DD_ID_HEX_LEN + 2) + \
			    sizeof(KEY_AVOID_MAGIC))
/* A variant differs from its keyed id in the last byte only. */
#define KEY_VARIANTS 255u

static struct {
	pthread_mutex_t mu;
	struct dd_id *ids;          /* sorted */
	size_t n, cap;
	/* "" when there is no state directory, or its file is unusable:
	 * then nothing is written there (a file never read must not grow) */
	char path[PATH_MAX];
	bool full_said;
} key_avoid = { .mu = PTHREAD_MUTEX_INITIALIZER };

static int key_id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct dd_id));
}

/* Whether id is remembered; the caller holds key_avoid.mu. */
static bool key_avoid_has(const struct dd_id *id)
{
	return key_avoid.n && bsearch(id, key_avoid.ids, key_avoid.n,
				      sizeof(*id), key_id_cmp);
}

/* Adds id in order: 1 added, 0 already there, -ENOSPC full, -ENOMEM.
 * The caller holds mu. */
static int key_avoid_insert(const struct dd_id *id)
{
	size_t lo = 0, hi = key_avoid.n;

	if (key_avoid_has(id))
		return 0;
	if (key_avoid.n >= KEY_AVOID_MAX)
		return -ENOSPC;
	if (key_avoid.n == key_avoid.cap) {
		size_t cap = key_avoid.cap ? 2 * key_avoid.cap : 16;
		struct dd_id *v = realloc(key_avoid.ids, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		key_avoid.ids = v;
		key_avoid.cap = cap;
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (key_id_cmp(&key_avoid.ids[mid], id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	memmove(&key_avoid.ids[lo + 1], &key_avoid.ids[lo],
		(key_avoid.n - lo) * sizeof(*id));
	key_avoid.ids[lo] = *id;
	/* read without the lock by key_avoid_count */
	__atomic_store_n(&key_avoid.n, key_avoid.n + 1, __ATOMIC_RELEASE);
	return 1;
}

/* Parses the file's lines into the set; lines that are not an id (the
 * first, a torn one) are skipped, and said once. */
static void key_avoid_parse(const uint8_t *data, size_t len)
{
	size_t off = 0, bad = 0, over = 0;

	while (off < len) {
		const uint8_t *nl = memchr(data + off, '\n', len - off);
		size_t end = nl ? (size_t)(nl - data) : len;
		struct dd_id id;

		if (end - off == DD_ID_HEX_LEN &&
		    dd_hex_decode(id.b, sizeof(id.b), (const char *)data + off,
				  DD_ID_HEX_LEN) == 0) {
			if (key_avoid_insert(&id) < 0)
				over++;
		} else if (end > off && !(off == 0 && end - off ==
					  sizeof(KEY_AVOID_MAGIC) - 2 &&
					  memcmp(data, KEY_AVOID_MAGIC,
						 end - off) == 0)) {
			bad++;
		}
		off = end + 1;
	}
	if (bad)
		agent_warn("'%s': %zu line(s) that are not a chunk id skipped",
			   key_avoid.path, bad);
	if (over)
		agent_warn("'%s' names more than %u damaged chunks: %zu not "
			   "read", key_avoid.path, KEY_AVOID_MAX, over);
}

/* Reads the remembered ids of key k (a missing file: none). A file that
 * is not a regular file of ours, or too large, is a warning, neither
 * read nor written. */
static void key_avoid_load(const struct dd_crypt *k)
{
	char dir[PATH_MAX], fpr[DD_CRYPT_FPR_HEX_LEN + 1];
	uint8_t *data = NULL;
	struct stat st;
	size_t len = 0;
	int n, rc;

	if (agent_state_dir(dir, sizeof(dir)) < 0) {
		dd_error_clear();
		return;
	}
	dd_crypt_fingerprint(fpr, k);
	n = snprintf(key_avoid.path, sizeof(key_avoid.path),
		     "%s/damaged.%u.%s", dir, (unsigned)geteuid(), fpr);
	if (n < 0 || (size_t)n >= sizeof(key_avoid.path)) {
		key_avoid.path[0] = '\0';
		return;
	}
	if (lstat(key_avoid.path, &st) < 0 && errno == ENOENT)
		return;
	/* not a FIFO or a device to block on, nor a symlink to follow */
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    (uint64_t)st.st_size > KEY_AVOID_FILE_MAX ||
	    (rc = dd_read_file(key_avoid.path, KEY_AVOID_FILE_MAX, &data,
			       &len)) < 0) {
		agent_warn("'%s' is not a list of damaged chunks this agent "
			   "can use: not read, nothing added to it",
			   key_avoid.path);
		dd_error_clear();
		key_avoid.path[0] = '\0';
		return;
	}
	key_avoid_parse(data, len);
	free(data);
}

/* Appends id to the file (one write, see above). -errno. */
static int key_avoid_append(const struct dd_id *id)
{
	char line[DD_ID_HEX_LEN + 3 + sizeof(KEY_AVOID_MAGIC)], dir[PATH_MAX];
	char *slash;
	size_t n = 0;
	int fd, rc = 0;

	snprintf(dir, sizeof(dir), "%s", key_avoid.path);
	if ((slash = strrchr(dir, '/')))
		*slash = '\0';
	if ((rc = dd_mkdir_p(dir, 0700)) < 0)
		return rc;
	/* the creator writes the first line with its id, in one write */
	fd = open(key_avoid.path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL |
		  O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0) {
		memcpy(line, KEY_AVOID_MAGIC, sizeof(KEY_AVOID_MAGIC) - 1);
		n = sizeof(KEY_AVOID_MAGIC) - 1;
	} else if (errno == EEXIST) {
		fd = open(key_avoid.path, O_WRONLY | O_APPEND | O_NOFOLLOW |
			  O_NONBLOCK | O_CLOEXEC);
	}
	if (fd < 0)
		return -errno;
	line[n++] = '\n';
	dd_id_to_hex(line + n, id);
	n += DD_ID_HEX_LEN;
	line[n++] = '\n';
	if (write(fd, line, n) != (ssize_t)n || fsync(fd) < 0)
		rc = -EIO;
	close(fd);
	return rc;
}

/* A sealed chunk failed its check: remembered, in memory and in the
 * file, so that the next backup stores its bytes anew. Best effort: a
 * failure to write the file, or a full list, is a warning. */
static void key_avoid_note(const struct dd_id *id)
{
	int added;

	pthread_mutex_lock(&key_avoid.mu);
	added = key_avoid_insert(id);
	if (added == 1 && key_avoid.path[0] && key_avoid_append(id) < 0)
		agent_warn("cannot remember a damaged chunk in '%s': the next "
			   "backup may reference it again", key_avoid.path);
	else if (added < 0 && !key_avoid.full_said) {
		key_avoid.full_said = true;
		agent_warn("cannot remember more damaged chunks (%s): the next "
			   "backup may reference them again",
			   added == -ENOSPC ? "65,536 already" :
			   "out of memory");
	}
	pthread_mutex_unlock(&key_avoid.mu);
}

size_t key_avoid_count(void)
{
	return __atomic_load_n(&key_avoid.n, __ATOMIC_ACQUIRE);
}

bool key_avoided(const struct dd_id *id)
{
	bool has;

	pthread_mutex_lock(&key_avoid.mu);
	has = key_avoid_has(id);
	pthread_mutex_unlock(&key_avoid.mu);
	return has;
}

/* A keyed id as the backup uses it: the first of the id and its
 * variants that is not remembered as damaged. -ENOSPC when all are. */
static int key_avoid_map(struct dd_id *id)
{
	struct dd_id base = *id;
	unsigned v = 0;

	pthread_mutex_lock(&key_avoid.mu);
	while (key_avoid_has(id) && v < KEY_VARIANTS) {
		*id = base;
		id->b[DD_ID_LEN - 1] ^= (uint8_t)++v;
	}
	v = key_avoid_has(id);
	pthread_mutex_unlock(&key_avoid.mu);
	return v ? -ENOSPC : 0;
}

/* Whether `want` is `got` or one of its variants. */
static bool key_id_or_variant(const struct dd_id *got, const struct dd_id *want)
{
	return memcmp(got->b, want->b, DD_ID_LEN - 1) == 0;
}

int key_load(const struct dd_crypt **out, const struct settings *s)
{
	int rc = 0;

	*out = NULL;
	if (!s->key_file)
		return 0;
	pthread_mutex_lock(&key_mu);
	if (key_cached && strcmp(key_cached_file, s->key_file) != 0)
		rc = dd_error_set(-EINVAL, "one process, one key file");
	if (rc == 0 && !key_cached) {
		rc = key_read_file(&key_cached, s->key_file,
				   s->passphrase_file);
		if (rc == 0)
			key_avoid_load(key_cached);
		if (rc == 0 && !(key_cached_file = strdup(s->key_file))) {
			dd_crypt_free(key_cached);
			key_cached = NULL;
			rc = dd_error_set(-ENOMEM, "out of memory");
		}
	}
	if (rc == 0)
		*out = key_cached;
	pthread_mutex_unlock(&key_mu);
	return rc;
}

/* ---- the pipeline's points ---- */

void key_chunk_id(const struct dd_crypt *k, struct dd_id *out,
		  const void *data, size_t len)
{
	if (k) {
		dd_crypt_id(k, out, data, len);
		/* every variant damaged (256 times the same bytes: the
		 * repository or this machine is failing): said, and the
		 * backup goes on, as it did before variants */
		if (key_avoid_count() && key_avoid_map(out) < 0)
			agent_warn("chunk of %zu bytes: it and all its variants "
				   "were found damaged; check the repository "
				   "and this machine's memory", len);
	} else {
		dd_sha256(out, data, len);
	}
}

void key_chunk_ids(const struct dd_crypt *k, const struct dd_sha256_job *jobs,
		   size_t n)
{
	if (!k) {
		dd_sha256_batch(jobs, n);
		return;
	}
	for (size_t i = 0; i < n; i++)
		key_chunk_id(k, jobs[i].out, jobs[i].data, jobs[i].len);
}

int key_seal_chunk(const struct dd_crypt *k, struct dd_buf *out,
		   const struct dd_id *id, uint32_t flags, uint32_t plain_len,
		   const void *stored, size_t stored_len)
{
	uint8_t ad[DD_CRYPT_CHUNK_AD_LEN];
	int rc;

	dd_crypt_chunk_ad(ad, id, flags, plain_len);
	rc = dd_crypt_seal(k, out, ad, sizeof(ad), stored, stored_len);
	return rc < 0 ? rc : (int)(flags | DD_COMP_SEALED);
}

static int key_bad_chunk(const struct dd_id *id, const char *why)
{
	char hex[DD_ID_HEX_LEN + 1];

	dd_id_to_hex(hex, id);
	return dd_error_set(-EBADMSG, "chunk %s is corrupt: %s", hex, why);
}

int key_decode_chunk(const struct dd_crypt *k, void *dst,
		     const struct dd_id *id, uint32_t flags,
		     const void *stored, size_t stored_len,
		     uint32_t plain_len, struct dd_buf *tmp, void *dctx)
{
	uint8_t ad[DD_CRYPT_CHUNK_AD_LEN];
	uint32_t inner = flags & ~DD_COMP_SEALED;
	struct dd_id got;

	if (!(flags & DD_COMP_SEALED)) {
		if (dd_decompress_to(dst, flags, stored, stored_len, plain_len,
				     dctx) < 0)
			return key_bad_chunk(id, dd_error_last());
		if (dd_id_verify(id, dst, plain_len) < 0)
			return key_bad_chunk(id, "its bytes do not match its id");
		return 0;
	}
	if (!k)
		return key_bad_chunk(id, "it is sealed (client-side encrypted) "
				     "and no key_file is configured");
	dd_crypt_chunk_ad(ad, id, inner, plain_len);
	if (dd_crypt_open(k, tmp, ad, sizeof(ad), stored, stored_len) < 0) {
		key_avoid_note(id);
		return key_bad_chunk(id, "it does not authenticate under this "
				     "key (damaged, or sealed with another key)");
	}
	if (dd_decompress_to(dst, inner, tmp->data, tmp->len, plain_len,
			     dctx) < 0) {
		key_avoid_note(id);
		return key_bad_chunk(id, dd_error_last());
	}
	dd_crypt_id(k, &got, dst, plain_len);
	if (!key_id_or_variant(&got, id)) {
		key_avoid_note(id);
		return key_bad_chunk(id, "its bytes do not match its keyed id");
	}
	return 0;
}

/* ---- sealed manifests ---- */

/*
 * The associated data that binds a sealed part to its manifest: the
 * label, the snapshot's start time and the reference list's chunk ids, as
 * the server keeps them in the clear. A server that moves a sealed part
 * to another snapshot's manifest makes it fail to open.
 */
static int key_manifest_ad(struct dd_buf *ad, const json_t *refs,
			   json_int_t time_start)
{
	char line[DD_ID_HEX_LEN + 32];
	const json_t *v;
	size_t i;
	int n;

	if (!json_is_array(refs))
		return dd_error_set(-EBADMSG, "the manifest has no catalog");
	n = snprintf(line, sizeof(line), "%s\n%lld\n", KEY_MANIFEST_AD,
		     (long long)time_start);
	if (dd_buf_append(ad, line, (size_t)n) < 0)
		return dd_error_set(-ENOMEM, "out of memory");
	json_array_foreach(refs, i, v) {
		const char *hex = json_string_value(v);

		if (!hex || strlen(hex) != DD_ID_HEX_LEN)
			return dd_error_set(-EBADMSG, "the manifest's catalog "
					    "is malformed");
		if (dd_buf_append(ad, hex, DD_ID_HEX_LEN) < 0 ||
		    dd_buf_append(ad, "\n", 1) < 0)
			return dd_error_set(-ENOMEM, "out of memory");
	}
	return 0;
}

int key_manifest_seal(const struct dd_crypt *k, json_t *req,
		      const json_t *refs)
{
	json_t *inner = json_pack("{s:O, s:O, s:O}",
				  "host", json_object_get(req, "host"),
				  "paths", json_object_get(req, "paths"),
				  "catalog", json_object_get(req, "catalog"));
	struct dd_buf sealed, ad;
	char *text = NULL, *hex = NULL;
	int rc = -ENOMEM;

	dd_buf_init(&sealed, 0);
	dd_buf_init(&ad, 0);
	if (!inner || !(text = json_dumps(inner, JSON_COMPACT)))
		goto cleanup;
	rc = key_manifest_ad(&ad, refs, json_integer_value(
				     json_object_get(req, "time_start")));
	if (rc < 0)
		goto cleanup;
	rc = dd_crypt_seal(k, &sealed, ad.data, ad.len, text, strlen(text));
	if (rc < 0)
		goto cleanup;
	rc = -ENOMEM;
	if (!(hex = malloc(2 * sealed.len + 1)))
		goto cleanup;
	dd_hex_encode(hex, sealed.data, sealed.len);
	if (json_object_set_new(req, "sealed", json_string(hex)) == 0)
		rc = 0;
cleanup:
	if (rc == -ENOMEM)
		dd_error_set(rc, "out of memory");
	json_decref(inner);
	free(text);
	free(hex);
	dd_buf_release(&sealed);
	dd_buf_release(&ad);
	return rc;
}

void key_allow_plain(bool allow)
{
	key_plain_allowed = allow;
}

int key_manifest_open(const struct dd_crypt *k, const json_t *manifest,
		      json_t **out)
{
	const json_t *v = json_object_get(manifest, "sealed");
	const char *hex = json_string_value(v);
	size_t n = json_string_length(v);
	struct dd_buf plain, ad;
	uint8_t *raw;
	int rc;

	*out = NULL;
	if (!v && k && !key_plain_allowed)
		return dd_error_set(-EPERM, "the snapshot is not encrypted, but "
				    "a key is configured: a server could have "
				    "put it in place of an encrypted one; if it "
				    "was made without the key, give "
				    "--allow-plain");
	if (!v)
		return 0;
	if (!k)
		return dd_error_set(-EACCES, "the snapshot is encrypted; "
				    "configure its key (key_file)");
	if (!hex || n % 2 || !(raw = malloc(n / 2 + 1)))
		return dd_error_set(-EBADMSG, "the manifest's sealed part is "
				    "malformed");
	if (dd_hex_decode(raw, n / 2, hex, n) < 0) {
		free(raw);
		return dd_error_set(-EBADMSG, "the manifest's sealed part is "
				    "malformed");
	}
	dd_buf_init(&plain, 0);
	dd_buf_init(&ad, 0);
	rc = key_manifest_ad(&ad, json_object_get(manifest, "catalog"),
			     json_integer_value(json_object_get(manifest,
								"unix_time")));
	if (rc == 0)
		rc = dd_crypt_open(k, &plain, ad.data, ad.len, raw, n / 2);
	free(raw);
	dd_buf_release(&ad);
	if (rc < 0) {
		dd_buf_release(&plain);
		return dd_error_set(-EBADMSG, "the snapshot's sealed manifest "
				    "does not open with this key (another key, "
				    "or damaged)");
	}
	*out = json_loadb((const char *)plain.data, plain.len, 0, NULL);
	dd_buf_release(&plain);
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return dd_error_set(-EBADMSG, "the snapshot's sealed manifest "
				    "is not JSON");
	}
	return 0;
}

int key_pseudonym(const struct dd_crypt *k, char *out, size_t outsz,
		  bool path, const char *value)
{
	struct dd_buf in;
	struct dd_id mac;
	char hex[DD_ID_HEX_LEN + 1];
	const char *label = path ? "dedup pseudonym path:" :
				   "dedup pseudonym host:";

	dd_buf_init(&in, 0);
	if (dd_buf_append(&in, label, strlen(label)) < 0 ||
	    dd_buf_append(&in, value, strlen(value)) < 0) {
		dd_buf_release(&in);
		return dd_error_set(-ENOMEM, "out of memory");
	}
	dd_crypt_id(k, &mac, in.data, in.len);
	dd_buf_release(&in);
	dd_id_to_hex(hex, &mac);
	snprintf(out, outsz, "%s%.32s", path ? "/encrypted/" : "encrypted-",
		 hex);
	return 0;
}

/* ---- dedup-agent key ---- */

static const char key_warning[] =
	"the key file and its passphrase are the only way to read the backups "
	"made with it:\nlost key = lost data. Keep a copy elsewhere "
	"(dedup-agent key export).";

/* A new passphrase, asked twice on a terminal. */
static int key_new_passphrase(char *out, size_t outsz, const char *file,
			      const char *env_name)
{
	char again[KEY_PASS_MAX];
	int rc;

	if (file || (getenv(env_name) && *getenv(env_name)))
		return key_passphrase(out, outsz, file, env_name, "");
	rc = key_pass_from_tty(out, outsz, "new passphrase: ");
	if (rc == 0)
		rc = key_pass_from_tty(again, sizeof(again),
				       "the same passphrase again: ");
	if (rc == 0 && strcmp(out, again) != 0)
		rc = dd_error_set(-EINVAL, "the passphrases differ");
	OPENSSL_cleanse(again, sizeof(again));
	return rc;
}

/* Wraps k for a new passphrase and writes it to `file` (0600), never over
 * an existing file. */
static int key_write(const struct dd_crypt *k, const char *file,
		     const char *pass_file, const char *env_name)
{
	char pass[KEY_PASS_MAX];
	struct dd_buf out;
	struct stat st;
	int rc;

	if (stat(file, &st) == 0)
		return dd_error_set(-EEXIST, "'%s' exists; not overwritten", file);
	rc = key_new_passphrase(pass, sizeof(pass), pass_file, env_name);
	dd_buf_init(&out, 0);
	if (rc == 0)
		rc = dd_crypt_wrap(&out, k, pass, strlen(pass),
				   DD_CRYPT_SCRYPT_LOG_N, DD_CRYPT_SCRYPT_R,
				   DD_CRYPT_SCRYPT_P);
	OPENSSL_cleanse(pass, sizeof(pass));
	/* the check above is for an early error; this one is the
	 * guarantee (a key made at that path meanwhile stays) */
	if (rc == 0)
		rc = dd_write_file_new(file, out.data, out.len, 0600);
	dd_buf_release(&out);
	return rc;
}

static void key_print_fingerprint(const struct dd_crypt *k)
{
	char fpr[DD_CRYPT_FPR_HEX_LEN + 1];

	dd_crypt_fingerprint(fpr, k);
	printf("%s\n", fpr);
}

struct key_opts {
	const char *file;         /* --key-file (verb or global) */
	const char *io;           /* --output / --input */
	const char *new_pass;     /* --new-passphrase-file */
};

static int key_init(const struct key_opts *o, const struct settings *s)
{
	struct dd_crypt *k;
	int rc;

	if ((rc = dd_crypt_generate(&k)) < 0)
		return rc;
	fprintf(stderr, "warning: %s\n", key_warning);
	rc = key_write(k, o->file, o->new_pass ? o->new_pass :
		       s->passphrase_file, o->new_pass ?
		       "DEDUP_NEW_PASSPHRASE" : "DEDUP_PASSPHRASE");
	if (rc == 0)
		key_print_fingerprint(k);
	dd_crypt_free(k);
	return rc;
}

/* export: the key under its (or a new) passphrase into --output;
 * import: --input's key into the key file. Either way the passphrase
 * read is the one the source file has. */
static int key_copy(const struct key_opts *o, const struct settings *s,
		    bool export)
{
	const char *from = export ? o->file : o->io;
	const char *to = export ? o->io : o->file;
	struct dd_crypt *k;
	int rc;

	if ((rc = key_read_file(&k, from, s->passphrase_file)) < 0)
		return rc;
	if (o->new_pass)
		rc = key_write(k, to, o->new_pass, "DEDUP_NEW_PASSPHRASE");
	else if (getenv("DEDUP_NEW_PASSPHRASE") && *getenv("DEDUP_NEW_PASSPHRASE"))
		rc = key_write(k, to, NULL, "DEDUP_NEW_PASSPHRASE");
	else
		rc = key_write(k, to, s->passphrase_file, "DEDUP_PASSPHRASE");
	if (rc == 0)
		key_print_fingerprint(k);
	dd_crypt_free(k);
	return rc;
}

static int key_show(const struct key_opts *o, const struct settings *s)
{
	struct dd_crypt *k;
	int rc = key_read_file(&k, o->file, s->passphrase_file);

	if (rc == 0)
		key_print_fingerprint(k);
	dd_crypt_free(k);
	return rc;
}

static int key_parse(int argc, char **argv, const struct agent_verb *self,
		     struct key_opts *o)
{
	static const struct option opts[] = {
		{ "key-file", required_argument, NULL, 'k' },
		{ "output", required_argument, NULL, 'o' },
		{ "input", required_argument, NULL, 'i' },
		{ "new-passphrase-file", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":ho:i:", opts, NULL)) != -1) {
		switch (opt) {
		case 'k':
			o->file = optarg;
			break;
		case 'o':
			o->io = optarg;
			break;
		case 'i':
			o->io = optarg;
			break;
		case 'n':
			o->new_pass = optarg;
			break;
		case 'h':
			return agent_usage_help(self);
		case ':':
			return agent_usage_error(self, "option '%s' needs a value",
						 argv[optind - 1]);
		default:
			return agent_usage_error(self, "unknown option '%s'",
						 argv[optind - 1]);
		}
	}
	return -1;
}

int cmd_key(int argc, char **argv, const struct agent_globals *g,
	    const struct agent_verb *self)
{
	struct key_opts o = { 0 };
	struct settings s = { 0 };
	const char *sub;
	int rc;

	if ((rc = key_parse(argc, argv, self, &o)) >= 0)
		return rc;
	if (optind != argc - 1)
		return agent_usage_error(self, "give one of init, show, export, "
					 "import");
	sub = argv[optind];
	if ((rc = settings_load_key(&s, &g->src)) < 0)
		return rc;
	if (!o.file)
		o.file = s.key_file;
	if (!o.file) {
		rc = agent_usage_error(self, "no key file: --key-file, "
				       "DEDUP_KEY_FILE or key_file = in the "
				       "config");
	} else if (strcmp(sub, "init") == 0) {
		rc = key_init(&o, &s);
	} else if (strcmp(sub, "show") == 0) {
		rc = key_show(&o, &s);
	} else if (strcmp(sub, "export") == 0 || strcmp(sub, "import") == 0) {
		if (!o.io)
			rc = agent_usage_error(self, "%s needs %s FILE", sub,
					       sub[0] == 'e' ? "--output" :
					       "--input");
		else
			rc = key_copy(&o, &s, sub[0] == 'e');
	} else {
		rc = agent_usage_error(self, "unknown key command '%s'", sub);
	}
	settings_release(&s);
	return rc;
}
