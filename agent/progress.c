/*
 * progress.c - the backup's progress line on a terminal (progress.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "util.h"
#include "agent.h"
#include "progress.h"

/* Seconds over which the shown rate follows a change of speed. */
#define PROGRESS_RATE_TAU 5.0

struct progress {
	double t0;             /* when the display was made */
	double last_t;         /* last rate sample */
	uint64_t last_bytes;
	double rate;           /* bytes per second, smoothed; 0 = none yet */
	uint64_t total_files, total_bytes;
	bool drawn;            /* a line is on the screen */
	bool started;          /* drawn at least once */
	bool ended;
};

/* The display that may have a line on the screen. One stderr, one line:
 * this is the process-wide fact the interrupt needs. */
static pthread_mutex_t progress_lock = PTHREAD_MUTEX_INITIALIZER;
static struct progress *progress_active;

int progress_new(struct progress **out, bool quiet)
{
	struct progress *p;

	*out = NULL;
	if (quiet || !isatty(STDERR_FILENO))
		return 0;
	if (!(p = calloc(1, sizeof(*p))))
		return dd_error_set(-ENOMEM, "out of memory");
	p->t0 = p->last_t = dd_monotonic();
	pthread_mutex_lock(&progress_lock);
	progress_active = p;
	pthread_mutex_unlock(&progress_lock);
	*out = p;
	return 0;
}

void progress_total(struct progress *p, uint64_t files, uint64_t bytes)
{
	if (!p)
		return;
	p->total_files = files;
	p->total_bytes = bytes;
}

/* "1:02:03" or "2:03". */
static void progress_fmt_eta(char out[24], double secs)
{
	unsigned long s = secs > 359999 ? 359999 : (unsigned long)(secs + 0.5);

	if (s >= 3600)
		snprintf(out, 24, "%lu:%02lu:%02lu", s / 3600, s / 60 % 60,
			 s % 60);
	else
		snprintf(out, 24, "%lu:%02lu", s / 60, s % 60);
}

/* Called with progress_lock held. */
static void progress_erase(struct progress *p)
{
	if (p->drawn) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		p->drawn = false;
	}
}

void progress_update(struct progress *p, uint64_t files, uint64_t bytes)
{
	char done[32], rate[48] = "", eta[64] = "", t[32];
	double now, dt;

	if (!p || p->ended)
		return;
	now = dd_monotonic();
	dt = now - p->last_t;
	/* The first call draws at once (without a rate: there is none yet),
	 * so that even a short run shows that it started. */
	if (p->started && dt < PROGRESS_INTERVAL)
		return;
	if (p->started && bytes >= p->last_bytes) {
		double inst = (double)(bytes - p->last_bytes) / dt;

		/* The average since the start until there is history, then
		 * an exponential average that forgets in about TAU seconds. */
		if (now - p->t0 < PROGRESS_RATE_TAU)
			p->rate = (double)bytes / (now - p->t0);
		else
			p->rate += (inst - p->rate) * dt / (dt + PROGRESS_RATE_TAU);
	}
	p->last_t = now;
	p->last_bytes = bytes;

	agent_fmt_bytes(done, bytes);
	if (p->rate > 0) {
		agent_fmt_bytes(t, (uint64_t)p->rate);
		snprintf(rate, sizeof(rate), "  %s/s", t);
	}
	if (p->total_bytes > bytes && p->rate > 0) {
		progress_fmt_eta(t, (double)(p->total_bytes - bytes) / p->rate);
		snprintf(eta, sizeof(eta), "  ETA %s (%u%%)", t,
			 (unsigned)(bytes * 100 / p->total_bytes));
	}
	pthread_mutex_lock(&progress_lock);
	fprintf(stderr, "\r%llu files  %s%s%s\033[K",
		(unsigned long long)files, done, rate, eta);
	fflush(stderr);
	p->drawn = true;
	p->started = true;
	pthread_mutex_unlock(&progress_lock);
}

void progress_end(struct progress *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&progress_lock);
	progress_erase(p);
	p->ended = true;
	pthread_mutex_unlock(&progress_lock);
}

void progress_free(struct progress *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&progress_lock);
	progress_erase(p);
	if (progress_active == p)
		progress_active = NULL;
	pthread_mutex_unlock(&progress_lock);
	free(p);
}

void progress_interrupt(void)
{
	pthread_mutex_lock(&progress_lock);
	if (progress_active)
		progress_erase(progress_active);
	pthread_mutex_unlock(&progress_lock);
}
