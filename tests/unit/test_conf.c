/* test_conf.c - `key = value` parsing: trimming, quotes, comments, errors
 * that name the file and line, the size cap, callback errors. */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "conf.h"
#include "unit.h"
#include "util.h"

struct pairs {
	int n;
	char text[1024];        /* "key=value@line;" ... */
	int fail_on;            /* line that returns -EINVAL; 0: none */
};

static int collect(void *payload, const char *key, const char *value,
		   unsigned line)
{
	struct pairs *p = payload;
	size_t used = strlen(p->text);

	if (p->fail_on && (int)line == p->fail_on)
		return dd_error_set(-EINVAL, "unknown key '%s'", key);
	snprintf(p->text + used, sizeof(p->text) - used, "%s=%s@%u;", key,
		 value, line);
	p->n++;
	return 0;
}

static int parse(const char *text, struct pairs *p)
{
	memset(p, 0, sizeof(*p));
	return dd_conf_parse_buf("test.conf", text, strlen(text), collect, p);
}

static void test_good(void)
{
	struct pairs p;

	CHECK_EQ(parse("", &p), 0);
	CHECK_EQ(p.n, 0);
	CHECK_EQ(parse("# only a comment\n\n   \n\t# indented comment\n", &p),
		 0);
	CHECK_EQ(p.n, 0);
	CHECK_EQ(parse("server = https://h:8443\n"
		       "  token=abc  \r\n"
		       "\n"
		       "ca = \"/etc/dedup/ca cert.pem\"\n"
		       "empty =\n"
		       "quoted_empty = \"\"\n"
		       "hash = a#b\n"
		       "eq = a=b=c\n"
		       "last = no newline", &p), 0);
	CHECK_EQ(p.n, 8);
	CHECK(strcmp(p.text, "server=https://h:8443@1;token=abc@2;"
		     "ca=/etc/dedup/ca cert.pem@4;empty=@5;quoted_empty=@6;"
		     "hash=a#b@7;eq=a=b=c@8;last=no newline@9;") == 0);
	CHECK_EQ(parse("a = \" spaced \"\n", &p), 0);
	CHECK(strcmp(p.text, "a= spaced @1;") == 0);
}

static void test_bad(void)
{
	struct pairs p;

	CHECK_EQ(parse("server = x\nbogus line\n", &p), -EBADMSG);
	CHECK(strcmp(dd_error_last(), "test.conf:2: expected 'key = value'")
	      == 0);
	CHECK_EQ(p.n, 1);
	CHECK_EQ(parse(" = value\n", &p), -EBADMSG);
	CHECK(strstr(dd_error_last(), "test.conf:1:") != NULL);
	CHECK_EQ(parse("a b = c\n", &p), -EBADMSG);
	CHECK_EQ(parse("a = \"open\n", &p), -EBADMSG);
	CHECK(strstr(dd_error_last(), "quote") != NULL);
	CHECK_EQ(parse("a = \"\n", &p), -EBADMSG);
	CHECK_EQ(dd_conf_parse_buf("nul.conf", "a = 1\nb = \0\n", 12, collect,
				   &p), -EBADMSG);
	CHECK(strstr(dd_error_last(), "nul.conf:2:") != NULL);

	/* the callback's error stops parsing and comes back unchanged */
	memset(&p, 0, sizeof(p));
	p.fail_on = 2;
	CHECK_EQ(dd_conf_parse_buf("x.conf", "a = 1\nbogus = 1\nc = 3\n", 22,
				   collect, &p), -EINVAL);
	CHECK_EQ(p.n, 1);
	CHECK(strstr(dd_error_last(), "bogus") != NULL);
}

static void test_files(void)
{
	const char *t = getenv("TMPDIR");
	char dir[256], path[300];
	struct pairs p;
	char *big;
	size_t n = (1u << 20) + 1;

	snprintf(dir, sizeof(dir), "%s/dd-conf-XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof(path), "%s/agent.conf", dir);
	memset(&p, 0, sizeof(p));
	CHECK_EQ(dd_conf_parse_file(path, collect, &p), -ENOENT);
	CHECK_EQ(dd_write_file_atomic(path, "a = 1\nb=2\n", 10, 0600), 0);
	CHECK_EQ(dd_conf_parse_file(path, collect, &p), 0);
	CHECK(strcmp(p.text, "a=1@1;b=2@2;") == 0);
	CHECK_EQ(dd_write_file_atomic(path, "a = 1\noops\n", 11, 0600), 0);
	CHECK_EQ(dd_conf_parse_file(path, collect, &p), -EBADMSG);
	CHECK(strstr(dd_error_last(), "agent.conf:2:") != NULL);
	/* an empty file (or /dev/null) is a valid empty configuration */
	memset(&p, 0, sizeof(p));
	CHECK_EQ(dd_conf_parse_file("/dev/null", collect, &p), 0);
	CHECK_EQ(p.n, 0);
	/* over 1 MiB */
	big = malloc(n);
	memset(big, '#', n);
	CHECK_EQ(dd_write_file_atomic(path, big, n, 0600), 0);
	CHECK_EQ(dd_conf_parse_file(path, collect, &p), -E2BIG);
	CHECK_EQ(dd_conf_parse_buf("big", big, n, collect, &p), -E2BIG);
	CHECK_EQ(dd_conf_parse_buf("big", big, n - 1, collect, &p), 0);
	free(big);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	UNIT_RUN(test_good);
	UNIT_RUN(test_bad);
	UNIT_RUN(test_files);
	UNIT_DONE();
}
