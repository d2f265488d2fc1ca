/*
 * ratelimit.h - a token bucket per client name: `rate` units a second,
 * up to `burst` saved up. Used for the ids a client may ask about with
 * /chunks/missing (docs/SECURITY.md, "Dedup domains"), so that guessing
 * many candidate chunks takes time even within a domain.
 *
 * A request of n units passes when the bucket holds min(n, burst); it then
 * takes all n, so the bucket may go below zero and a request larger than
 * the burst passes once the bucket is full and pays for itself afterwards.
 * Thread-safe. The table holds one bucket per client name seen; names are
 * those of authenticated clients, so it grows only with clients.json.
 */
#ifndef SRV_RATELIMIT_H
#define SRV_RATELIMIT_H

#include <stdint.h>

struct ratelimit;

/* rate 0 turns the limiter off (every request passes). -ENOMEM. */
int ratelimit_new(struct ratelimit **out, double rate, double burst);
/* NULL is a no-op. */
void ratelimit_free(struct ratelimit *r);
/*
 * Takes n units from the bucket of `name` at monotonic time `now`
 * (seconds). 0 if they were there; -EAGAIN if not, with *retry_after the
 * whole seconds (>= 1) after which the same request passes. -ENOMEM.
 */
int ratelimit_take(struct ratelimit *r, const char *name, double n,
		   double now, unsigned *retry_after);

#endif
