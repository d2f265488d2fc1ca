/*
 * notify.c - stale and failed backups, told by a command or e-mail
 * (notify.h).
 */
#define _GNU_SOURCE    /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"
#include "notify.h"
#include "proto.h"
#include "repo.h"
#include "snapshots.h"
#include "tokens.h"
#include "util.h"

#define NOTIFY_FILE "notify.json"
#define NOTIFY_FILE_MAX (4u * 1024 * 1024)
#define NOTIFY_MSG_MAX 2048
/* Hooks running at once; more events wait for the next evaluation. */
#define NOTIFY_CHILDREN_MAX 16

extern char **environ;

struct notify_client {
	char name[DD_CLIENT_NAME_MAX + 1];
	enum notify_state state;    /* as last sent */
	int64_t since;              /* when it entered that state */
	int64_t sent;               /* when it was last told; 0: never */
	bool seen;                  /* in this evaluation */
	bool never;                 /* no snapshot at all (this evaluation) */
};

struct notify_child {
	pid_t pid;
	int64_t deadline;
	char what[96];
};

struct notify {
	char path[4200];
	char repo[4096];
	struct notify_opts o;
	int64_t next_eval;
	struct notify_client *v;
	size_t n;
	struct notify_child kids[NOTIFY_CHILDREN_MAX];
	size_t nkids;
	pthread_mutex_t lock;       /* counts */
	struct notify_counts counts;
};

static const char *const notify_names[] = {
	[NOTIFY_NONE] = "none", [NOTIFY_OK] = "ok",
	[NOTIFY_STALE] = "stale", [NOTIFY_FAILED] = "failed",
};

enum notify_state notify_state_of(bool admin, uint64_t snapshots,
				  int64_t last_written,
				  const struct sessions_result *res,
				  int64_t now, unsigned stale_after)
{
	if (res && !res->ok && (!snapshots || res->time >= last_written))
		return NOTIFY_FAILED;
	if (!snapshots)
		return admin ? NOTIFY_NONE : NOTIFY_STALE;
	return now - last_written > (int64_t)stale_after ? NOTIFY_STALE
							 : NOTIFY_OK;
}

static enum notify_state notify_parse_state(const char *s)
{
	size_t i;

	for (i = 0; s && i < DD_ARRAY_SIZE(notify_names); i++)
		if (strcmp(s, notify_names[i]) == 0)
			return (enum notify_state)i;
	return NOTIFY_OK;
}

/* ---- notify.json ---- */

static struct notify_client *notify_find(struct notify *n, const char *name,
					 bool add)
{
	struct notify_client *v;
	size_t i;

	for (i = 0; i < n->n; i++)
		if (strcmp(n->v[i].name, name) == 0)
			return &n->v[i];
	if (!add || !tokens_name_valid(name))
		return NULL;
	v = realloc(n->v, (n->n + 1) * sizeof(*v));
	if (!v)
		return NULL;
	n->v = v;
	memset(&v[n->n], 0, sizeof(v[n->n]));
	snprintf(v[n->n].name, sizeof(v[n->n].name), "%s", name);
	v[n->n].state = NOTIFY_OK;
	return &v[n->n++];
}

static int notify_load(struct notify *n)
{
	uint8_t *data = NULL;
	json_t *root, *clients, *o;
	const char *name;
	size_t len;
	int rc;

	rc = dd_read_file(n->path, NOTIFY_FILE_MAX, &data, &len);
	if (rc == -ENOENT) {
		dd_error_clear();
		return 0;
	}
	if (rc < 0)
		return rc;
	root = json_loadb((const char *)data, len, 0, NULL);
	free(data);
	clients = json_object_get(root, "clients");
	if (!json_is_object(clients)) {
		log_warning("%s is not valid: starting afresh", n->path);
		json_decref(root);
		return 0;
	}
	json_object_foreach(clients, name, o) {
		struct notify_client *c = notify_find(n, name, true);

		if (!c)
			continue;
		c->state = notify_parse_state(json_string_value(
			json_object_get(o, "state")));
		c->since = json_integer_value(json_object_get(o, "since"));
		c->sent = json_integer_value(json_object_get(o, "sent"));
	}
	json_decref(root);
	return 0;
}

static int notify_save(struct notify *n)
{
	json_t *root, *clients;
	char *text;
	size_t i;
	int rc;

	clients = json_object();
	for (i = 0; clients && i < n->n; i++)
		json_object_set_new(clients, n->v[i].name, json_pack(
			"{s:s, s:I, s:I}", "state",
			notify_names[n->v[i].state], "since",
			(json_int_t)n->v[i].since, "sent",
			(json_int_t)n->v[i].sent));
	root = json_pack("{s:i, s:o}", "version", 1, "clients", clients);
	text = root ? json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
	json_decref(root);
	if (!text)
		return -ENOMEM;
	rc = dd_write_file_atomic(n->path, text, strlen(text), 0600);
	free(text);
	return rc;
}

/* ---- hooks ---- */

static void notify_count(struct notify *n, enum notify_state ev, bool fail)
{
	pthread_mutex_lock(&n->lock);
	if (fail)
		n->counts.hook_failures++;
	else
		n->counts.events[ev]++;
	pthread_mutex_unlock(&n->lock);
}

/* Starts argv with the message on its stdin and env added; the child
 * gets an empty signal mask (the server blocks the ones it waits for). */
static int notify_spawn(struct notify *n, char *const argv[],
			char *const env[], const char *msg, const char *what)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none;
	int fds[2], rc;
	pid_t pid;
	ssize_t w;

	if (n->nkids == NOTIFY_CHILDREN_MAX)
		return dd_error_set(-EAGAIN, "%d hooks still running",
				    NOTIFY_CHILDREN_MAX);
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	sigemptyset(&none);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
	posix_spawnattr_init(&at);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
	rc = posix_spawn(&pid, argv[0], &fa, &at, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(fds[0]);
	if (rc != 0) {
		close(fds[1]);
		return dd_error_set(-rc, "cannot run %s: %s", argv[0],
				    strerror(rc));
	}
	/* Far below a pipe's buffer: never blocks. */
	w = write(fds[1], msg, strlen(msg));
	(void)w;
	close(fds[1]);
	n->kids[n->nkids].pid = pid;
	n->kids[n->nkids].deadline = dd_now() + n->o.timeout;
	snprintf(n->kids[n->nkids].what, sizeof(n->kids[n->nkids].what),
		 "%s", what);
	n->nkids++;
	return 0;
}

/* Reaps the hooks that ended; kills those past their deadline (all of
 * them with kill_all). A failure is counted and logged. */
static void notify_reap(struct notify *n, bool kill_all)
{
	size_t i = 0;
	int status = 0;

	while (i < n->nkids) {
		struct notify_child *k = &n->kids[i];
		pid_t r = waitpid(k->pid, &status, WNOHANG);
		bool failed;

		if (r == 0 && (kill_all || dd_now() > k->deadline)) {
			log_warning("notification hook %s ran past %u s: "
				    "killed", k->what, n->o.timeout);
			kill(k->pid, SIGKILL);
			r = waitpid(k->pid, &status, 0);
			status = SIGKILL;   /* counted as failed below */
		}
		if (r == 0) {
			i++;
			continue;
		}
		failed = r < 0 || status != 0;
		if (failed && r > 0 && WIFEXITED(status))
			log_warning("notification hook %s failed (exit "
				    "status %d)", k->what,
				    WEXITSTATUS(status));
		if (failed)
			notify_count(n, NOTIFY_NONE, true);
		n->kids[i] = n->kids[--n->nkids];
	}
}

static const char *notify_event_name(enum notify_state s)
{
	return s == NOTIFY_OK ? "recovered" : notify_names[s];
}

static void notify_message(char *out, size_t outsz, const struct notify *n,
			   const struct notify_client *c, const char *detail,
			   int64_t now)
{
	char since[32];

	dd_format_time(since, c->since);
	switch (c->state) {
	case NOTIFY_STALE:
		if (!c->never)
			snprintf(out, outsz, "dedup: client %s has no good "
				 "backup for %lld hours (since %s)\n\n%s\n",
				 c->name, (long long)((now - c->since) / 3600),
				 since, detail);
		else
			snprintf(out, outsz, "dedup: client %s has never "
				 "backed up\n\n%s\n", c->name, detail);
		break;
	case NOTIFY_FAILED:
		snprintf(out, outsz, "dedup: the last backup of client %s "
			 "failed\n\n%s\n", c->name, detail);
		break;
	default:
		snprintf(out, outsz, "dedup: client %s backs up again\n\n%s\n",
			 c->name, detail);
	}
	(void)n;
}

/* Runs every hook for client c's current state. */
static void notify_send(struct notify *n, const struct notify_client *c,
			const char *detail, int64_t now)
{
	const char *ev = notify_event_name(c->state);
	char msg[NOTIFY_MSG_MAX], subject[256], mail[NOTIFY_MSG_MAX + 512];
	char e_ev[64], e_cl[96], e_det[600], e_since[48], e_repo[4200];
	char *env[] = { e_ev, e_cl, e_det, e_since, e_repo, "PATH=/usr/"
			"local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:"
			"/bin", NULL };
	char *nl;
	size_t len;
	int rc;

	notify_message(msg, sizeof(msg), n, c, detail, now);
	snprintf(e_ev, sizeof(e_ev), "DEDUP_EVENT=%s", ev);
	snprintf(e_cl, sizeof(e_cl), "DEDUP_CLIENT=%s", c->name);
	snprintf(e_det, sizeof(e_det), "DEDUP_DETAIL=%s", detail);
	snprintf(e_since, sizeof(e_since), "DEDUP_SINCE=%lld",
		 (long long)c->since);
	snprintf(e_repo, sizeof(e_repo), "DEDUP_REPO=%s", n->repo);
	notify_count(n, c->state, false);
	log_info("notification: client %s %s (%s)", c->name, ev, detail);
	if (n->o.command) {
		char *argv[] = { "/bin/sh", "-c", (char *)n->o.command, NULL };

		rc = notify_spawn(n, argv, env, msg, "notify_command");
		if (rc < 0) {
			log_warning("notify_command: %s", log_reason(rc));
			notify_count(n, NOTIFY_NONE, true);
		}
	}
	if (n->o.email) {
		char *argv[] = { (char *)n->o.sendmail, "-t", "-oi", NULL };

		nl = strchr(msg, '\n');
		len = nl ? (size_t)(nl - msg) : strlen(msg);
		if (len >= sizeof(subject))
			len = sizeof(subject) - 1;
		memcpy(subject, msg, len);
		subject[len] = '\0';
		snprintf(mail, sizeof(mail), "To: %s\nSubject: %s\n"
			 "Content-Type: text/plain; charset=utf-8\n\n%s",
			 n->o.email, subject, msg);
		rc = notify_spawn(n, argv, env, mail, "sendmail");
		if (rc < 0) {
			log_warning("notify_email: %s", log_reason(rc));
			notify_count(n, NOTIFY_NONE, true);
		}
	}
}

/* ---- evaluation ---- */

struct notify_sum {
	char name[DD_CLIENT_NAME_MAX + 1];
	uint64_t snapshots;
	int64_t last_written;
};

struct notify_sums {
	struct notify_sum *v;
	size_t n;
};

static int notify_sum_cb(void *payload, const struct snapshots_item *it)
{
	struct notify_sums *s = payload;
	struct notify_sum *v;
	size_t i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->v[i].name, it->client) == 0)
			break;
	if (i == s->n) {
		v = realloc(s->v, (s->n + 1) * sizeof(*v));
		if (!v)
			return -ENOMEM;
		s->v = v;
		memset(&v[i], 0, sizeof(v[i]));
		snprintf(v[i].name, sizeof(v[i].name), "%s", it->client);
		s->n++;
	}
	s->v[i].snapshots++;
	if (it->written_ns / 1000000000 > s->v[i].last_written)
		s->v[i].last_written = it->written_ns / 1000000000;
	return 0;
}

/* One client: its state now, and what to send. true if n changed. */
static bool notify_client_eval(struct notify *n, const struct tokens_client *tc,
			       const struct notify_sum *sum,
			       struct sessions *sessions, int64_t now)
{
	struct sessions_result res;
	bool have = sessions_last_result(sessions, tc->name, &res);
	enum notify_state st;
	struct notify_client *c;
	char detail[512];

	st = notify_state_of(tc->admin, sum ? sum->snapshots : 0,
			     sum ? sum->last_written : 0, have ? &res : NULL,
			     now, n->o.stale_after);
	if (st == NOTIFY_NONE)
		return false;
	c = notify_find(n, tc->name, true);
	if (!c)
		return false;
	c->seen = true;
	c->never = !sum || !sum->snapshots;
	/* Results are known only since this process started: a failure
	 * told before a restart stands until a backup succeeds. */
	if (c->state == NOTIFY_FAILED && st == NOTIFY_OK && !have)
		return false;
	if (st == NOTIFY_FAILED)
		snprintf(detail, sizeof(detail), "%s", res.error[0] ?
			 res.error : "the backup failed");
	else if (sum && sum->snapshots)
		snprintf(detail, sizeof(detail), "last snapshot written %lld "
			 "s ago", (long long)(now - sum->last_written));
	else
		snprintf(detail, sizeof(detail), "no snapshot yet");
	if (st != c->state) {
		c->state = st;
		c->since = st == NOTIFY_FAILED ? res.time : st == NOTIFY_STALE &&
			   sum && sum->snapshots ? sum->last_written : now;
		/* A client first seen OK has nothing to recover from. */
		if (st == NOTIFY_OK && !c->sent)
			return true;
		c->sent = now;
		notify_send(n, c, detail, now);
		return true;
	}
	if (st != NOTIFY_OK && n->o.repeat && now - c->sent >= n->o.repeat) {
		c->sent = now;
		notify_send(n, c, detail, now);
		return true;
	}
	return false;
}

static void notify_eval(struct notify *n, struct snapshots *snaps,
			struct sessions *sessions, struct tokens *tokens,
			int64_t now)
{
	struct notify_sums sums = { NULL, 0 };
	struct tokens_list tl;
	bool changed = false;
	size_t i, k;
	int rc;

	if (tokens_copy(tokens, &tl) < 0)
		return;
	rc = snapshots_foreach(snaps, notify_sum_cb, &sums);
	for (i = 0; i < n->n; i++)
		n->v[i].seen = false;
	for (i = 0; rc == 0 && i < tl.n; i++) {
		const struct notify_sum *sum = NULL;

		for (k = 0; k < sums.n; k++)
			if (strcmp(sums.v[k].name, tl.v[i].name) == 0)
				sum = &sums.v[k];
		changed |= notify_client_eval(n, &tl.v[i], sum, sessions, now);
	}
	/* Revoked clients are forgotten. */
	for (i = 0; rc == 0 && i < n->n;) {
		if (n->v[i].seen) {
			i++;
			continue;
		}
		n->v[i] = n->v[--n->n];
		changed = true;
	}
	if (changed && (rc = notify_save(n)) < 0)
		log_warning("cannot write %s: %s", n->path, log_reason(rc));
	free(sums.v);
	tokens_list_release(&tl);
}

void notify_tick(struct notify *n, struct snapshots *snaps,
		 struct sessions *sessions, struct tokens *tokens,
		 int64_t now)
{
	if (!n)
		return;
	notify_reap(n, false);
	if (now < n->next_eval)
		return;
	n->next_eval = now + n->o.interval;
	notify_eval(n, snaps, sessions, tokens, now);
}

int notify_new(struct notify **out, const char *repo,
	       const struct notify_opts *o)
{
	struct notify *n = calloc(1, sizeof(*n));
	int rc;

	*out = NULL;
	if (!n)
		return -ENOMEM;
	n->o = *o;
	if (!n->o.interval)
		n->o.interval = 60;
	if (!n->o.timeout)
		n->o.timeout = 30;
	pthread_mutex_init(&n->lock, NULL);
	snprintf(n->repo, sizeof(n->repo), "%s", repo);
	rc = repo_path(n->path, sizeof(n->path), repo, NOTIFY_FILE);
	if (rc == 0)
		rc = notify_load(n);
	if (rc < 0) {
		notify_free(n);
		return rc;
	}
	*out = n;
	return 0;
}

void notify_free(struct notify *n)
{
	int64_t until;

	if (!n)
		return;
	until = dd_now() + n->o.timeout;
	while (n->nkids && dd_now() <= until) {
		struct timespec ts = { 0, 50 * 1000 * 1000 };

		notify_reap(n, false);
		if (n->nkids)
			nanosleep(&ts, NULL);
	}
	notify_reap(n, true);
	pthread_mutex_destroy(&n->lock);
	free(n->v);
	free(n);
}

void notify_counts(struct notify *n, struct notify_counts *out)
{
	memset(out, 0, sizeof(*out));
	if (!n)
		return;
	pthread_mutex_lock(&n->lock);
	*out = n->counts;
	pthread_mutex_unlock(&n->lock);
}
