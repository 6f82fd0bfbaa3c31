#include "import/host_spool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/zero.h"

/* Bytes gather here before they go to the store, so that the store holds
 * few large pieces however finely the stream is cut up. */
#define PENDING_BYTES (1024 * 1024)

void host_spool_init(struct host_spool *spool, uint64_t memory_budget,
                     const char *directory)
{
    memset(spool, 0, sizeof *spool);
    byte_store_init(&spool->store, memory_budget, directory,
                    "what arrives before its table");
}

void host_spool_clear(struct host_spool *spool)
{
    for (size_t i = 0; i < spool->extents.len; i++)
        byte_store_release(&spool->store, &spool->extents.ptr[i].piece);
    spool->extents.len = 0;
    spool->pending_used = 0;
    spool->held_bytes = 0;
    /* The file stays open and keeps its bytes: the store only appends. */
}

void host_spool_free(struct host_spool *spool)
{
    host_spool_clear(spool);
    host_spool_extents_free(&spool->extents);
    free(spool->pending);
    spool->pending = NULL;
    byte_store_close(&spool->store);
}

static int flush_pending(struct host_spool *spool, struct q2s_error *err)
{
    struct host_spool_extent extent = {
        .host_start = spool->pending_start,
        .length = spool->pending_used,
    };

    if (spool->pending_used == 0)
        return 0;
    if (q2s_is_zero_unaligned(spool->pending, spool->pending_used))
        extent.zero = true;
    else if (byte_store_put(&spool->store, spool->pending,
                            spool->pending_used, &extent.piece, err) < 0)
        return -1;
    if (host_spool_extents_append(&spool->extents, extent) < 0) {
        byte_store_release(&spool->store, &extent.piece);
        return q2s_error_set(err, ENOMEM, "out of memory");
    }
    spool->pending_start += spool->pending_used;
    spool->pending_used = 0;
    return 0;
}

int host_spool_add(struct host_spool *spool, uint64_t host_start,
                   const uint8_t *data, size_t length, struct q2s_error *err)
{
    if (!spool->pending) {
        spool->pending = malloc(PENDING_BYTES);
        if (!spool->pending)
            return q2s_error_set(err, ENOMEM, "out of memory");
    }
    while (length > 0) {
        uint32_t n;

        if (spool->pending_used > 0 &&
            spool->pending_start + spool->pending_used != host_start &&
            flush_pending(spool, err) < 0)
            return -1;
        if (spool->pending_used == 0)
            spool->pending_start = host_start;
        n = PENDING_BYTES - spool->pending_used;
        if (n > length)
            n = (uint32_t)length;
        memcpy(spool->pending + spool->pending_used, data, n);
        spool->pending_used += n;
        spool->bytes_kept += n;
        spool->held_bytes += n;
        if (spool->held_bytes > spool->peak_bytes)
            spool->peak_bytes = spool->held_bytes;
        data += n;
        host_start += n;
        length -= n;
        if (spool->pending_used == PENDING_BYTES &&
            flush_pending(spool, err) < 0)
            return -1;
    }
    return 0;
}

/* The first extent that ends after host_offset, or extents.len. */
static size_t find_extent(const struct host_spool *spool, uint64_t host_offset)
{
    size_t low = 0, high = spool->extents.len;

    while (low < high) {
        size_t mid = low + (high - low) / 2;
        const struct host_spool_extent *e = &spool->extents.ptr[mid];

        if (e->host_start + e->length <= host_offset)
            low = mid + 1;
        else
            high = mid;
    }
    return low;
}

int host_spool_read(struct host_spool *spool, uint64_t host_start,
                    uint32_t length, uint8_t *buf, uint64_t *missing,
                    struct q2s_error *err)
{
    size_t i = find_extent(spool, host_start);

    while (length > 0) {
        const struct host_spool_extent *e =
            i < spool->extents.len ? &spool->extents.ptr[i] : NULL;
        uint64_t pending_end = spool->pending_start + spool->pending_used;
        uint32_t n, within;

        if (e && e->host_start <= host_start) {
            within = (uint32_t)(host_start - e->host_start);
            n = e->length - within;
            if (n > length)
                n = length;
            if (e->zero)
                memset(buf, 0, n);
            else if (byte_store_get(&spool->store, &e->piece, within, n, buf,
                                    err) < 0)
                return -1;
            i++;
        } else if (spool->pending_used > 0 &&
                   spool->pending_start <= host_start &&
                   host_start < pending_end) {
            within = (uint32_t)(host_start - spool->pending_start);
            n = spool->pending_used - within;
            if (n > length)
                n = length;
            memcpy(buf, spool->pending + within, n);
        } else {
            *missing = host_start;
            return 1;
        }
        buf += n;
        host_start += n;
        length -= n;
    }
    return 0;
}

uint64_t host_spool_end(const struct host_spool *spool)
{
    const struct host_spool_extent *last;

    if (spool->pending_used > 0)
        return spool->pending_start + spool->pending_used;
    if (spool->extents.len == 0)
        return 0;
    last = &spool->extents.ptr[spool->extents.len - 1];
    return last->host_start + last->length;
}
