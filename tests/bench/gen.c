/*
 * gen.c - deterministic data generator for the dedup benchmark
 * (tests/bench/bench.sh). No /dev/urandom, no downloads: every byte comes
 * from xoshiro256** streams seeded through splitmix64 from (seed, object).
 *
 *   gen mixed DIR SEED [SCALE]          ~1.5 GB mixed tree at SCALE 1
 *   gen generations DIR SEED N [SCALE]  DIR/gen-0 (~300 MB) .. DIR/gen-N
 *   gen images DIR SEED [SCALE]         DIR/a.img, DIR/b.img (~512 MB each)
 *   gen sync SRC DST                    make DST equal to SRC, copying only
 *                                       files whose size or mtime differ
 *
 * Build: cc -O2 -o gen gen.c -lm
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define KiB 1024ULL
#define MiB (1024ULL * 1024ULL)
#define MTIME_BASE 1700000000LL

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("gen: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* ---------------------------------------------------------------- PRNG */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

typedef struct { uint64_t s[4]; } rng_t;

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rnext(rng_t *r)
{
	uint64_t *s = r->s;
	uint64_t res = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return res;
}

/* An independent stream per (seed, tag, index). */
static void rseed(rng_t *r, uint64_t seed, uint64_t tag, uint64_t idx)
{
	uint64_t x = seed ^ (tag * 0xd1b54a32d192ed03ULL) ^ (idx * 0xabc98388fb8fac03ULL);
	splitmix64(&x);
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
}

static inline uint64_t rbelow(rng_t *r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rnext(r) * n) >> 64);
}
static inline double runit(rng_t *r) { return (double)(rnext(r) >> 11) * 0x1.0p-53; }
static inline int rpct(rng_t *r, unsigned pct) { return rbelow(r, 100) < pct; }

/* log-uniform in [lo, hi] */
static uint64_t rlogu(rng_t *r, uint64_t lo, uint64_t hi)
{
	if (hi <= lo)
		return lo;
	double v = exp(log((double)lo) + runit(r) * (log((double)hi) - log((double)lo)));
	uint64_t u = (uint64_t)v;
	return u < lo ? lo : u > hi ? hi : u;
}

/* Zipf-like pick of 0..n-1, skewed to small indexes. */
static inline size_t rskew(rng_t *r, size_t n)
{
	double u = runit(r);
	return (size_t)(u * u * u * (double)n);
}

/* ---------------------------------------------------------- vocabulary */

static const char *keywords_c[] = {
	"if", "else", "return", "for", "while", "static", "const", "struct",
	"void", "int", "char", "unsigned", "size_t", "uint64_t", "uint32_t",
	"uint8_t", "bool", "NULL", "break", "continue", "switch", "case",
	"goto", "sizeof", "enum", "typedef", "long", "double", "true", "false",
};
static const char *keywords_py[] = {
	"def", "return", "if", "elif", "else", "for", "in", "while", "import",
	"from", "class", "self", "None", "True", "False", "with", "as", "try",
	"except", "raise", "yield", "lambda", "not", "and", "or", "is",
};
static const char *ops[] = { "==", "!=", "<", ">", "<=", ">=", "+", "-", "*", "&", "|", "<<", ">>" };
static const char *types_c[] = {
	"int", "size_t", "uint64_t", "uint32_t", "const char *", "struct dd_buf *",
	"bool", "ssize_t", "uint8_t *", "void *", "double", "long",
};

#define NWORDS 900
#define NIDENTS 2500
static char *words[NWORDS];
static char *idents[NIDENTS];
static size_t ident_len[NIDENTS], word_len[NWORDS];

static const char *syl[] = {
	"ba", "ca", "de", "fi", "go", "hu", "ja", "ke", "li", "mo", "nu", "pa",
	"qui", "re", "si", "to", "va", "we", "xi", "yo", "za", "ch", "st", "tr",
	"an", "en", "in", "on", "un", "er", "or", "ar", "al", "el", "ol", "th",
	"ing", "ed", "ion", "ment", "ure", "ble", "ly", "ter", "ver", "con",
	"pro", "per", "com", "ex", "pre", "buf", "len", "ptr", "idx", "cnt",
};

static char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (!p)
		die("out of memory");
	return p;
}

static void vocab_init(uint64_t seed)
{
	rng_t r;
	char tmp[128];
	rseed(&r, seed, 0x766f636162ULL, 0);
	for (int i = 0; i < NWORDS; i++) {
		int n = 1 + (int)rbelow(&r, 3);
		tmp[0] = 0;
		for (int j = 0; j < n; j++)
			strcat(tmp, syl[rbelow(&r, sizeof(syl) / sizeof(syl[0]))]);
		words[i] = xstrdup(tmp);
		word_len[i] = strlen(tmp);
	}
	static const char *pfx[] = { "", "", "", "dd_", "g_", "m_", "k", "is_", "get_", "set_" };
	for (int i = 0; i < NIDENTS; i++) {
		int n = 1 + (int)rbelow(&r, 3);
		int camel = rpct(&r, 30);
		strcpy(tmp, pfx[rbelow(&r, sizeof(pfx) / sizeof(pfx[0]))]);
		for (int j = 0; j < n; j++) {
			const char *w = words[rskew(&r, NWORDS)];
			size_t l = strlen(tmp);
			if (j && !camel)
				tmp[l++] = '_';
			if (l + strlen(w) + 2 >= sizeof(tmp))
				break;
			strcpy(tmp + l, w);
			if (j && camel && tmp[l] >= 'a' && tmp[l] <= 'z')
				tmp[l] -= 32;
		}
		idents[i] = xstrdup(tmp);
		ident_len[i] = strlen(tmp);
	}
}

/* ------------------------------------------------------ content streams */

enum { T_TEXT, T_BIN, T_RAND, T_ZERO, T_MIXED };
enum { FL_C, FL_PY, FL_PROSE, FL_CONF, FL_COUNT };

#define LINE_MAX_ 1024
#define HIST 64

typedef struct {
	int type;
	rng_t r;
	/* text */
	int flavor;
	int indent;
	char line[LINE_MAX_];
	size_t llen, lpos;
	char hist[HIST][160];
	unsigned hist_n;
	/* binary */
	int bkind;
	uint64_t brem;
	uint32_t rec_id;
	unsigned recpos;
	uint64_t ts;
	/* mixed */
	int seg_type;
	uint64_t seg_rem;
} src_t;

static void src_init(src_t *s, int type, uint64_t seed, uint64_t tag, uint64_t idx)
{
	memset(s, 0, sizeof(*s));
	s->type = type;
	rseed(&s->r, seed, tag, idx);
	s->flavor = (int)rbelow(&s->r, FL_COUNT);
	s->rec_id = (uint32_t)rbelow(&s->r, 100000);
	s->ts = MTIME_BASE * 1000ULL + rbelow(&s->r, 1000000000ULL);
}

/* line builder */
static inline void lput(src_t *s, const char *p, size_t n)
{
	if (s->llen + n >= LINE_MAX_ - 2)
		n = LINE_MAX_ - 2 - s->llen;
	memcpy(s->line + s->llen, p, n);
	s->llen += n;
}
static inline void lstr(src_t *s, const char *p) { lput(s, p, strlen(p)); }
static inline void lch(src_t *s, char c) { lput(s, &c, 1); }
static inline void lident(src_t *s)
{
	size_t i = rskew(&s->r, NIDENTS);
	lput(s, idents[i], ident_len[i]);
}
static inline void lword(src_t *s)
{
	size_t i = rskew(&s->r, NWORDS);
	lput(s, words[i], word_len[i]);
}
static void lnum(src_t *s)
{
	char b[24];
	uint64_t v;
	switch (rbelow(&s->r, 4)) {
	case 0: v = rbelow(&s->r, 10); break;
	case 1: v = rbelow(&s->r, 256); break;
	case 2: v = rbelow(&s->r, 65536); break;
	default: v = rnext(&s->r) >> 40; break;
	}
	int n = snprintf(b, sizeof(b), rpct(&s->r, 15) ? "0x%llx" : "%llu", (unsigned long long)v);
	lput(s, b, (size_t)n);
}
static void lindent(src_t *s)
{
	for (int i = 0; i < s->indent; i++)
		lstr(s, s->flavor == FL_C ? "\t" : "    ");
}
static void largs(src_t *s)
{
	int n = (int)rbelow(&s->r, 4);
	lch(s, '(');
	for (int i = 0; i < n; i++) {
		if (i)
			lstr(s, ", ");
		if (rpct(&s->r, 75))
			lident(s);
		else
			lnum(s);
	}
	lch(s, ')');
}

static void text_line_c(src_t *s)
{
	unsigned k = (unsigned)rbelow(&s->r, 100);
	if (k < 8) {
		return; /* blank */
	} else if (k < 20) {
		lindent(s);
		lstr(s, s->indent ? "/* " : " * ");
		int n = 3 + (int)rbelow(&s->r, 10);
		for (int i = 0; i < n; i++) {
			if (i)
				lch(s, ' ');
			lword(s);
		}
		if (s->indent)
			lstr(s, " */");
	} else if (k < 32) {
		lindent(s);
		lident(s);
		lstr(s, rpct(&s->r, 70) ? " = " : " += ");
		lident(s);
		if (rpct(&s->r, 50))
			largs(s);
		lch(s, ';');
	} else if (k < 44) {
		lindent(s);
		lident(s);
		largs(s);
		lch(s, ';');
	} else if (k < 54 && s->indent < 5) {
		lindent(s);
		lstr(s, rpct(&s->r, 70) ? "if (" : "while (");
		lident(s);
		lch(s, ' ');
		lstr(s, ops[rbelow(&s->r, sizeof(ops) / sizeof(ops[0]))]);
		lch(s, ' ');
		if (rpct(&s->r, 50)) lnum(s); else lident(s);
		lstr(s, ") {");
		s->indent++;
	} else if (k < 66 && s->indent > 0) {
		s->indent--;
		lindent(s);
		lch(s, '}');
		if (rpct(&s->r, 10))
			lstr(s, " else {"), s->indent++;
	} else if (k < 74) {
		lindent(s);
		lstr(s, types_c[rbelow(&s->r, sizeof(types_c) / sizeof(types_c[0]))]);
		lch(s, ' ');
		lident(s);
		if (rpct(&s->r, 60)) {
			lstr(s, " = ");
			lnum(s);
		}
		lch(s, ';');
	} else if (k < 80) {
		lindent(s);
		lstr(s, "return ");
		if (rpct(&s->r, 50)) lident(s); else lnum(s);
		lch(s, ';');
	} else if (k < 86) {
		lindent(s);
		lstr(s, rpct(&s->r, 50) ? "dd_log(\"" : "return dd_error_set(-EBADMSG, \"");
		int n = 2 + (int)rbelow(&s->r, 6);
		for (int i = 0; i < n; i++) {
			if (i)
				lch(s, ' ');
			lword(s);
		}
		lstr(s, " %s\", ");
		lident(s);
		lstr(s, ");");
	} else if (k < 90 && s->indent == 0) {
		lstr(s, rpct(&s->r, 50) ? "static int " : "int ");
		lident(s);
		lstr(s, "(struct ");
		lident(s);
		lstr(s, " *");
		lident(s);
		lstr(s, ", ");
		lstr(s, types_c[rbelow(&s->r, sizeof(types_c) / sizeof(types_c[0]))]);
		lch(s, ' ');
		lident(s);
		lstr(s, ")\n{");
		s->indent = 1;
	} else if (k < 92 && s->indent == 0) {
		lstr(s, rpct(&s->r, 50) ? "#include <" : "#define ");
		lident(s);
		lstr(s, rpct(&s->r, 50) ? ".h>" : " 1");
	} else {
		lindent(s);
		lstr(s, keywords_c[rbelow(&s->r, sizeof(keywords_c) / sizeof(keywords_c[0]))]);
		lch(s, ' ');
		lident(s);
		lch(s, ';');
	}
}

static void text_line_py(src_t *s)
{
	unsigned k = (unsigned)rbelow(&s->r, 100);
	if (k < 10)
		return;
	if (k < 20) {
		lindent(s);
		lstr(s, "# ");
		int n = 3 + (int)rbelow(&s->r, 9);
		for (int i = 0; i < n; i++) {
			if (i)
				lch(s, ' ');
			lword(s);
		}
	} else if (k < 30 && s->indent < 4) {
		lindent(s);
		lstr(s, rpct(&s->r, 40) ? "def " : "if ");
		lident(s);
		largs(s);
		lch(s, ':');
		s->indent++;
	} else if (k < 40 && s->indent > 0) {
		s->indent--;
		lindent(s);
		lstr(s, "return ");
		lident(s);
	} else if (k < 70) {
		lindent(s);
		if (rpct(&s->r, 40))
			lstr(s, "self.");
		lident(s);
		lstr(s, " = ");
		lident(s);
		if (rpct(&s->r, 60))
			largs(s);
	} else if (k < 80) {
		lindent(s);
		lstr(s, keywords_py[rbelow(&s->r, sizeof(keywords_py) / sizeof(keywords_py[0]))]);
		lch(s, ' ');
		lident(s);
		lch(s, ' ');
		lstr(s, keywords_py[rbelow(&s->r, sizeof(keywords_py) / sizeof(keywords_py[0]))]);
		lch(s, ' ');
		lident(s);
	} else {
		lindent(s);
		lident(s);
		lch(s, '.');
		lident(s);
		largs(s);
	}
}

static void text_line_prose(src_t *s)
{
	unsigned k = (unsigned)rbelow(&s->r, 100);
	if (k < 12)
		return;
	if (k < 17) {
		lstr(s, rpct(&s->r, 50) ? "## " : "### ");
		lword(s);
		lch(s, ' ');
		lword(s);
		return;
	}
	if (k < 30)
		lstr(s, "- ");
	int n = 6 + (int)rbelow(&s->r, 10);
	for (int i = 0; i < n; i++) {
		if (i)
			lch(s, ' ');
		if (rpct(&s->r, 8)) {
			lch(s, '`');
			lident(s);
			lch(s, '`');
		} else {
			lword(s);
		}
	}
	lch(s, '.');
}

static void text_line_conf(src_t *s)
{
	unsigned k = (unsigned)rbelow(&s->r, 100);
	if (k < 6)
		return;
	lindent(s);
	if (k < 14 && s->indent < 4) {
		lch(s, '"');
		lident(s);
		lstr(s, "\": {");
		s->indent++;
	} else if (k < 22 && s->indent > 0) {
		s->indent--;
		s->llen = 0;
		lindent(s);
		lstr(s, "},");
	} else {
		lch(s, '"');
		lident(s);
		lstr(s, "\": ");
		switch (rbelow(&s->r, 4)) {
		case 0: lnum(s); break;
		case 1: lstr(s, rpct(&s->r, 50) ? "true" : "false"); break;
		default: lch(s, '"'); lword(s); lch(s, '/'); lident(s); lch(s, '"'); break;
		}
		lch(s, ',');
	}
}

static void text_next_line(src_t *s)
{
	s->llen = 0;
	s->lpos = 0;
	/* real code repeats itself: reuse a recent line now and then */
	if (s->hist_n >= HIST && rpct(&s->r, 14)) {
		const char *h = s->hist[rbelow(&s->r, HIST)];
		lstr(s, h);
	} else {
		switch (s->flavor) {
		case FL_C: text_line_c(s); break;
		case FL_PY: text_line_py(s); break;
		case FL_PROSE: text_line_prose(s); break;
		default: text_line_conf(s); break;
		}
		if (s->llen > 0 && s->llen < sizeof(s->hist[0])) {
			memcpy(s->hist[s->hist_n % HIST], s->line, s->llen);
			s->hist[s->hist_n % HIST][s->llen] = 0;
			s->hist_n++;
		}
	}
	s->line[s->llen++] = '\n';
}

static void fill_text(src_t *s, uint8_t *buf, size_t n)
{
	while (n) {
		if (s->lpos >= s->llen)
			text_next_line(s);
		size_t k = s->llen - s->lpos;
		if (k > n)
			k = n;
		memcpy(buf, s->line + s->lpos, k);
		s->lpos += k;
		buf += k;
		n -= k;
	}
}

static void fill_rand(src_t *s, uint8_t *buf, size_t n)
{
	while (n >= 8) {
		uint64_t v = rnext(&s->r);
		memcpy(buf, &v, 8);
		buf += 8;
		n -= 8;
	}
	if (n) {
		uint64_t v = rnext(&s->r);
		memcpy(buf, &v, n);
	}
}

/* Binary-like: record tables, machine-code-like bytes, string tables,
 * padding and embedded compressed blobs. Roughly 1.5-2x with zstd. */
static const uint8_t opcodes[] = {
	0x48, 0x89, 0x8b, 0xe8, 0xff, 0x0f, 0x85, 0x84, 0x74, 0x75, 0xc3, 0x83,
	0x31, 0xc0, 0x44, 0x24, 0x4c, 0x8d, 0x45, 0x85, 0xd2, 0x39, 0x41, 0x5d,
};

static void fill_bin(src_t *s, uint8_t *buf, size_t n)
{
	rng_t *r = &s->r;
	while (n) {
		if (!s->brem) {
			unsigned k = (unsigned)rbelow(r, 100);
			s->bkind = k < 30 ? 0 : k < 60 ? 1 : k < 72 ? 2 : k < 80 ? 3 : 4;
			s->brem = s->bkind == 3 ? rlogu(r, 16, 4096) : rlogu(r, 512, 64 * KiB);
		}
		size_t k = s->brem < n ? s->brem : n;
		switch (s->bkind) {
		case 0: /* 32-byte records: id, type, flags, timestamp, values */
			for (size_t i = 0; i < k; i++) {
				unsigned pos = s->recpos++ & 31;
				if (pos == 0) {
					s->rec_id++;
					s->ts += rbelow(r, 5000);
				}
				uint8_t b;
				if (pos < 4)
					b = (uint8_t)(s->rec_id >> (8 * pos));
				else if (pos == 4)
					b = (uint8_t)rbelow(r, 8);
				else if (pos == 6)
					b = rpct(r, 80) ? 0 : 1;
				else if (pos == 7)
					b = rpct(r, 90) ? 0 : 0x80;
				else if (pos >= 8 && pos < 16)
					b = (uint8_t)(s->ts >> (8 * (pos - 8)));
				else if (pos == 16 || pos == 17 || (pos >= 24 && pos < 28))
					b = (uint8_t)rnext(r);
				else if (pos == 18)
					b = (uint8_t)rbelow(r, 4);
				else
					b = 0;
				buf[i] = b;
			}
			break;
		case 1: /* code-like skewed bytes */
			for (size_t i = 0; i < k; i++) {
				uint64_t v = rnext(r);
				buf[i] = (v & 0xff) < 180 ? opcodes[(v >> 8) % sizeof(opcodes)]
				                          : (uint8_t)(v >> 16);
			}
			break;
		case 2: { /* string table */
			size_t i = 0;
			while (i < k) {
				size_t w = rskew(r, NIDENTS);
				size_t l = ident_len[w];
				if (l > k - i)
					l = k - i;
				memcpy(buf + i, idents[w], l);
				i += l;
				if (i < k)
					buf[i++] = 0;
			}
			break;
		}
		case 3: /* padding */
			memset(buf, rpct(r, 80) ? 0 : 0xff, k);
			break;
		default: /* compressed blob */
			fill_rand(s, buf, k);
			break;
		}
		buf += k;
		n -= k;
		s->brem -= k;
	}
}

static void fill(src_t *s, uint8_t *buf, size_t n);

static void fill_type(src_t *s, int type, uint8_t *buf, size_t n)
{
	switch (type) {
	case T_TEXT: fill_text(s, buf, n); break;
	case T_BIN: fill_bin(s, buf, n); break;
	case T_RAND: fill_rand(s, buf, n); break;
	case T_ZERO: memset(buf, 0, n); break;
	default: fill(s, buf, n); break;
	}
}

/* Mixed: segments of 64 KiB - 16 MiB of the other kinds. */
static void fill(src_t *s, uint8_t *buf, size_t n)
{
	if (s->type != T_MIXED) {
		fill_type(s, s->type, buf, n);
		return;
	}
	while (n) {
		if (!s->seg_rem) {
			unsigned k = (unsigned)rbelow(&s->r, 100);
			s->seg_type = k < 30 ? T_TEXT : k < 65 ? T_BIN : k < 90 ? T_RAND : T_ZERO;
			s->seg_rem = rlogu(&s->r, 64 * KiB, 16 * MiB);
			s->flavor = (int)rbelow(&s->r, FL_COUNT);
		}
		size_t k = s->seg_rem < n ? s->seg_rem : n;
		fill_type(s, s->seg_type, buf, k);
		buf += k;
		n -= k;
		s->seg_rem -= k;
	}
}

/* ------------------------------------------------------------ file I/O */

#define IOBUF (4 * MiB)
static uint8_t *iobuf;
static uint64_t total_bytes, total_files;

static void mkdir_p(const char *path)
{
	char tmp[8192];
	size_t n = strlen(path);
	if (n >= sizeof(tmp))
		die("path too long: %s", path);
	memcpy(tmp, path, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0755) && errno != EEXIST)
			die("mkdir %s: %s", tmp, strerror(errno));
		*p = '/';
	}
	if (mkdir(tmp, 0755) && errno != EEXIST)
		die("mkdir %s: %s", tmp, strerror(errno));
}

static void mkparent(const char *path)
{
	char tmp[8192];
	snprintf(tmp, sizeof(tmp), "%s", path);
	char *sl = strrchr(tmp, '/');
	if (sl && sl != tmp) {
		*sl = 0;
		mkdir_p(tmp);
	}
}

static void write_all(int fd, const void *p, size_t n, const char *path)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t w = write(fd, b, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			die("write %s: %s", path, strerror(errno));
		}
		b += w;
		n -= (size_t)w;
	}
}

static int open_out(const char *path)
{
	mkparent(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	return fd;
}

static void close_out(int fd, const char *path, int64_t mtime)
{
	struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };
	if (futimens(fd, ts))
		die("futimens %s: %s", path, strerror(errno));
	if (close(fd))
		die("close %s: %s", path, strerror(errno));
}

static void write_stream(const char *path, src_t *s, uint64_t size, int64_t mtime)
{
	int fd = open_out(path);
	uint64_t left = size;
	while (left) {
		size_t k = left < IOBUF ? (size_t)left : IOBUF;
		fill(s, iobuf, k);
		write_all(fd, iobuf, k, path);
		left -= k;
	}
	close_out(fd, path, mtime);
	total_bytes += size;
	total_files++;
}

static void write_file(const char *path, int type, uint64_t seed, uint64_t tag,
		       uint64_t idx, uint64_t size, int64_t mtime)
{
	src_t *s = malloc(sizeof(*s));
	if (!s)
		die("out of memory");
	src_init(s, type, seed, tag, idx);
	write_stream(path, s, size, mtime);
	free(s);
}

static void write_buf(const char *path, const uint8_t *p, size_t n, int64_t mtime)
{
	int fd = open_out(path);
	write_all(fd, p, n, path);
	close_out(fd, path, mtime);
}

static uint8_t *read_whole(const char *path, size_t *len, size_t extra)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st))
		die("stat %s: %s", path, strerror(errno));
	size_t n = (size_t)st.st_size;
	uint8_t *p = malloc(n + extra + 1);
	if (!p)
		die("out of memory");
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, p + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			die("read %s: %s", path, r ? strerror(errno) : "short");
		got += (size_t)r;
	}
	close(fd);
	*len = n;
	return p;
}

static void copy_file(const char *src, const char *dst, int64_t mtime_or_neg, mode_t mode)
{
	int in = open(src, O_RDONLY);
	if (in < 0)
		die("open %s: %s", src, strerror(errno));
	struct stat st;
	if (fstat(in, &st))
		die("stat %s: %s", src, strerror(errno));
	int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (out < 0)
		die("open %s: %s", dst, strerror(errno));
	for (;;) {
		ssize_t r = read(in, iobuf, IOBUF);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("read %s: %s", src, strerror(errno));
		if (r == 0)
			break;
		write_all(out, iobuf, (size_t)r, dst);
	}
	close(in);
	if (fchmod(out, mode ? mode : (st.st_mode & 07777)))
		die("chmod %s: %s", dst, strerror(errno));
	struct timespec ts[2] = { st.st_atim, st.st_mtim };
	if (mtime_or_neg >= 0)
		ts[0].tv_sec = ts[1].tv_sec = mtime_or_neg, ts[0].tv_nsec = ts[1].tv_nsec = 0;
	if (futimens(out, ts))
		die("futimens %s: %s", dst, strerror(errno));
	if (close(out))
		die("close %s: %s", dst, strerror(errno));
}

static uint64_t scaled(double scale, uint64_t v, uint64_t min)
{
	double x = (double)v * scale;
	return x < (double)min ? min : (uint64_t)x;
}

/* ---------------------------------------------------------------- mixed */

#define TAG_SMALL 1
#define TAG_SRC 2
#define TAG_BIN 3
#define TAG_MEDIA 4
#define TAG_LARGE 5
#define TAG_LAYOUT 6

static const char *text_ext[] = { "c", "py", "md", "json" };

static void gen_mixed(const char *dir, uint64_t seed, double scale)
{
	char path[4096];
	rng_t lay;
	rseed(&lay, seed, TAG_LAYOUT, 0);
	int64_t mt = MTIME_BASE;

	/* 1. many small files, nested three deep */
	uint64_t nsmall = scaled(scale, 30000, 20);
	for (uint64_t i = 0; i < nsmall; i++) {
		uint64_t d = i / 100;
		unsigned k = (unsigned)rbelow(&lay, 100);
		int type = k < 65 ? T_TEXT : k < 85 ? T_BIN : T_RAND;
		uint64_t size = rlogu(&lay, 200, 16 * KiB);
		src_t s;
		src_init(&s, type, seed, TAG_SMALL, i);
		const char *ext = type == T_TEXT ? text_ext[s.flavor] : type == T_BIN ? "o" : "gz";
		snprintf(path, sizeof(path), "%s/small/a%02llu/b%llu/c%llu/f%05llu.%s", dir,
			 (unsigned long long)(d / 100), (unsigned long long)(d / 10 % 10),
			 (unsigned long long)(d % 10), (unsigned long long)i, ext);
		write_stream(path, &s, size, mt + (int64_t)i);
	}

	/* 2. source-like text; every 20th file also appears under vendor/ */
	uint64_t left = scaled(scale, 380 * MiB, 64 * KiB);
	for (uint64_t i = 0; left; i++) {
		uint64_t size = rlogu(&lay, 16 * KiB, 2 * MiB);
		if (size > left)
			size = left;
		left -= size;
		src_t s;
		src_init(&s, T_TEXT, seed, TAG_SRC, i);
		snprintf(path, sizeof(path), "%s/src/m%02llu/mod%04llu.%s", dir,
			 (unsigned long long)(i / 25), (unsigned long long)i, text_ext[s.flavor]);
		write_stream(path, &s, size, mt + (int64_t)i);
		if (i % 20 == 7) {
			snprintf(path, sizeof(path), "%s/vendor/lib%llu/mod%04llu.%s", dir,
				 (unsigned long long)(i / 100), (unsigned long long)i,
				 text_ext[s.flavor]);
			write_file(path, T_TEXT, seed, TAG_SRC, i, size, mt + (int64_t)i);
		}
	}

	/* 3. binary-like files */
	left = scaled(scale, 250 * MiB, 64 * KiB);
	for (uint64_t i = 0; left; i++) {
		uint64_t size = rlogu(&lay, 64 * KiB, 8 * MiB);
		if (size > left)
			size = left;
		left -= size;
		snprintf(path, sizeof(path), "%s/bin/d%02llu/obj%04llu.bin", dir,
			 (unsigned long long)(i / 20), (unsigned long long)i);
		write_file(path, T_BIN, seed, TAG_BIN, i, size, mt + (int64_t)i);
	}

	/* 4. already-compressed / random data */
	left = scaled(scale, 300 * MiB, 64 * KiB);
	for (uint64_t i = 0; left; i++) {
		uint64_t size = rlogu(&lay, 256 * KiB, 24 * MiB);
		if (size > left)
			size = left;
		left -= size;
		snprintf(path, sizeof(path), "%s/media/IMG_%04llu.jpg", dir, (unsigned long long)i);
		write_file(path, T_RAND, seed, TAG_MEDIA, i, size, mt + (int64_t)i);
	}

	/* 5. a few large files with mixed content */
	uint64_t lsize = scaled(scale, 150 * MiB, 1 * MiB);
	for (uint64_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/large/vm-disk-%llu.raw", dir, (unsigned long long)i);
		write_file(path, T_MIXED, seed, TAG_LARGE, i, lsize, mt + (int64_t)i);
	}

	/* 6. empty files and symlinks */
	for (int i = 0; i < 16; i++) {
		snprintf(path, sizeof(path), "%s/misc/empty-%02d", dir, i);
		write_buf(path, (const uint8_t *)"", 0, mt);
	}
	for (int i = 0; i < 8; i++) {
		char target[128];
		snprintf(path, sizeof(path), "%s/misc/link-%d", dir, i);
		if (i & 1) /* dangling */
			snprintf(target, sizeof(target), "../nonexistent/target-%d", i);
		else
			snprintf(target, sizeof(target), "empty-%02d", i);
		if (symlink(target, path) && errno != EEXIST)
			die("symlink %s: %s", path, strerror(errno));
	}
}

/* ---------------------------------------------------------- generations */

typedef struct {
	char rel[200];
	int type;
	int alive;
	int64_t mtime;
	uint64_t id;
} gfile_t;

static gfile_t *gf;
static size_t ngf, agf;

static gfile_t *gf_add(void)
{
	if (ngf == agf) {
		agf = agf ? agf * 2 : 1024;
		gf = realloc(gf, agf * sizeof(*gf));
		if (!gf)
			die("out of memory");
	}
	memset(&gf[ngf], 0, sizeof(gf[0]));
	gf[ngf].id = ngf;
	return &gf[ngf++];
}

#define TAG_GEN0 10
#define TAG_GENEDIT 11
#define TAG_GENNEW 12
#define TAG_GENINS 13

static void gen_new_big(uint64_t seed, const char *gdir, rng_t *r, double fs, int64_t mtime,
			uint64_t tag)
{
	char path[4096];
	gfile_t *f = gf_add();
	unsigned k = (unsigned)rbelow(r, 100);
	f->type = k < 40 ? T_TEXT : k < 80 ? T_BIN : T_MIXED;
	f->alive = 1;
	f->mtime = mtime;
	uint64_t size = rlogu(r, (uint64_t)(1 * MiB * fs), (uint64_t)(20 * MiB * fs));
	snprintf(f->rel, sizeof(f->rel), "data/d%02llu/file%04llu.%s",
		 (unsigned long long)(f->id % 16), (unsigned long long)f->id,
		 f->type == T_TEXT ? "txt" : f->type == T_BIN ? "bin" : "dat");
	snprintf(path, sizeof(path), "%s/%s", gdir, f->rel);
	write_file(path, f->type, seed, tag, f->id, size, f->mtime);
}

static void gen_new_small(uint64_t seed, const char *gdir, rng_t *r, int64_t mtime, uint64_t tag)
{
	char path[4096];
	gfile_t *f = gf_add();
	unsigned k = (unsigned)rbelow(r, 100);
	f->type = k < 70 ? T_TEXT : k < 90 ? T_BIN : T_RAND;
	f->alive = 1;
	f->mtime = mtime;
	uint64_t size = rlogu(r, 200, 16 * KiB);
	snprintf(f->rel, sizeof(f->rel), "small/s%02llu/f%05llu.txt",
		 (unsigned long long)(f->id / 64 % 100), (unsigned long long)f->id);
	snprintf(path, sizeof(path), "%s/%s", gdir, f->rel);
	write_file(path, f->type, seed, tag, f->id, size, f->mtime);
}

static int is_small(const gfile_t *f) { return strncmp(f->rel, "small/", 6) == 0; }

/* Inserts, deletes and overwrites byte ranges at random (unaligned)
 * offsets; content shifts, which is where content-defined chunking helps. */
static uint8_t *edit_buffer(uint8_t *p, size_t *len, rng_t *r, src_t *ins, int nedits,
			    uint64_t maxlen)
{
	for (int e = 0; e < nedits; e++) {
		size_t n = *len;
		unsigned op = (unsigned)rbelow(r, 100);
		uint64_t l = rlogu(r, 1, maxlen);
		size_t off = n ? (size_t)rbelow(r, n) : 0;
		if (op < 40 || n < 2) { /* insert */
			p = realloc(p, n + l + 1);
			if (!p)
				die("out of memory");
			memmove(p + off + l, p + off, n - off);
			fill(ins, p + off, l);
			*len = n + l;
		} else if (op < 70) { /* delete */
			if (l > n - off)
				l = n - off;
			memmove(p + off, p + off + l, n - off - l);
			*len = n - l;
		} else if (op < 90) { /* overwrite in place */
			if (l > n - off)
				l = n - off;
			fill(ins, p + off, l);
		} else { /* append (logs grow) */
			p = realloc(p, n + l + 1);
			if (!p)
				die("out of memory");
			fill(ins, p + n, l);
			*len = n + l;
		}
	}
	return p;
}

static void gen_generations(const char *dir, uint64_t seed, int ngen, double scale)
{
	char path[8192], prev[8192], gdir[4096], pdir[4096];
	double fs = sqrt(scale);
	if (fs > 1)
		fs = 1;
	if (fs < 0.05)
		fs = 0.05;
	rng_t r;

	/* gen-0: big files of 1-20 MB (sizes scaled by sqrt(scale)) + small files */
	rseed(&r, seed, TAG_GEN0, 0);
	snprintf(gdir, sizeof(gdir), "%s/gen-0", dir);
	mkdir_p(gdir);
	uint64_t budget = scaled(scale, 290 * MiB, 1 * MiB);
	uint64_t used = 0;
	while (used < budget) {
		uint64_t before = total_bytes;
		gen_new_big(seed, gdir, &r, fs, MTIME_BASE + (int64_t)ngf, TAG_GEN0);
		used += total_bytes - before;
	}
	uint64_t nsmall = scaled(scale, 2000, 20);
	for (uint64_t i = 0; i < nsmall; i++)
		gen_new_small(seed, gdir, &r, MTIME_BASE + (int64_t)ngf, TAG_GEN0);
	printf("gen-0: files=%llu bytes=%llu\n", (unsigned long long)total_files,
	       (unsigned long long)total_bytes);

	for (int g = 1; g <= ngen; g++) {
		uint64_t changed = 0, nchanged = 0, nnew = 0, ndel = 0;
		snprintf(pdir, sizeof(pdir), "%s/gen-%d", dir, g - 1);
		snprintf(gdir, sizeof(gdir), "%s/gen-%d", dir, g);
		mkdir_p(gdir);
		rseed(&r, seed, TAG_GENEDIT, (uint64_t)g);
		int64_t mt = MTIME_BASE + (int64_t)g * 86400;
		size_t nold = ngf;
		for (size_t i = 0; i < nold; i++) {
			gfile_t *f = &gf[i];
			if (!f->alive)
				continue;
			unsigned roll = (unsigned)rbelow(&r, 1000);
			int small = is_small(f);
			snprintf(prev, sizeof(prev), "%s/%s", pdir, f->rel);
			snprintf(path, sizeof(path), "%s/%s", gdir, f->rel);
			if (roll < (small ? 8u : 20u)) { /* delete */
				f->alive = 0;
				ndel++;
				continue;
			}
			if (roll < (small ? 38u : 140u)) { /* edit */
				size_t len;
				uint8_t *p = read_whole(prev, &len, 0);
				src_t ins;
				src_init(&ins, f->type == T_MIXED ? T_BIN : f->type, seed, TAG_GENINS,
					 (uint64_t)g << 32 | i);
				int nedits = small ? 1 : 1 + (int)rbelow(&r, 6);
				p = edit_buffer(p, &len, &r, &ins, nedits, small ? 512 : 64 * KiB);
				f->mtime = mt + (int64_t)(i % 3600);
				mkparent(path);
				write_buf(path, p, len, f->mtime);
				free(p);
				changed += len;
				nchanged++;
				continue;
			}
			mkparent(path);
			if (link(prev, path)) {
				if (errno == EEXIST)
					continue;
				copy_file(prev, path, -1, 0);
			}
		}
		/* a few new files */
		int nbig = (int)rbelow(&r, 3);
		for (int i = 0; i < nbig; i++) {
			uint64_t before = total_bytes;
			gen_new_big(seed, gdir, &r, fs * 0.5, mt + 4000 + i, TAG_GENNEW);
			changed += total_bytes - before;
			nnew++;
		}
		uint64_t ns = 1 + nsmall / 100;
		for (uint64_t i = 0; i < ns; i++) {
			uint64_t before = total_bytes;
			gen_new_small(seed, gdir, &r, mt + 5000 + (int64_t)i, TAG_GENNEW);
			changed += total_bytes - before;
			nnew++;
		}
		uint64_t live = 0, nlive = 0;
		for (size_t i = 0; i < ngf; i++) {
			struct stat st;
			if (!gf[i].alive)
				continue;
			snprintf(path, sizeof(path), "%s/%s", gdir, gf[i].rel);
			if (stat(path, &st))
				die("stat %s: %s", path, strerror(errno));
			live += (uint64_t)st.st_size;
			nlive++;
		}
		printf("gen-%d: files=%llu bytes=%llu edited=%llu new=%llu deleted=%llu "
		       "bytes_in_edited_or_new_files=%llu\n", g, (unsigned long long)nlive,
		       (unsigned long long)live, (unsigned long long)nchanged,
		       (unsigned long long)nnew, (unsigned long long)ndel,
		       (unsigned long long)changed);
	}
}

/* --------------------------------------------------------------- images */

#define TAG_IMG 20
#define TAG_IMGB 21

static void gen_images(const char *dir, uint64_t seed, double scale)
{
	char pa[4096], pb[4096];
	uint64_t size = scaled(scale, 512 * MiB, 4 * MiB) & ~4095ULL;
	snprintf(pa, sizeof(pa), "%s/a.img", dir);
	snprintf(pb, sizeof(pb), "%s/b.img", dir);
	mkdir_p(dir);

	/* A: 4 KiB-aligned extents of zeros, text, binary and random data */
	rng_t r;
	rseed(&r, seed, TAG_IMG, 0);
	int fd = open_out(pa);
	uint64_t off = 0;
	for (uint64_t e = 0; off < size; e++) {
		uint64_t l = rlogu(&r, 4 * KiB, 4 * MiB) & ~4095ULL;
		if (l > size - off)
			l = size - off;
		unsigned k = (unsigned)rbelow(&r, 100);
		src_t s;
		src_init(&s, k < 20 ? T_ZERO : k < 45 ? T_TEXT : k < 75 ? T_BIN : T_RAND, seed,
			 TAG_IMG, e + 1);
		for (uint64_t left = l; left;) {
			size_t n = left < IOBUF ? (size_t)left : IOBUF;
			fill(&s, iobuf, n);
			write_all(fd, iobuf, n, pa);
			left -= n;
		}
		off += l;
	}
	close_out(fd, pa, MTIME_BASE);

	/* B: A with unaligned inserts, deletes, overwrites and new zero runs at
	 * sorted random points, then cut or zero-padded to A's size */
	uint64_t npts = scaled(scale, 48, 3);
	uint64_t *pts = calloc(npts, sizeof(*pts));
	if (!pts)
		die("out of memory");
	rseed(&r, seed, TAG_IMGB, 0);
	for (uint64_t i = 0; i < npts; i++)
		pts[i] = rbelow(&r, size);
	for (uint64_t i = 1; i < npts; i++) /* insertion sort; npts is small */
		for (uint64_t j = i; j > 0 && pts[j - 1] > pts[j]; j--) {
			uint64_t t = pts[j]; pts[j] = pts[j - 1]; pts[j - 1] = t;
		}
	int in = open(pa, O_RDONLY);
	if (in < 0)
		die("open %s: %s", pa, strerror(errno));
	int out = open_out(pb);
	uint64_t rpos = 0, wpos = 0, added = 0;
	src_t ins;
	src_init(&ins, T_MIXED, seed, TAG_IMGB, 1);
	uint8_t *nb = malloc(4 * MiB);
	if (!nb)
		die("out of memory");
#define EMIT(p, n) do { uint64_t _n = (n); if (wpos + _n > size) _n = size - wpos; \
		write_all(out, (p), (size_t)_n, pb); wpos += _n; } while (0)
	for (uint64_t i = 0; i <= npts && wpos < size; i++) {
		uint64_t until = i < npts ? pts[i] : size;
		while (rpos < until && wpos < size) { /* copy A[rpos, until) */
			size_t n = until - rpos < IOBUF ? (size_t)(until - rpos) : IOBUF;
			ssize_t got = pread(in, iobuf, n, (off_t)rpos);
			if (got <= 0)
				die("read %s: %s", pa, got ? strerror(errno) : "short");
			EMIT(iobuf, (uint64_t)got);
			rpos += (uint64_t)got;
		}
		if (i == npts)
			break;
		unsigned op = (unsigned)rbelow(&r, 100);
		if (op < 40) { /* insert new bytes */
			uint64_t l = rlogu(&r, 1, 256 * KiB);
			fill(&ins, nb, l);
			EMIT(nb, l);
			added += l;
		} else if (op < 70) { /* delete */
			rpos += rlogu(&r, 1, 256 * KiB);
		} else if (op < 85) { /* a new zero run replaces data */
			uint64_t l = rlogu(&r, 64 * KiB, 4 * MiB);
			memset(nb, 0, 4 * MiB);
			EMIT(nb, l);
			rpos += l;
		} else { /* overwrite */
			uint64_t l = rlogu(&r, 1, 256 * KiB);
			fill(&ins, nb, l);
			EMIT(nb, l);
			rpos += l;
			added += l;
		}
		if (rpos > size)
			rpos = size;
	}
	memset(iobuf, 0, IOBUF);
	while (wpos < size) {
		uint64_t n = size - wpos < IOBUF ? size - wpos : IOBUF;
		EMIT(iobuf, n);
	}
#undef EMIT
	close(in);
	close_out(out, pb, MTIME_BASE + 86400);
	free(nb);
	free(pts);
	printf("images: a=%llu b=%llu edit_points=%llu new_bytes_in_b=%llu\n",
	       (unsigned long long)size, (unsigned long long)size, (unsigned long long)npts,
	       (unsigned long long)added);
}

/* ----------------------------------------------------------------- sync */

static const char *sync_src, *sync_dst;
static uint64_t sync_copied, sync_removed;

static void rel_join(char *out, size_t n, const char *base, const char *full, const char *root)
{
	snprintf(out, n, "%s%s", base, full + strlen(root));
}

static int sync_prune(const char *fpath, const struct stat *st, int flag, struct FTW *ftw)
{
	char other[4096];
	struct stat os;
	if (ftw->level == 0)
		return 0;
	rel_join(other, sizeof(other), sync_src, fpath, sync_dst);
	int keep = lstat(other, &os) == 0 &&
		   ((S_ISDIR(os.st_mode) && S_ISDIR(st->st_mode)) ||
		    (S_ISREG(os.st_mode) && S_ISREG(st->st_mode)) ||
		    (S_ISLNK(os.st_mode) && S_ISLNK(st->st_mode)));
	if (keep)
		return 0;
	if (flag == FTW_DP ? rmdir(fpath) : unlink(fpath))
		die("remove %s: %s", fpath, strerror(errno));
	sync_removed++;
	return 0;
}

static int sync_copy(const char *fpath, const struct stat *st, int flag, struct FTW *ftw)
{
	char other[4096];
	(void)flag;
	(void)ftw;
	struct stat os;
	rel_join(other, sizeof(other), sync_dst, fpath, sync_src);
	int have = lstat(other, &os) == 0;
	if (S_ISDIR(st->st_mode)) {
		if (!have && mkdir(other, st->st_mode & 07777))
			die("mkdir %s: %s", other, strerror(errno));
	} else if (S_ISREG(st->st_mode)) {
		if (have && os.st_size == st->st_size && os.st_mtim.tv_sec == st->st_mtim.tv_sec &&
		    os.st_mtim.tv_nsec == st->st_mtim.tv_nsec)
			return 0;
		copy_file(fpath, other, -1, 0);
		sync_copied++;
	} else if (S_ISLNK(st->st_mode)) {
		char t1[4096], t2[4096];
		ssize_t n1 = readlink(fpath, t1, sizeof(t1) - 1);
		if (n1 < 0)
			die("readlink %s: %s", fpath, strerror(errno));
		t1[n1] = 0;
		if (have) {
			ssize_t n2 = readlink(other, t2, sizeof(t2) - 1);
			if (n2 >= 0) {
				t2[n2] = 0;
				if (!strcmp(t1, t2))
					return 0;
			}
			unlink(other);
		}
		if (symlink(t1, other))
			die("symlink %s: %s", other, strerror(errno));
		sync_copied++;
	}
	return 0;
}

static void gen_sync(const char *src, const char *dst)
{
	mkdir_p(dst);
	sync_src = src;
	sync_dst = dst;
	if (nftw(dst, sync_prune, 64, FTW_DEPTH | FTW_PHYS))
		die("walk %s failed", dst);
	if (nftw(src, sync_copy, 64, FTW_PHYS))
		die("walk %s failed", src);
	printf("sync: copied=%llu removed=%llu\n", (unsigned long long)sync_copied,
	       (unsigned long long)sync_removed);
}

/* ----------------------------------------------------------------- main */

static uint64_t parse_u64(const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || *end || end == s)
		die("not a number: %s", s);
	return v;
}

static double parse_scale(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	if (*end || end == s || !(v > 0) || v > 100)
		die("bad scale: %s", s);
	return v;
}

static void usage(void)
{
	fputs("usage: gen mixed DIR SEED [SCALE]\n"
	      "       gen generations DIR SEED N [SCALE]\n"
	      "       gen images DIR SEED [SCALE]\n"
	      "       gen sync SRC DST\n", stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc < 4)
		usage();
	iobuf = malloc(IOBUF);
	if (!iobuf)
		die("out of memory");
	umask(022);
	const char *mode = argv[1], *dir = argv[2];
	if (!strcmp(mode, "sync")) {
		gen_sync(argv[2], argv[3]);
		return 0;
	}
	uint64_t seed = parse_u64(argv[3]);
	vocab_init(seed);
	mkdir_p(dir);
	if (!strcmp(mode, "mixed")) {
		if (argc > 5)
			usage();
		gen_mixed(dir, seed, argc > 4 ? parse_scale(argv[4]) : 1.0);
		printf("mixed: files=%llu bytes=%llu\n", (unsigned long long)total_files,
		       (unsigned long long)total_bytes);
	} else if (!strcmp(mode, "generations")) {
		if (argc < 5 || argc > 6)
			usage();
		uint64_t n = parse_u64(argv[4]);
		if (n > 1000)
			die("too many generations");
		gen_generations(dir, seed, (int)n, argc > 5 ? parse_scale(argv[5]) : 1.0);
	} else if (!strcmp(mode, "images")) {
		if (argc > 5)
			usage();
		gen_images(dir, seed, argc > 4 ? parse_scale(argv[4]) : 1.0);
	} else {
		usage();
	}
	return 0;
}
