/* pool.h: a pool of memory blocks in size classes (pool.c), for a store
 * whose many blocks grow and shrink as it runs. Internal, not thread-safe:
 * the owner serialises all calls. */
#ifndef IC_POOL_H
#define IC_POOL_H

#include "internal.h"

typedef struct ic__pool ic__pool;

/* An empty pool; maps nothing until the first block. */
ic__pool *ic__pool_create(void);

/* A 64-byte aligned block of at least bytes (>= 1), contents undefined;
 * aborts when memory runs out. Give it back with ic__pool_release and the
 * same bytes. */
void *ic__pool_alloc(ic__pool *p, size_t bytes);

/* Gives block b of old_bytes a size of bytes, keeping its first keep
 * bytes (keep <= old_bytes); returns it, perhaps moved. Blocks above 1 MiB
 * move by remapping their pages (nothing is copied); others are copied
 * unless their class stays the same. */
void *ic__pool_resize(ic__pool *p, void *b, size_t old_bytes, size_t bytes, size_t keep);

/* Takes back a block from ic__pool_alloc(p, bytes) for reuse (b NULL: no-op). */
void ic__pool_release(ic__pool *p, void *b, size_t bytes);

/* Bytes the pool holds from the kernel (free blocks included). */
size_t ic__pool_bytes(const ic__pool *p);

/* Bytes of the blocks handed out and not released (class sizes). */
size_t ic__pool_in_use(const ic__pool *p);

/* Bytes a block of bytes really occupies (its class size). */
size_t ic__pool_class_bytes(size_t bytes);

/* Unmaps everything. The owner releases every block first (blocks above
 * 1 MiB, and all blocks under AddressSanitizer, are mapped one by one).
 * NULL: no-op. */
void ic__pool_free(ic__pool *p);

#endif
