/* Compressed clusters inflated as QEMU inflates them (see
 * qcow2_decompress.h). */
#include "format/qcow2_decompress.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <zlib.h>
#include <zstd.h>

#include "format/qcow2_format.h"

/* A raw deflate stream whose matches reach back at most 4 KiB
 * (inflateInit2(-12) in qcow2_zlib_decompress()). */
#define QCOW2_ZLIB_WINDOW_BITS (-12)

struct qcow2_decompressor {
    uint8_t type;
    uint32_t cluster_size;
    bool zlib_ready;
    z_stream zlib;
    ZSTD_DCtx *zstd;
};

int qcow2_decompressor_new(uint8_t compression_type, uint32_t cluster_size,
                           struct qcow2_decompressor **result,
                           struct q2s_error *err)
{
    struct qcow2_decompressor *d;

    *result = NULL;
    if (compression_type != QCOW2_COMPRESSION_TYPE_ZLIB &&
        compression_type != QCOW2_COMPRESSION_TYPE_ZSTD)
        return q2s_error_set(err, EINVAL, "unknown compression type %u",
                             compression_type);
    d = calloc(1, sizeof *d);
    if (!d)
        return q2s_error_set_errno(err, ENOMEM, "cannot allocate a "
                                   "decompressor");
    d->type = compression_type;
    d->cluster_size = cluster_size;
    if (compression_type == QCOW2_COMPRESSION_TYPE_ZSTD) {
        d->zstd = ZSTD_createDCtx();
        if (!d->zstd) {
            free(d);
            return q2s_error_set_errno(err, ENOMEM, "cannot allocate a zstd "
                                       "decompressor");
        }
    } else {
        if (inflateInit2(&d->zlib, QCOW2_ZLIB_WINDOW_BITS) != Z_OK) {
            free(d);
            return q2s_error_set_errno(err, ENOMEM, "cannot allocate a zlib "
                                       "decompressor");
        }
        d->zlib_ready = true;
    }
    *result = d;
    return 0;
}

void qcow2_decompressor_free(struct qcow2_decompressor *d)
{
    if (!d)
        return;
    if (d->zlib_ready)
        inflateEnd(&d->zlib);
    ZSTD_freeDCtx(d->zstd);
    free(d);
}

/* Z_BUF_ERROR with the output full is success: the input may go on past
 * the stream's end (the descriptor counts whole sectors). */
static int inflate_zlib(struct qcow2_decompressor *d, const uint8_t *in,
                        size_t length, uint8_t *out, struct q2s_error *err)
{
    int ret;

    if (inflateReset(&d->zlib) != Z_OK)
        return q2s_error_set(err, EPROTO, "cannot reset the zlib stream");
    d->zlib.next_in = (Bytef *)in;
    d->zlib.avail_in = length > UINT32_MAX ? UINT32_MAX : (uInt)length;
    d->zlib.next_out = out;
    d->zlib.avail_out = d->cluster_size;
    ret = inflate(&d->zlib, Z_FINISH);
    if ((ret == Z_STREAM_END || ret == Z_BUF_ERROR) &&
        d->zlib.avail_out == 0)
        return 0;
    if (ret == Z_MEM_ERROR)
        return q2s_error_set_errno(err, ENOMEM, "inflating a cluster");
    return q2s_error_set(err, EPROTO, "a zlib compressed cluster is corrupt "
                         "(%s after %lu of %u bytes)",
                         ret == Z_STREAM_END ? "it ends" : "zlib fails",
                         (unsigned long)(d->cluster_size - d->zlib.avail_out),
                         d->cluster_size);
}

/* Frames one after the other until the cluster is full, each decoded in
 * full, and progress at every step (qcow2_zstd_decompress()). */
static int inflate_zstd(struct qcow2_decompressor *d, const uint8_t *in,
                        size_t length, uint8_t *out, struct q2s_error *err)
{
    ZSTD_outBuffer output = { out, d->cluster_size, 0 };
    ZSTD_inBuffer input = { in, length, 0 };
    size_t ret = 0;

    ZSTD_DCtx_reset(d->zstd, ZSTD_reset_session_only);
    while (output.pos < output.size) {
        size_t in_before = input.pos, out_before = output.pos;

        ret = ZSTD_decompressStream(d->zstd, &output, &input);
        if (ZSTD_isError(ret))
            return q2s_error_set(err, EPROTO, "a zstd compressed cluster is "
                                 "corrupt (%s)", ZSTD_getErrorName(ret));
        if (input.pos <= in_before && output.pos <= out_before)
            return q2s_error_set(err, EPROTO, "a zstd compressed cluster "
                                 "ends after %zu of %u bytes", output.pos,
                                 d->cluster_size);
    }
    /* A frame not finished with the cluster full holds more than a
     * cluster. */
    if (ret > 0)
        return q2s_error_set(err, EPROTO, "a zstd compressed cluster "
                             "inflates to more than a cluster");
    return 0;
}

int qcow2_decompress_cluster(struct qcow2_decompressor *d, const uint8_t *in,
                             size_t length, uint8_t *out,
                             struct q2s_error *err)
{
    if (d->type == QCOW2_COMPRESSION_TYPE_ZSTD)
        return inflate_zstd(d, in, length, out, err);
    return inflate_zlib(d, in, length, out, err);
}
