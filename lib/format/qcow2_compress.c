#include "format/qcow2_compress.h"

#include <errno.h>
#include <stdlib.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "error.h"

/* QEMU's qcow2_zlib_decompress() inflates with windowBits -12: a raw
 * stream whose matches reach back at most 4 KiB. */
#define QCOW2_ZLIB_WINDOW_BITS (-12)
#define ZLIB_MEM_LEVEL 9

struct q2s_compressor {
    enum q2s_compression type;
    uint32_t cluster_size;
    z_stream zlib;
    ZSTD_CCtx *zstd;
};

void q2s_compression_levels(enum q2s_compression type, int *min, int *max,
                            int *default_level)
{
    if (type == Q2S_COMPRESSION_ZSTD) {
        *min = ZSTD_minCLevel();
        *max = ZSTD_maxCLevel();
        *default_level = ZSTD_CLEVEL_DEFAULT;
    } else {
        *min = 1;
        *max = 9;
        *default_level = 6;  /* Z_DEFAULT_COMPRESSION, as QEMU */
    }
}

int q2s_compression_level(enum q2s_compression type, int level)
{
    int min, max, default_level;

    if (level != Q2S_COMPRESSION_LEVEL_DEFAULT)
        return level;
    q2s_compression_levels(type, &min, &max, &default_level);
    return default_level;
}

int q2s_compressor_new(enum q2s_compression type, int level,
                       uint32_t cluster_size, struct q2s_compressor **result,
                       struct q2s_error *err)
{
    struct q2s_compressor *c = calloc(1, sizeof *c);

    if (!c)
        return q2s_error_set_errno(err, ENOMEM, "cannot allocate a "
                                   "compressor");
    c->type = type;
    c->cluster_size = cluster_size;
    if (type == Q2S_COMPRESSION_ZSTD) {
        c->zstd = ZSTD_createCCtx();
        if (!c->zstd || ZSTD_isError(ZSTD_CCtx_setParameter(
                            c->zstd, ZSTD_c_compressionLevel, level))) {
            ZSTD_freeCCtx(c->zstd);
            free(c);
            return q2s_error_set(err, ENOMEM, "cannot set up zstd at level %d",
                                 level);
        }
    } else if (deflateInit2(&c->zlib, level, Z_DEFLATED,
                            QCOW2_ZLIB_WINDOW_BITS, ZLIB_MEM_LEVEL,
                            Z_DEFAULT_STRATEGY) != Z_OK) {
        free(c);
        return q2s_error_set(err, ENOMEM,
                             "cannot set up zlib at level %d", level);
    }
    *result = c;
    return 0;
}

void q2s_compressor_free(struct q2s_compressor *c)
{
    if (!c)
        return;
    if (c->type == Q2S_COMPRESSION_ZSTD)
        ZSTD_freeCCtx(c->zstd);
    else
        deflateEnd(&c->zlib);
    free(c);
}

/* Both write at most cluster_size - 1 bytes, as QEMU does: a cluster that
 * does not fit is better stored as it is. */
static int compress_zlib(struct q2s_compressor *c, const uint8_t *in,
                         uint8_t *out, struct q2s_error *err)
{
    z_stream *strm = &c->zlib;
    int ret;

    if (deflateReset(strm) != Z_OK)
        return q2s_error_set(err, EIO, "zlib: cannot reset the stream");
    strm->next_in = (Bytef *)(uintptr_t)in;
    strm->avail_in = c->cluster_size;
    strm->next_out = out;
    strm->avail_out = c->cluster_size - 1;
    ret = deflate(strm, Z_FINISH);
    if (ret == Z_STREAM_END)
        return (int)(c->cluster_size - 1 - strm->avail_out);
    if (ret == Z_OK || ret == Z_BUF_ERROR)
        return 0;  /* the output is full */
    return q2s_error_set(err, EIO, "zlib: %s", strm->msg ? strm->msg : "error");
}

static int compress_zstd(struct q2s_compressor *c, const uint8_t *in,
                         uint8_t *out, struct q2s_error *err)
{
    size_t ret = ZSTD_compress2(c->zstd, out, c->cluster_size - 1, in,
                                c->cluster_size);

    if (!ZSTD_isError(ret))
        return (int)ret;
    if (ZSTD_getErrorCode(ret) == ZSTD_error_dstSize_tooSmall)
        return 0;
    return q2s_error_set(err, EIO, "zstd: %s", ZSTD_getErrorName(ret));
}

int q2s_compress_cluster(struct q2s_compressor *c, const uint8_t *in,
                         uint8_t *out, struct q2s_error *err)
{
    if (c->type == Q2S_COMPRESSION_ZSTD)
        return compress_zstd(c, in, out, err);
    return compress_zlib(c, in, out, err);
}
