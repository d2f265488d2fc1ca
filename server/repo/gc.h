/*
 * gc.h - garbage collection: mark every chunk the remaining snapshots
 * use, sweep the index entries of the others, and rewrite (repack) the
 * packs whose dead share is above a threshold, deleting each old pack only
 * after its live records are synced in a new pack and the index points at
 * them. The mark set is a bloom filter of bounded size (markset.h): the
 * memory of a collection does not grow with the chunk count beyond it. Safe while the server serves: see store.h ("Collection support")
 * and docs/OPERATIONS.md ("Garbage collection") for the invariants.
 */
#ifndef SRV_GC_H
#define SRV_GC_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>
#include "snapshots.h"
#include "store.h"

#define GC_DEFAULT_THRESHOLD 30    /* percent of a pack that is dead */

struct gc_opts {
	bool dry_run;              /* report only; change nothing */
	unsigned threshold;        /* repack a pack this % dead (1-100) */
	/* When the oldest backup in progress began (store.h, "Collection
	 * support"): chunks vouched for since then are kept. NULL keeps
	 * every generation (safe, frees less). */
	store_since_cb since;
	void *since_payload;
	/* The mark filter's cap in bytes (0: MARKSET_DEFAULT_MAX). Below
	 * MARKSET_BITS_PER_ID bits a chunk of the index, more dead chunks
	 * are kept (until a later run, with another seed). */
	size_t filter_max_bytes;
	/* A dry run only (a real one ignores it): snapshots to leave
	 * unmarked, as if removed (a prune's plan: prune_plan_drops). */
	bool (*without)(void *payload, const char *id);
	void *without_payload;
};

struct gc_report {
	uint64_t snapshots;        /* marked from */
	uint64_t chunks_marked;    /* distinct chunks they use (estimated:
				    * low by the false positives) */
	uint64_t chunks_in_use;    /* unreferenced, kept: a backup used them */
	uint64_t chunks_removed;   /* index entries swept (or that would be) */
	uint64_t bytes_removed;    /* their plain bytes */
	uint64_t packs_deleted;    /* packs with nothing live, deleted */
	uint64_t packs_rewritten;  /* packs repacked */
	uint64_t chunks_moved;     /* live records copied by the repack */
	uint64_t packs_kept_damaged; /* candidates left alone: damaged */
	uint64_t pack_bytes_before, pack_bytes_after;
	uint64_t bytes_freed;      /* dry run: an estimate */
	/* The vouch journal at the end of the run (vouch.h). */
	unsigned vouch_generations;  /* generations kept */
	uint64_t vouch_ids;          /* ids they hold (filters: estimated) */
	bool vouch_filtered;         /* some are bloom filters */
	/* A shared pool (several front-ends): nothing was deleted because
	 * another front-end had backups in progress (why says which). */
	bool deferred;
	char deferred_why[160];
	/* The mark filter: its memory and its false-positive rate, the
	 * share of unreferenced chunks this run keeps by mistake. */
	uint64_t filter_bytes;
	double filter_fp_rate;
	double seconds;
};

/*
 * Runs one collection; what clients do meanwhile cannot cancel it. -EBUSY
 * if one is running; -EBADMSG naming the snapshot when a catalog cannot
 * be read (nothing deleted: its chunks are unknown). Other errors leave
 * the repository consistent (see gc.c).
 */
int gc_run(struct store *st, struct snapshots *snaps,
	   const struct gc_opts *o, struct gc_report *r);

/* The report as JSON (NULL on out of memory) or as text lines. */
json_t *gc_report_json(const struct gc_report *r, bool dry_run);
void gc_report_print(FILE *f, const struct gc_report *r, bool dry_run);

#endif
