/*
 * deflate-survey: which compressor for qcow2 compressed clusters?
 * Usage: deflate-survey [--limit=MiB] IMAGE CLUSTER_SIZE CANDIDATE...
 *   CANDIDATE: zlib:N (0-9), isal:N (0-3), zstd:N, libdeflate:N (0-12)
 * Build: make survey-deps deflate-survey
 *
 * Keeps in memory the clusters of IMAGE's data extents that are not all
 * zero (the first MiB of them with --limit).  Each candidate compresses
 * every cluster into at most CLUSTER_SIZE - 1 bytes, as QEMU does; one that
 * does not fit is stored raw, in full.  One line per candidate: clusters,
 * MiB in and out, ratio, clusters stored compressed, single-thread speed
 * (thread CPU time of the compression calls only), and for deflate the
 * clusters stored compressed that fail each of two decoders:
 *   qemu    QEMU's recipe: inflateInit2(-12), one inflate(Z_FINISH) into a
 *           cluster-sized buffer, Z_STREAM_END or Z_BUF_ERROR when full.
 *   strict  zlib's inflateBack() with a real 4 KiB window, which rejects
 *           any match distance above 4096.
 * qcow2 requires a 4 KiB window, but a single-call inflate() checks
 * distances only against the output written in that call, here the whole
 * cluster, so a 32 KiB-window stream (libdeflate's) passes the qemu decoder
 * while a decoder that keeps only the 4 KiB the format allows fails on it.
 *
 * Exits 0 on success, 1 with a message on error, 2 on a usage error.
 */
#define _GNU_SOURCE
#define ZLIB_CONST
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <isa-l.h>
#include <libdeflate.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#define WINDOW_BITS 12  /* QEMU's 4 KiB deflate window */
#define MIB (1024.0 * 1024.0)

enum kind { ZLIB, ISAL, ZSTD, LIBDEFLATE };
static const char *const kind_names[] = { "zlib", "isal", "zstd", "libdeflate" };
static const uint32_t isal_level_buf_sizes[] = {
    ISAL_DEF_LVL0_DEFAULT, ISAL_DEF_LVL1_DEFAULT, ISAL_DEF_LVL2_DEFAULT,
    ISAL_DEF_LVL3_DEFAULT };

struct candidate { enum kind kind; int level; const char *name; };

/* The clusters of the image that are not all zero, back to back. */
struct clusters { uint8_t *data; size_t count, capacity, size; };

/* Heap-allocated: struct isal_zstream alone is 80 KiB. */
struct compressor {
    const struct candidate *cand;
    z_stream zlib;
    struct isal_zstream isal;
    ZSTD_CCtx *zstd;
    struct libdeflate_compressor *libdeflate;
    uint8_t out[];  /* one cluster */
};

struct verifier {
    z_stream qemu, strict;
    size_t size, used;  /* cluster size; bytes the strict decoder wrote */
    uint8_t window[1 << WINDOW_BITS];
    uint8_t out[];      /* one cluster */
};

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
    va_list ap;

    fputs("deflate-survey: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

__attribute__((noreturn)) static void usage(const char *problem, const char *arg)
{
    if (problem)
        fprintf(stderr, "deflate-survey: %s '%s'\n", problem, arg);
    fputs("usage: deflate-survey [--limit=MiB] IMAGE CLUSTER_SIZE "
          "{zlib|isal|zstd|libdeflate}:LEVEL...\n", stderr);
    exit(2);
}

/* Reads the cluster at offset into the next free slot; keeps it unless zero. */
static void read_cluster(int fd, const char *path, off_t offset, struct clusters *c)
{
    if (c->count == c->capacity) {
        c->capacity = c->capacity ? 2 * c->capacity : 64;
        if (c->capacity > SIZE_MAX / c->size ||
            !(c->data = realloc(c->data, c->capacity * c->size)))
            die("cannot allocate %zu clusters", c->capacity);
    }
    uint8_t *slot = c->data + c->count * c->size;
    size_t done = 0;
    while (done < c->size) {
        ssize_t n = pread(fd, slot + done, c->size - done, offset + (off_t)done);

        if (n < 0 && errno != EINTR)
            die("cannot read '%s': %s", path, strerror(errno));
        if (n == 0)
            break;  /* the end of the image: the rest reads as zeros */
        done += n > 0 ? (size_t)n : 0;
    }
    memset(slot + done, 0, c->size - done);
    if (slot[0] != 0 || memcmp(slot, slot + 1, c->size - 1) != 0)
        c->count++;
}

static void load_clusters(const char *path, uint64_t limit, struct clusters *c)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    off_t next = 0;  /* the first cluster not read yet */
    struct stat st;

    if (fd < 0 || fstat(fd, &st) != 0)
        die("cannot open '%s': %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))  /* elsewhere SEEK_DATA fails or never moves */
        die("'%s' is not a regular file", path);
    while (!limit || c->count * c->size < limit) {
        off_t data = lseek(fd, next, SEEK_DATA);
        if (data < 0 && errno == ENXIO)
            break;  /* no data after next */
        off_t hole = data < 0 ? -1 : lseek(fd, data, SEEK_HOLE);
        if (hole < 0)
            die("cannot find the data of '%s': %s", path, strerror(errno));
        if (data - data % (off_t)c->size > next)
            next = data - data % (off_t)c->size;
        for (; next < hole && (!limit || c->count * c->size < limit);
             next += (off_t)c->size)
            read_cluster(fd, path, next, c);
    }
    if (close(fd) != 0)
        die("cannot close '%s': %s", path, strerror(errno));
}

static struct compressor *compressor_new(const struct candidate *cand, size_t size)
{
    struct compressor *comp = calloc(1, sizeof *comp + size);
    int ok = comp != NULL;

    if (ok && cand->kind == ZLIB)
        ok = deflateInit2(&comp->zlib, cand->level, Z_DEFLATED, -WINDOW_BITS,
                          9, Z_DEFAULT_STRATEGY) == Z_OK;
    if (ok && cand->kind == ISAL) {
        isal_deflate_init(&comp->isal);
        comp->isal.gzip_flag = IGZIP_DEFLATE;
        comp->isal.hist_bits = WINDOW_BITS;
        comp->isal.level = (uint32_t)cand->level;
        comp->isal.level_buf_size = isal_level_buf_sizes[cand->level];
        /* Zeroed: level 3 reads hash entries it has not written yet. */
        comp->isal.level_buf = calloc(1, comp->isal.level_buf_size);
        comp->isal.end_of_stream = 1;
        ok = comp->isal.level_buf || !comp->isal.level_buf_size;  /* none at 0 */
    }
    if (ok && cand->kind == ZSTD)
        ok = (comp->zstd = ZSTD_createCCtx()) != NULL &&
             !ZSTD_isError(ZSTD_CCtx_setParameter(comp->zstd,
                                                  ZSTD_c_compressionLevel, cand->level));
    if (ok && cand->kind == LIBDEFLATE)
        ok = (comp->libdeflate = libdeflate_alloc_compressor(cand->level)) != NULL;
    if (!ok)
        die("cannot set up %s", cand->name);
    comp->cand = cand;
    return comp;
}

static void compressor_free(struct compressor *comp)
{
    if (comp->cand->kind == ZLIB)
        deflateEnd(&comp->zlib);
    free(comp->isal.level_buf);
    ZSTD_freeCCtx(comp->zstd);
    libdeflate_free_compressor(comp->libdeflate);
    free(comp);
}

/* Compresses into comp->out; returns the size, or 0 if not below size. */
static size_t compress_cluster(struct compressor *comp, const uint8_t *in, size_t size)
{
    uint8_t *out = comp->out;

    if (comp->cand->kind == ZLIB) {
        z_stream *s = &comp->zlib;
        if (deflateReset(s) != Z_OK)
            die("zlib: cannot reset the stream");
        s->next_in = in;
        s->avail_in = (uInt)size;
        s->next_out = out;
        s->avail_out = (uInt)(size - 1);
        int ret = deflate(s, Z_FINISH);
        if (ret != Z_STREAM_END && ret != Z_OK && ret != Z_BUF_ERROR)
            die("zlib: %s", s->msg ? s->msg : "error");
        return ret == Z_STREAM_END ? size - 1 - s->avail_out : 0;
    }
    if (comp->cand->kind == ISAL) {
        struct isal_zstream *s = &comp->isal;
        isal_deflate_reset(s);  /* keeps the settings of compressor_new() */
        s->next_in = (uint8_t *)(uintptr_t)in;
        s->avail_in = (uint32_t)size;
        s->next_out = out;
        s->avail_out = (uint32_t)(size - 1);
        if (isal_deflate(s) != COMP_OK)
            die("isal: deflate failed");
        /* Not at the end: the output filled up. */
        return s->internal_state.state == ZSTATE_END ? s->total_out : 0;
    }
    if (comp->cand->kind == ZSTD) {
        size_t ret = ZSTD_compress2(comp->zstd, out, size - 1, in, size);
        if (ZSTD_isError(ret) && ZSTD_getErrorCode(ret) != ZSTD_error_dstSize_tooSmall)
            die("zstd: %s", ZSTD_getErrorName(ret));
        return ZSTD_isError(ret) ? 0 : ret;
    }
    return libdeflate_deflate_compress(comp->libdeflate, in, size, out, size - 1);
}

/* inflateBack() callbacks: all input is given up front, and the output
 * must fit in the cluster buffer. */
static unsigned no_more_input(void *opaque, const unsigned char **buf)
{
    (void)opaque;
    *buf = NULL;
    return 0;
}

static int take_output(void *opaque, unsigned char *buf, unsigned len)
{
    struct verifier *v = opaque;

    if (len > v->size - v->used)
        return 1;
    memcpy(v->out + v->used, buf, len);
    v->used += len;
    return 0;
}

/* Decodes comp both ways; counts in fails[0] and fails[1] the failures. */
static void check_cluster(struct verifier *v, const uint8_t *comp, size_t len,
                          const uint8_t *orig, size_t fails[2])
{
    z_stream *q = &v->qemu;

    if (inflateReset(q) != Z_OK)
        die("zlib: cannot reset the inflate stream");
    q->next_in = comp;
    q->avail_in = (uInt)len;
    q->next_out = v->out;
    q->avail_out = (uInt)v->size;
    int ret = inflate(q, Z_FINISH);
    /* Z_BUF_ERROR: QEMU passes whole sectors, so input may be left over. */
    fails[0] += !((ret == Z_STREAM_END || ret == Z_BUF_ERROR) && q->avail_out == 0 &&
                  memcmp(v->out, orig, v->size) == 0);

    v->strict.next_in = comp;
    v->strict.avail_in = (uInt)len;
    v->used = 0;
    ret = inflateBack(&v->strict, no_more_input, NULL, take_output, v);
    fails[1] += !(ret == Z_STREAM_END && v->used == v->size &&
                  memcmp(v->out, orig, v->size) == 0);
}

static double thread_cpu_seconds(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        die("cannot read the thread CPU time: %s", strerror(errno));
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Compresses every cluster with one candidate and prints its line. */
static void survey(const struct candidate *cand, const struct clusters *c,
                   struct verifier *v)
{
    struct compressor *comp = compressor_new(cand, c->size);
    size_t compressed = 0, fails[2] = { 0, 0 };  /* qemu, strict */
    double cpu_seconds = 0, in_bytes = (double)c->count * (double)c->size;
    uint64_t out_bytes = 0;

    for (size_t i = 0; i < c->count; i++) {
        const uint8_t *in = c->data + i * c->size;
        double start = thread_cpu_seconds();
        size_t len = compress_cluster(comp, in, c->size);

        cpu_seconds += thread_cpu_seconds() - start;
        out_bytes += len ? len : c->size;
        if (!len)
            continue;  /* stored raw: no decoder ever sees it */
        compressed++;
        if (cand->kind != ZSTD)
            check_cluster(v, comp->out, len, in, fails);
    }
    printf("%-13s clusters=%zu in=%.1fMiB out=%.1fMiB ratio=%.4f compressed=%zu "
           "speed=%.1fMB/s", cand->name, c->count, in_bytes / MIB,
           (double)out_bytes / MIB, (double)out_bytes / in_bytes, compressed,
           cpu_seconds > 0 ? in_bytes / 1e6 / cpu_seconds : 0.0);
    if (cand->kind == ZSTD)
        printf(" fail_qemu=n/a fail_strict4k=n/a\n");
    else
        printf(" fail_qemu=%zu fail_strict4k=%zu\n", fails[0], fails[1]);
    if (fflush(stdout) == EOF || ferror(stdout))
        die("cannot write standard output: %s", strerror(errno));
    compressor_free(comp);
}

static int parse_long(const char *s, long min, long max, long *value)
{
    char *end;

    errno = 0;
    *value = strtol(s, &end, 10);
    return errno == 0 && end != s && *end == '\0' && *value >= min && *value <= max;
}

static struct candidate parse_candidate(const char *arg)
{
    const char *colon = strchr(arg, ':');
    size_t name_len = colon ? (size_t)(colon - arg) : 0;
    long level;

    for (int k = ZLIB; colon && k <= LIBDEFLATE; k++) {
        long min = k == ZSTD ? ZSTD_minCLevel() : 0;
        long max = k == ZLIB ? 9 : k == ISAL ? 3 : k == ZSTD ? ZSTD_maxCLevel() : 12;

        if (strlen(kind_names[k]) == name_len &&
            strncmp(arg, kind_names[k], name_len) == 0 &&
            parse_long(colon + 1, min, max, &level))
            return (struct candidate){ (enum kind)k, (int)level, arg };
    }
    usage("invalid candidate", arg);
}

int main(int argc, char **argv)
{
    struct candidate *cands = calloc((size_t)argc, sizeof *cands);
    struct clusters c = { 0 };
    struct verifier *v;
    const char *image = NULL;
    uint64_t limit = 0;
    size_t count = 0;
    long n;

    if (!cands)
        die("cannot allocate %d candidates", argc);
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--limit=", 8) == 0 &&
            parse_long(argv[i] + 8, 1, 1L << 30, &n))
            limit = (uint64_t)n << 20;
        else if (argv[i][0] == '-')
            usage("invalid option", argv[i]);
        else if (!image)
            image = argv[i];
        else if (c.size)
            cands[count++] = parse_candidate(argv[i]);
        else if (parse_long(argv[i], 512, 2097152, &n) && !(n & (n - 1)))
            c.size = (size_t)n;
        else
            usage("invalid cluster size (a power of two, 512 to 2097152)", argv[i]);
    }
    if (!count)
        usage(NULL, NULL);

    load_clusters(image, limit, &c);
    if (!c.count)
        die("'%s' has no data other than zeros", image);
    if (!(v = calloc(1, sizeof *v + c.size)) ||
        inflateInit2(&v->qemu, -WINDOW_BITS) != Z_OK ||
        inflateBackInit(&v->strict, WINDOW_BITS, v->window) != Z_OK)
        die("cannot set up the decoders");
    v->size = c.size;
    printf("# zlib %s, zstd %s, isa-l %d.%d.%d, libdeflate %s\n", zlibVersion(),
           ZSTD_versionString(), ISAL_MAJOR_VERSION, ISAL_MINOR_VERSION,
           ISAL_PATCH_VERSION, LIBDEFLATE_VERSION_STRING);
    for (size_t i = 0; i < count; i++)
        survey(&cands[i], &c, v);

    inflateEnd(&v->qemu);
    inflateBackEnd(&v->strict);
    free(v);
    free(c.data);
    free(cands);
    return 0;
}
