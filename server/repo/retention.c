/*
 * retention.c - see retention.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

#include "retention.h"
#include "util.h"

const char *const retention_keys[RETENTION_RULES] = {
	"keep_last", "keep_hourly", "keep_daily", "keep_weekly",
	"keep_monthly", "keep_yearly", "keep_within",
};

static const char *const retention_names[RETENTION_RULES] = {
	"last", "hourly", "daily", "weekly", "monthly", "yearly", "within",
};

bool retention_empty(const struct retention_policy *p)
{
	int i;

	for (i = 0; i < RETENTION_RULES; i++)
		if (p->v[i])
			return false;
	return true;
}

/* "30d" -> seconds; up to 1000 years. */
static int retention_parse_duration(const char *v, uint64_t *out)
{
	char num[24];
	size_t n = strlen(v);
	uint64_t mult, x;

	if (n < 2 || n > sizeof(num))
		return -EINVAL;
	switch (v[n - 1]) {
	case 's': mult = 1; break;
	case 'm': mult = 60; break;
	case 'h': mult = 3600; break;
	case 'd': mult = 86400; break;
	case 'w': mult = 7 * 86400; break;
	case 'y': mult = 365 * 86400; break;
	default: return -EINVAL;
	}
	memcpy(num, v, n - 1);
	num[n - 1] = '\0';
	if (dd_parse_u64(num, &x) < 0 || x > 1000ull * 365 * 86400 / mult)
		return -EINVAL;
	*out = x * mult;
	return 0;
}

int retention_set(struct retention_policy *p, const char *key,
		  const char *value, enum retention_rule *rule)
{
	char k[32];
	size_t i, n = strlen(key);
	uint64_t x;
	int r;

	if (n >= sizeof(k))
		return -ENOENT;
	for (i = 0; i <= n; i++)
		k[i] = key[i] == '-' ? '_' : key[i];
	for (r = 0; r < RETENTION_RULES; r++)
		if (strcmp(k, retention_keys[r]) == 0)
			break;
	if (r == RETENTION_RULES)
		return -ENOENT;
	if (r == RETENTION_WITHIN) {
		if (strcmp(value, "0") == 0)
			x = 0;
		else if (retention_parse_duration(value, &x) < 0)
			return dd_error_set(-EINVAL, "want a duration like "
					    "36h, 30d, 8w or 2y");
	} else if (dd_parse_u64(value, &x) < 0 || x > RETENTION_COUNT_MAX) {
		return dd_error_set(-EINVAL, "want a number from 0 to %u",
				    RETENTION_COUNT_MAX);
	}
	p->v[r] = x;
	if (rule)
		*rule = (enum retention_rule)r;
	return 0;
}

/* The bucket of time t for a calendar rule, in UTC. */
static int64_t retention_bucket(enum retention_rule r, int64_t t)
{
	struct tm tm;
	time_t tt = (time_t)t;
	char buf[16];

	switch (r) {
	case RETENTION_HOURLY:
		return t / 3600;
	case RETENTION_DAILY:
		return t / 86400;
	default:
		break;
	}
	gmtime_r(&tt, &tm);
	switch (r) {
	case RETENTION_WEEKLY:
		/* ISO 8601 week-based year and week. */
		strftime(buf, sizeof(buf), "%G%V", &tm);
		return (int64_t)strtoll(buf, NULL, 10);
	case RETENTION_MONTHLY:
		return (int64_t)tm.tm_year * 12 + tm.tm_mon;
	case RETENTION_YEARLY:
		return tm.tm_year;
	default:
		return 0;
	}
}

static void retention_why(struct retention_item *it, enum retention_rule r)
{
	size_t n = strlen(it->why);

	snprintf(it->why + n, sizeof(it->why) - n, "%s%s", n ? ", " : "",
		 retention_names[r]);
	it->keep = true;
}

void retention_apply(const struct retention_policy *p,
		     struct retention_item *v, size_t n)
{
	uint64_t left[RETENTION_RULES];
	int64_t last[RETENTION_RULES];
	bool have[RETENTION_RULES] = { false };
	size_t i;
	int r;

	for (i = 0; i < n; i++) {
		v[i].keep = retention_empty(p);
		snprintf(v[i].why, sizeof(v[i].why), "%s",
			 v[i].keep ? "no policy" : "");
	}
	if (retention_empty(p) || n == 0)
		return;
	memcpy(left, p->v, sizeof(left));
	for (i = 0; i < n; i++) {
		if (left[RETENTION_LAST]) {
			left[RETENTION_LAST]--;
			retention_why(&v[i], RETENTION_LAST);
		}
		for (r = RETENTION_HOURLY; r <= RETENTION_YEARLY; r++) {
			int64_t b;

			if (!left[r])
				continue;
			b = retention_bucket((enum retention_rule)r, v[i].time);
			if (have[r] && last[r] == b)
				continue;
			have[r] = true;
			last[r] = b;
			left[r]--;
			retention_why(&v[i], (enum retention_rule)r);
		}
		if (p->v[RETENTION_WITHIN] &&
		    v[0].time - v[i].time < (int64_t)p->v[RETENTION_WITHIN])
			retention_why(&v[i], RETENTION_WITHIN);
	}
}

void retention_format(char *out, size_t outsz,
		      const struct retention_policy *p)
{
	size_t n = 0;
	int r;

	out[0] = '\0';
	for (r = 0; r < RETENTION_RULES && n < outsz; r++) {
		if (!p->v[r])
			continue;
		if (r == RETENTION_WITHIN)
			n += (size_t)snprintf(out + n, outsz - n, "%s%s=%llus",
					      n ? " " : "", retention_keys[r],
					      (unsigned long long)p->v[r]);
		else
			n += (size_t)snprintf(out + n, outsz - n, "%s%s=%llu",
					      n ? " " : "", retention_keys[r],
					      (unsigned long long)p->v[r]);
	}
	if (!out[0])
		snprintf(out, outsz, "none");
}
