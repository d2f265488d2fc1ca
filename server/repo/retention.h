/*
 * retention.h - which snapshots a retention policy keeps, with restic's
 * rules: a snapshot is kept if any rule keeps it.
 *
 *   keep_last N     the N newest snapshots
 *   keep_hourly N   the newest snapshot of each of the N newest hours that
 *                   have one (likewise daily, weekly, monthly, yearly)
 *   keep_within D   every snapshot less than D older than the newest one
 *
 * Buckets are UTC (hours, days, ISO 8601 weeks, months, years) so a
 * decision does not depend on the server's time zone. A policy with no
 * rule keeps everything (nothing is ever removed by an empty policy).
 */
#ifndef SRV_RETENTION_H
#define SRV_RETENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RETENTION_COUNT_MAX 1000000u
#define RETENTION_WHY_MAX 64

enum retention_rule {
	RETENTION_LAST, RETENTION_HOURLY, RETENTION_DAILY, RETENTION_WEEKLY,
	RETENTION_MONTHLY, RETENTION_YEARLY, RETENTION_WITHIN,
	RETENTION_RULES
};

struct retention_policy {
	/* counts for the first six rules; seconds for RETENTION_WITHIN;
	 * 0: the rule is off */
	uint64_t v[RETENTION_RULES];
};

/* "keep_last", ... "keep_within". */
extern const char *const retention_keys[RETENTION_RULES];

bool retention_empty(const struct retention_policy *p);

/*
 * Sets one rule from a key ("keep_daily", or "keep-daily") and a value (a
 * count, or for keep_within a duration: a number with s, m, h, d, w or y,
 * m being minutes). -ENOENT for an unknown key, -EINVAL with a reason for
 * a bad value. *rule is the rule set.
 */
int retention_set(struct retention_policy *p, const char *key,
		  const char *value, enum retention_rule *rule);

/* One snapshot of a group; `keep` and `why` ("daily, weekly") are set by
 * retention_apply. */
struct retention_item {
	int64_t time;              /* unix seconds */
	bool keep;
	char why[RETENTION_WHY_MAX];
};

/* Decides for one group of snapshots, sorted newest first. */
void retention_apply(const struct retention_policy *p,
		     struct retention_item *v, size_t n);

/* The policy as text, "keep_daily=7 keep_within=30d", or "none". */
void retention_format(char *out, size_t outsz,
		      const struct retention_policy *p);

#endif
