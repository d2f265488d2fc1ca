/*
 * agent.c - helpers every verb shares: usage, warnings, error context,
 * connecting.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "proto.h"
#include "util.h"
#include "agent.h"
#include "client.h"
#include "progress.h"

int agent_usage_error(const struct agent_verb *v, const char *fmt, ...)
{
	va_list ap;

	fputs("error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: dedup-agent [OPTIONS] %s\n", v->usage);
	return DD_EXIT_USAGE;
}

int agent_usage_help(const struct agent_verb *v)
{
	printf("usage: dedup-agent [OPTIONS] %s\n\n%s\n", v->usage, v->summary);
	return DD_EXIT_OK;
}

int agent_parse_json_only(int argc, char **argv, const struct agent_verb *self,
			  bool *as_json)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	*as_json = false;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			*as_json = true;
			break;
		case 'h':
			return agent_usage_help(self);
		default:
			return agent_usage_error(self, "unknown option '%s'",
						 argv[optind - 1]);
		}
	}
	if (optind < argc)
		return agent_usage_error(self, "unexpected argument '%s'",
					 argv[optind]);
	return -1;
}

int agent_connect(struct client **out, const struct agent_globals *g)
{
	struct settings s;
	int rc;

	*out = NULL;
	if ((rc = settings_load(&s, &g->src)) < 0)
		return rc;
	rc = client_new(out, &s);
	settings_release(&s);
	return rc;
}

void agent_warn(const char *fmt, ...)
{
	va_list ap;

	progress_interrupt();
	/* One line even when restore's writer threads warn at once. */
	flockfile(stderr);
	fputs("warning: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	funlockfile(stderr);
}

int agent_error_wrap(int code, const char *fmt, ...)
{
	char prev[1024], prefix[1024];
	va_list ap;

	snprintf(prev, sizeof(prev), "%s", dd_error_last());
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	return dd_error_set(code, "%s: %s", prefix, prev);
}

void agent_fmt_bytes(char out[32], uint64_t n)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB",
					     "EiB" };
	double v = (double)n;
	size_t u = 0;

	if (n < 1024) {
		snprintf(out, 32, "%llu B", (unsigned long long)n);
		return;
	}
	v /= 1024;
	while (v >= 1024 && u + 1 < DD_ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	snprintf(out, 32, "%.1f %s", v, units[u]);
}
