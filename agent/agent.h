/*
 * agent.h - what every verb of dedup-agent shares: the verb signature, the
 * parsed global options, and small output helpers.
 *
 * A verb returns an exit code (DD_EXIT_* from proto.h, >= 0) or a negative
 * errno-style code after recording a reason with dd_error_set(); main()
 * then prints "error: <reason>" and exits with DD_EXIT_ERROR. Verbs print
 * warnings themselves (agent_warn) and keep going where the spec says so.
 */
#ifndef DD_AGENT_H
#define DD_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "settings.h"

struct client;

/* Global options, parsed by main() wherever they appear on the line. */
struct agent_globals {
	struct settings_source src;
	bool quiet;
};

/* One verb of the command table. */
struct agent_verb {
	const char *name;
	int (*run)(int argc, char **argv, const struct agent_globals *g,
		   const struct agent_verb *self);
	const char *usage;     /* "backup [--json] PATH..." */
	const char *summary;   /* the help text: its first line is listed
				* by `help`, all of it by `VERB --help` */
};

int cmd_backup(int argc, char **argv, const struct agent_globals *g,
	       const struct agent_verb *self);
int cmd_restore(int argc, char **argv, const struct agent_globals *g,
		const struct agent_verb *self);
int cmd_snapshots(int argc, char **argv, const struct agent_globals *g,
		  const struct agent_verb *self);
int cmd_ls(int argc, char **argv, const struct agent_globals *g,
	   const struct agent_verb *self);
/* mount.c: a snapshot as a read-only FUSE file system. */
int cmd_mount(int argc, char **argv, const struct agent_globals *g,
	      const struct agent_verb *self);
int cmd_verify(int argc, char **argv, const struct agent_globals *g,
	       const struct agent_verb *self);
int cmd_stats(int argc, char **argv, const struct agent_globals *g,
	      const struct agent_verb *self);
/* forget.c: admin only. */
int cmd_forget(int argc, char **argv, const struct agent_globals *g,
	       const struct agent_verb *self);
int cmd_gc(int argc, char **argv, const struct agent_globals *g,
	   const struct agent_verb *self);
/* key.c: client-side encryption keys (docs/ENCRYPTION.md). */
int cmd_key(int argc, char **argv, const struct agent_globals *g,
	    const struct agent_verb *self);

/* Prints "usage: dedup-agent <usage>" to stderr and returns DD_EXIT_USAGE. */
int agent_usage_error(const struct agent_verb *v, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Prints the verb's usage to stdout (for --help) and returns DD_EXIT_OK. */
int agent_usage_help(const struct agent_verb *v);

/* Options of a verb that takes only --json (and --help) and no argument:
 * -1 to go on (*as_json set), else the exit code to return. */
int agent_parse_json_only(int argc, char **argv, const struct agent_verb *self,
			  bool *as_json);

/* Loads the connection settings and opens a client; on failure the reason
 * is recorded and a negative code returned. The caller frees *out. */
int agent_connect(struct client **out, const struct agent_globals *g);

/* "warning: ..." on stderr. */
void agent_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Records "<prefix>: <previous reason>" keeping `code`; for adding context
 * to a lower layer's error without losing its message. */
int agent_error_wrap(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Human-readable byte count ("1.5 GiB", "512 B"). */
void agent_fmt_bytes(char out[32], uint64_t n);

#endif
