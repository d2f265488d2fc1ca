/*
 * syncwire.c - checks of what a sync source sends (syncwire.h).
 */
#define _GNU_SOURCE    /* strptime */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "compress.h"
#include "syncwire.h"

/* One record: the id asked for, bytes that hash to it. A sealed record
 * (an encrypted client's, docs/ENCRYPTION.md) cannot be re-hashed here,
 * as on upload: only its layout is checked; the agent that holds the key
 * verifies it on restore. */
static int syncwire_check_record(const struct dd_bundle_record *rec,
				 const struct dd_id *want, bool sealed_ok,
				 struct dd_buf *plain, void *dctx)
{
	char hex[DD_ID_HEX_LEN + 1], got[DD_ID_HEX_LEN + 1];
	int rc;

	dd_id_to_hex(hex, want);
	if (!dd_id_eq(&rec->id, want)) {
		dd_id_to_hex(got, &rec->id);
		return dd_error_set(-EBADMSG, "chunk %s: the source sent chunk "
				    "%s in its place", hex, got);
	}
	if ((rec->flags & DD_COMP_SEALED) && !sealed_ok)
		return dd_error_set(-EBADMSG, "chunk %s: the source sent it "
				    "sealed (client-side encrypted), where "
				    "only a plain chunk can be", hex);
	if (rec->flags & DD_COMP_SEALED) {
		char why[160];

		if (dd_stored_len_check(rec->flags, rec->plain_len,
					rec->stored_len) == 0)
			return 0;
		snprintf(why, sizeof(why), "%s", dd_error_last());
		return dd_error_set(-EBADMSG, "sealed chunk %s from the source "
				    "%s", hex, why);
	}
	dd_error_clear();
	rc = dd_decompress(plain, rec->flags, rec->data, rec->stored_len,
			   rec->plain_len, dctx);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0)
		return dd_error_set(-EBADMSG, "chunk %s from the source does "
				    "not decompress", hex);
	if (dd_id_verify(want, plain->data, plain->len) < 0)
		return dd_error_set(-EBADMSG, "chunk %s from the source is "
				    "damaged: its bytes do not hash to its id",
				    hex);
	return 0;
}

int syncwire_check_bundle(const void *body, size_t len,
			  const struct dd_id *want, size_t n, bool sealed_ok,
			  struct dd_bundle_record *recs, size_t *bad,
			  struct dd_buf *plain, void *dctx)
{
	struct dd_bundle_reader r;
	struct dd_bundle_record extra;
	size_t i;
	int rc;

	*bad = n;
	rc = dd_bundle_reader_init(&r, body, len);
	if (rc < 0)
		return dd_error_set(-EBADMSG, "the source sent an invalid "
				    "chunk bundle");
	if (r.count != n)
		return dd_error_set(-EBADMSG, "the source sent %u chunks for "
				    "%zu asked for", r.count, n);
	for (i = 0; i < n; i++) {
		rc = dd_bundle_next(&r, &recs[i]);
		if (rc <= 0)
			return dd_error_set(-EBADMSG, "the source sent an "
					    "invalid chunk bundle (record "
					    "%zu)", i);
		rc = syncwire_check_record(&recs[i], &want[i], sealed_ok,
					   plain, dctx);
		if (rc < 0) {
			*bad = i;
			return rc;
		}
	}
	if (dd_bundle_next(&r, &extra) != 0)
		return dd_error_set(-EBADMSG, "the source sent an invalid "
				    "chunk bundle (trailing bytes)");
	return 0;
}

static bool syncwire_hex64(const char *s)
{
	return strlen(s) == DD_ID_HEX_LEN && dd_hex_lower(s, DD_ID_HEX_LEN);
}

int syncwire_item_parse(json_t *item, bool (*valid_name)(const char *),
			struct syncwire_item *out)
{
	json_t *id = json_object_get(item, "id");
	json_t *client = json_object_get(item, "client");
	json_t *cursor = json_object_get(item, "cursor");
	json_t *written = json_object_get(item, "unix_written");

	memset(out, 0, sizeof(*out));
	if (!json_is_string(id) || !syncwire_hex64(json_string_value(id)))
		return dd_error_set(-EBADMSG, "the source listed a snapshot "
				    "without a valid id");
	snprintf(out->id, sizeof(out->id), "%s", json_string_value(id));
	if (!json_is_string(client) || !valid_name(json_string_value(client)))
		return dd_error_set(-EBADMSG, "the source listed snapshot %s "
				    "without a valid client name", out->id);
	snprintf(out->client, sizeof(out->client), "%s",
		 json_string_value(client));
	if (!json_is_string(cursor) || json_string_length(cursor) < 1 ||
	    json_string_length(cursor) >= sizeof(out->cursor) ||
	    strspn(json_string_value(cursor), "0123456789abcdefghijklmnopqrstu"
		   "vwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_.") !=
	    json_string_length(cursor))
		return dd_error_set(-EBADMSG, "the source listed snapshot %s "
				    "without a valid cursor", out->id);
	snprintf(out->cursor, sizeof(out->cursor), "%s",
		 json_string_value(cursor));
	if (!json_is_integer(written) || json_integer_value(written) < 0)
		return dd_error_set(-EBADMSG, "the source listed snapshot %s "
				    "without a valid unix_written", out->id);
	out->unix_written = (int64_t)json_integer_value(written);
	out->damaged = json_is_true(json_object_get(item, "damaged"));
	return 0;
}

/* "N" + unit: an age in seconds. */
static int syncwire_parse_age(const char *s, uint64_t *out)
{
	char num[24];
	size_t n = strlen(s);
	uint64_t mult, x;

	if (n < 2 || n > sizeof(num))
		return -EINVAL;
	switch (s[n - 1]) {
	case 's': mult = 1; break;
	case 'm': mult = 60; break;
	case 'h': mult = 3600; break;
	case 'd': mult = 86400; break;
	default: return -EINVAL;
	}
	memcpy(num, s, n - 1);
	num[n - 1] = '\0';
	if (dd_parse_u64(num, &x) < 0 || x > 100ull * 366 * 86400 / mult)
		return -EINVAL;
	*out = x * mult;
	return 0;
}

int syncwire_parse_since(const char *s, int64_t now, int64_t *out)
{
	struct tm tm;
	const char *end;
	uint64_t age;

	if (syncwire_parse_age(s, &age) == 0) {
		*out = now - (int64_t)age;
		return 0;
	}
	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%d", &tm);
	if (end && *end == 'T')
		end = strptime(end, "T%H:%M:%SZ", &tm);
	if (!end || *end || tm.tm_year < 70)
		return dd_error_set(-EINVAL, "invalid date '%s' (want "
				    "YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or an "
				    "age such as 7d)", s);
	*out = (int64_t)timegm(&tm);
	return 0;
}
