/* The public interface, as a program outside the tree sees it (only
 * <qcow2-to-stdout.h>): the version, the options and their rules, and
 * errors.  test_api_pread.c checks q2s_pread() against the stream;
 * test_api_sources.c the inputs, cancellation and the error codes. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <qcow2-to-stdout.h>

#include "api_test.h"

/* q2s_source_options_get_format(), looked up at run time: the header
 * declares it, but a library that does not export it would fail the link
 * of this whole file rather than one test. */
static const char *(*get_format)(const struct q2s_source_options *);

/* Every function of the header, as the shared library must export it. */
static void test_exports(void **state)
{
    static const char *const names[] = {
        "q2s_version_number", "q2s_version_string", "q2s_error_code",
        "q2s_error_message", "q2s_error_free", "q2s_options_new",
        "q2s_options_free", "q2s_options_set_cluster_size",
        "q2s_options_get_cluster_size", "q2s_options_set_refcount_bits",
        "q2s_options_get_refcount_bits", "q2s_options_set_data_file",
        "q2s_options_get_data_file", "q2s_options_get_data_file_raw",
        "q2s_options_set_compression", "q2s_options_get_compression",
        "q2s_options_get_compression_level", "q2s_options_set_threads",
        "q2s_options_get_threads", "q2s_options_set_compress_cache",
        "q2s_options_get_compress_cache", "q2s_options_set_spool_memory",
        "q2s_options_get_spool_memory", "q2s_options_set_reread",
        "q2s_options_get_reread", "q2s_options_set_one_pass",
        "q2s_options_get_one_pass", "q2s_options_check",
        "q2s_source_options_new", "q2s_source_options_free",
        "q2s_source_options_set_format", "q2s_source_options_get_format",
        "q2s_source_options_set_untrusted",
        "q2s_source_options_get_untrusted", "q2s_source_options_set_timeout",
        "q2s_source_options_get_timeout",
        "q2s_source_options_set_connections",
        "q2s_source_options_get_connections",
        "q2s_source_options_set_cancel_flag", "q2s_source_open",
        "q2s_input_is_nbd_uri", "q2s_source_from_fd",
        "q2s_source_from_callbacks", "q2s_source_get_size",
        "q2s_source_cancel", "q2s_source_close", "q2s_plan_build",
        "q2s_plan_free", "q2s_plan_get_image_size",
        "q2s_plan_get_virtual_size", "q2s_plan_get_input_size",
        "q2s_plan_get_cluster_size", "q2s_plan_get_refcount_bits",
        "q2s_plan_get_data_clusters", "q2s_plan_get_compressed_clusters",
        "q2s_plan_get_compressed_bytes", "q2s_plan_get_l1_entries",
        "q2s_plan_get_l2_tables", "q2s_plan_get_refcount_blocks",
        "q2s_plan_get_refcount_table_clusters",
        "q2s_plan_get_total_clusters", "q2s_render", "q2s_pread",
    };
    int missing = 0;

    (void)state;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!dlsym(RTLD_DEFAULT, names[i])) {
            print_error("%s is declared but not exported\n", names[i]);
            missing++;
        }
    }
    assert_int_equal(missing, 0);
}

static void test_version(void **state)
{
    char expected[32];

    (void)state;
    assert_int_equal(q2s_version_number(), Q2S_VERSION_NUMBER);
    assert_string_equal(q2s_version_string(), Q2S_VERSION);
    /* The number and the string say the same version. */
    snprintf(expected, sizeof expected, "%d.%d.%d", Q2S_VERSION_MAJOR,
             Q2S_VERSION_MINOR, Q2S_VERSION_MICRO);
    assert_string_equal(Q2S_VERSION, expected);
    assert_int_equal(Q2S_VERSION_NUMBER, Q2S_VERSION_MAJOR * 10000 +
                                             Q2S_VERSION_MINOR * 100 +
                                             Q2S_VERSION_MICRO);
}

static void test_option_defaults(void **state)
{
    struct q2s_options *options = q2s_options_new();
    struct q2s_source_options *source_options = q2s_source_options_new();

    (void)state;
    assert_non_null(options);
    assert_non_null(source_options);
    assert_int_equal(q2s_options_get_cluster_size(options), 65536);
    assert_int_equal(q2s_options_get_cluster_size(options),
                     Q2S_DEFAULT_CLUSTER_SIZE);
    assert_int_equal(q2s_options_get_refcount_bits(options), 16);
    assert_null(q2s_options_get_data_file(options));
    assert_false(q2s_options_get_data_file_raw(options));
    assert_int_equal(q2s_options_get_compression(options),
                     Q2S_COMPRESSION_NONE);
    assert_int_equal(q2s_options_get_compression_level(options),
                     Q2S_COMPRESSION_LEVEL_DEFAULT);
    assert_int_equal(q2s_options_get_threads(options), 1);
    assert_int_equal(q2s_options_get_compress_cache(options), 0);
    EXPECT_OK(q2s_options_check(options, NULL, NULL, &error));

    assert_false(q2s_source_options_get_untrusted(source_options));
    assert_int_equal(q2s_source_options_get_timeout(source_options), 0);

    q2s_options_free(options);
    q2s_source_options_free(source_options);
    /* NULL is allowed. */
    q2s_options_free(NULL);
    q2s_source_options_free(NULL);
    q2s_error_free(NULL);
}

static void test_cluster_size(void **state)
{
    static const uint32_t good[] = { 512, 1024, 4096, 65536, 1048576,
                                     2097152 };
    static const uint32_t bad[] = { 0, 1, 256, 511, 513, 1000, 65535,
                                    65537, 3 * 65536, 4194304, 2097153,
                                    UINT32_MAX, 1u << 31 };
    struct q2s_options *options = q2s_options_new();

    (void)state;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        EXPECT_OK(q2s_options_set_cluster_size(options, good[i], &error));
        assert_int_equal(q2s_options_get_cluster_size(options), good[i]);
    }
    EXPECT_OK(q2s_options_set_cluster_size(options, 4096, &error));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        EXPECT_FAIL(EINVAL,
                    q2s_options_set_cluster_size(options, bad[i], &error));
        assert_int_equal(q2s_options_set_cluster_size(options, bad[i], NULL),
                         -1);
        assert_int_equal(q2s_options_get_cluster_size(options), 4096);
    }
    q2s_options_free(options);
}

static void test_refcount_bits(void **state)
{
    static const uint32_t bad[] = { 0, 3, 5, 6, 12, 48, 96, 128, 256,
                                    UINT32_MAX, 1u << 31 };
    struct q2s_options *options = q2s_options_new();

    (void)state;
    for (uint32_t bits = 1; bits <= 64; bits *= 2) {
        EXPECT_OK(q2s_options_set_refcount_bits(options, bits, &error));
        assert_int_equal(q2s_options_get_refcount_bits(options), bits);
    }
    EXPECT_OK(q2s_options_set_refcount_bits(options, 8, &error));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        EXPECT_FAIL(EINVAL,
                    q2s_options_set_refcount_bits(options, bad[i], &error));
        assert_int_equal(q2s_options_set_refcount_bits(options, bad[i], NULL),
                         -1);
        assert_int_equal(q2s_options_get_refcount_bits(options), 8);
    }
    q2s_options_free(options);
}

static void test_threads(void **state)
{
    static const uint32_t bad[] = { 0, Q2S_MAX_THREADS + 1, 4096,
                                    UINT32_MAX };
    struct q2s_options *options = q2s_options_new();

    (void)state;
    assert_int_equal(Q2S_MAX_THREADS, 1024);
    EXPECT_OK(q2s_options_set_threads(options, 1024, &error));
    assert_int_equal(q2s_options_get_threads(options), 1024);
    EXPECT_OK(q2s_options_set_threads(options, 1, &error));
    assert_int_equal(q2s_options_get_threads(options), 1);
    EXPECT_OK(q2s_options_set_threads(options, 7, &error));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        EXPECT_FAIL(EINVAL, q2s_options_set_threads(options, bad[i], &error));
        assert_int_equal(q2s_options_set_threads(options, bad[i], NULL), -1);
        assert_int_equal(q2s_options_get_threads(options), 7);
    }
    q2s_options_free(options);
}

/* The level is refused, and the options keep zstd at level 5. */
static void refuse_level(struct q2s_options *options,
                         enum q2s_compression compression, int level)
{
    EXPECT_FAIL(EINVAL,
                q2s_options_set_compression(options, compression, level,
                                            &error));
    assert_int_equal(q2s_options_set_compression(options, compression, level,
                                                 NULL),
                     -1);
    assert_int_equal(q2s_options_get_compression(options),
                     Q2S_COMPRESSION_ZSTD);
    assert_int_equal(q2s_options_get_compression_level(options), 5);
}

static void accept_level(struct q2s_options *options,
                         enum q2s_compression compression, int level)
{
    EXPECT_OK(q2s_options_set_compression(options, compression, level,
                                          &error));
    assert_int_equal(q2s_options_get_compression(options), compression);
    assert_int_equal(q2s_options_get_compression_level(options), level);
    EXPECT_OK(q2s_options_check(options, NULL, NULL, &error));
    EXPECT_OK(q2s_options_set_compression(options, Q2S_COMPRESSION_ZSTD, 5,
                                          &error));
}

static void test_compression_levels(void **state)
{
    struct q2s_options *options = q2s_options_new();

    (void)state;
    EXPECT_OK(q2s_options_set_compression(options, Q2S_COMPRESSION_ZSTD, 5,
                                          &error));
    for (int level = 1; level <= 9; level++)
        accept_level(options, Q2S_COMPRESSION_ZLIB, level);
    accept_level(options, Q2S_COMPRESSION_ZLIB, Q2S_COMPRESSION_LEVEL_DEFAULT);
    refuse_level(options, Q2S_COMPRESSION_ZLIB, 0);
    refuse_level(options, Q2S_COMPRESSION_ZLIB, 10);
    refuse_level(options, Q2S_COMPRESSION_ZLIB, -1);
    refuse_level(options, Q2S_COMPRESSION_ZLIB, INT_MAX);
    refuse_level(options, Q2S_COMPRESSION_ZLIB, INT_MIN + 1);

    /* zstd: ZSTD_minCLevel() (-ZSTD_TARGETLENGTH_MAX) to ZSTD_maxCLevel(). */
    accept_level(options, Q2S_COMPRESSION_ZSTD, -131072);
    accept_level(options, Q2S_COMPRESSION_ZSTD, -1);
    accept_level(options, Q2S_COMPRESSION_ZSTD, 0);
    accept_level(options, Q2S_COMPRESSION_ZSTD, 1);
    accept_level(options, Q2S_COMPRESSION_ZSTD, 22);
    accept_level(options, Q2S_COMPRESSION_ZSTD, Q2S_COMPRESSION_LEVEL_DEFAULT);
    refuse_level(options, Q2S_COMPRESSION_ZSTD, -131073);
    refuse_level(options, Q2S_COMPRESSION_ZSTD, 23);
    refuse_level(options, Q2S_COMPRESSION_ZSTD, INT_MAX);

    /* An unknown type. */
    refuse_level(options, (enum q2s_compression)3, 1);
    refuse_level(options, (enum q2s_compression)-1,
                 Q2S_COMPRESSION_LEVEL_DEFAULT);

    /* None again. */
    EXPECT_OK(q2s_options_set_compression(options, Q2S_COMPRESSION_NONE,
                                          Q2S_COMPRESSION_LEVEL_DEFAULT,
                                          &error));
    assert_int_equal(q2s_options_get_compression(options),
                     Q2S_COMPRESSION_NONE);
    q2s_options_free(options);
}

static void test_compress_cache(void **state)
{
    struct q2s_options *options = q2s_options_new();

    (void)state;
    EXPECT_OK(q2s_options_set_compress_cache(options, UINT64_MAX, &error));
    assert_true(q2s_options_get_compress_cache(options) == UINT64_MAX);
    EXPECT_OK(q2s_options_set_compress_cache(options, 12345, &error));
    assert_int_equal(q2s_options_get_compress_cache(options), 12345);
    assert_int_equal(q2s_options_set_compress_cache(options, 0, NULL), 0);
    assert_int_equal(q2s_options_get_compress_cache(options), 0);
    /* The newer name of the same budget. */
    EXPECT_OK(q2s_options_set_spool_memory(options, 4096, &error));
    assert_int_equal(q2s_options_get_compress_cache(options), 4096);
    assert_int_equal(q2s_options_get_spool_memory(options), 4096);
    assert_false(q2s_options_get_reread(options));
    q2s_options_set_reread(options, true);
    assert_true(q2s_options_get_reread(options));
    q2s_options_set_reread(options, false);
    assert_false(q2s_options_get_reread(options));
    q2s_options_free(options);
}

static void test_data_file(void **state)
{
    struct q2s_options *options = q2s_options_new();
    char name[] = "disk.raw";

    (void)state;
    EXPECT_OK(q2s_options_set_data_file(options, name, false, &error));
    /* The name was copied. */
    name[0] = 'X';
    assert_string_equal(q2s_options_get_data_file(options), "disk.raw");
    assert_false(q2s_options_get_data_file_raw(options));
    EXPECT_OK(q2s_options_set_data_file(options, "other.raw", true, &error));
    assert_string_equal(q2s_options_get_data_file(options), "other.raw");
    assert_true(q2s_options_get_data_file_raw(options));

    /* raw without a name, and an empty name, leave it as it was. */
    EXPECT_FAIL(EINVAL, q2s_options_set_data_file(options, NULL, true,
                                                  &error));
    assert_int_equal(q2s_options_set_data_file(options, NULL, true, NULL),
                     -1);
    EXPECT_FAIL(EINVAL, q2s_options_set_data_file(options, "", false,
                                                  &error));
    assert_int_equal(q2s_options_set_data_file(options, "", true, NULL), -1);
    assert_string_equal(q2s_options_get_data_file(options), "other.raw");
    assert_true(q2s_options_get_data_file_raw(options));

    EXPECT_OK(q2s_options_set_data_file(options, NULL, false, &error));
    assert_null(q2s_options_get_data_file(options));
    assert_false(q2s_options_get_data_file_raw(options));
    /* Freed with a name set: no leak. */
    EXPECT_OK(q2s_options_set_data_file(options, "last.raw", false, &error));
    q2s_options_free(options);
}

/* The format: copied, "" refused, "raw" when none. */
static void test_source_format(void **state)
{
    void *symbol = dlsym(RTLD_DEFAULT, "q2s_source_options_get_format");
    struct q2s_source_options *options;
    char format[] = "qcow2";

    (void)state;
    if (!symbol)
        fail_msg("q2s_source_options_get_format is not exported");
    memcpy(&get_format, &symbol, sizeof get_format);
    options = q2s_source_options_new();
    assert_string_equal(get_format(options), "raw");
    EXPECT_OK(q2s_source_options_set_format(options, format, &error));
    format[0] = 'X';  /* copied */
    assert_string_equal(get_format(options), "qcow2");
    EXPECT_FAIL(EINVAL, q2s_source_options_set_format(options, "", &error));
    assert_int_equal(q2s_source_options_set_format(options, "", NULL), -1);
    assert_string_equal(get_format(options), "qcow2");
    EXPECT_OK(q2s_source_options_set_format(options, "raw", &error));
    assert_string_equal(get_format(options), "raw");
    EXPECT_OK(q2s_source_options_set_format(options, "vmdk", &error));
    EXPECT_OK(q2s_source_options_set_format(options, NULL, &error));
    assert_string_equal(get_format(options), "raw");
    q2s_source_options_free(options);
}

static void test_source_options(void **state)
{
    struct q2s_source_options *options = q2s_source_options_new();
    static volatile sig_atomic_t flag;

    (void)state;
    EXPECT_OK(q2s_source_options_set_format(options, "qcow2", &error));
    EXPECT_FAIL(EINVAL, q2s_source_options_set_format(options, "", &error));
    assert_int_equal(q2s_source_options_set_format(options, "", NULL), -1);
    EXPECT_OK(q2s_source_options_set_format(options, "qed", &error));

    q2s_source_options_set_untrusted(options, true);
    assert_true(q2s_source_options_get_untrusted(options));
    q2s_source_options_set_untrusted(options, false);
    assert_false(q2s_source_options_get_untrusted(options));

    assert_int_equal(Q2S_MAX_TIMEOUT_SECONDS, 86400);
    EXPECT_OK(q2s_source_options_set_timeout(options, 86400, &error));
    assert_int_equal(q2s_source_options_get_timeout(options), 86400);
    EXPECT_OK(q2s_source_options_set_timeout(options, 0, &error));
    assert_int_equal(q2s_source_options_get_timeout(options), 0);
    EXPECT_OK(q2s_source_options_set_timeout(options, 30, &error));
    EXPECT_FAIL(EINVAL, q2s_source_options_set_timeout(options, 86401,
                                                       &error));
    EXPECT_FAIL(EINVAL, q2s_source_options_set_timeout(options, UINT32_MAX,
                                                       &error));
    assert_int_equal(q2s_source_options_set_timeout(options, 86401, NULL),
                     -1);
    assert_int_equal(q2s_source_options_get_timeout(options), 30);

    assert_int_equal(q2s_source_options_get_connections(options),
                     Q2S_DEFAULT_CONNECTIONS);
    EXPECT_OK(q2s_source_options_set_connections(options, 1, &error));
    assert_int_equal(q2s_source_options_get_connections(options), 1);
    EXPECT_OK(q2s_source_options_set_connections(options,
                                                 Q2S_MAX_CONNECTIONS,
                                                 &error));
    EXPECT_FAIL(EINVAL, q2s_source_options_set_connections(options, 0,
                                                           &error));
    EXPECT_FAIL(EINVAL, q2s_source_options_set_connections(
                            options, Q2S_MAX_CONNECTIONS + 1, &error));
    assert_int_equal(q2s_source_options_get_connections(options),
                     Q2S_MAX_CONNECTIONS);

    q2s_source_options_set_cancel_flag(options, &flag);
    q2s_source_options_set_cancel_flag(options, NULL);
    /* Freed with a format set: no leak. */
    q2s_source_options_free(options);
}

static void test_check_data_file(void **state)
{
    struct q2s_options *options = q2s_options_new();
    struct q2s_source_options *source_options = q2s_source_options_new();

    (void)state;
    EXPECT_OK(q2s_options_set_data_file(options, "disk.raw", false, &error));
    EXPECT_OK(q2s_options_check(options, NULL, NULL, &error));
    EXPECT_OK(q2s_options_check(options, "disk.raw", NULL, &error));
    EXPECT_OK(q2s_options_check(options, "disk.raw", source_options, &error));

    /* Not standard input, an NBD export or another format. */
    EXPECT_FAIL(EINVAL, q2s_options_check(options, "-", NULL, &error));
    EXPECT_FAIL(EINVAL, q2s_options_check(options, "nbd://x", NULL, &error));
    EXPECT_FAIL(EINVAL, q2s_options_check(options, "nbd+unix:///?socket=s",
                                          source_options, &error));
    EXPECT_OK(q2s_source_options_set_format(source_options, "raw", &error));
    EXPECT_OK(q2s_options_check(options, "disk.raw", source_options, &error));
    EXPECT_OK(q2s_source_options_set_format(source_options, "qcow2", &error));
    EXPECT_FAIL(EINVAL, q2s_options_check(options, "disk.qcow2",
                                          source_options, &error));
    assert_int_equal(q2s_options_check(options, "disk.qcow2", source_options,
                                       NULL),
                     -1);
    /* Without a data file, any input will do. */
    EXPECT_OK(q2s_options_set_data_file(options, NULL, false, &error));
    EXPECT_OK(q2s_options_check(options, "-", NULL, &error));
    EXPECT_OK(q2s_options_check(options, "nbd://x", NULL, &error));
    EXPECT_OK(q2s_options_check(options, "disk.qcow2", source_options,
                                &error));
    EXPECT_OK(q2s_options_set_data_file(options, "disk.raw", false, &error));

    /* Not with compression, which each setter alone allows. */
    EXPECT_OK(q2s_options_set_compression(options, Q2S_COMPRESSION_ZLIB,
                                          Q2S_COMPRESSION_LEVEL_DEFAULT,
                                          &error));
    EXPECT_FAIL(EINVAL, q2s_options_check(options, NULL, NULL, &error));
    EXPECT_FAIL(EINVAL, q2s_options_check(options, "disk.raw", NULL, &error));
    EXPECT_OK(q2s_options_set_compression(options, Q2S_COMPRESSION_ZSTD, 1,
                                          &error));
    EXPECT_FAIL(EINVAL, q2s_options_check(options, NULL, NULL, &error));
    EXPECT_OK(q2s_options_set_compression(options, Q2S_COMPRESSION_NONE,
                                          Q2S_COMPRESSION_LEVEL_DEFAULT,
                                          &error));
    EXPECT_OK(q2s_options_check(options, NULL, NULL, &error));

    /* Not with 512-byte clusters; 1024 will do. */
    EXPECT_OK(q2s_options_set_cluster_size(options, 512, &error));
    EXPECT_FAIL(EINVAL, q2s_options_check(options, "disk.raw", NULL, &error));
    assert_int_equal(q2s_options_check(options, NULL, NULL, NULL), -1);
    EXPECT_OK(q2s_options_set_cluster_size(options, 1024, &error));
    EXPECT_OK(q2s_options_check(options, "disk.raw", NULL, &error));

    /* data_file_raw too. */
    EXPECT_OK(q2s_options_set_data_file(options, "disk.raw", true, &error));
    EXPECT_OK(q2s_options_check(options, "disk.raw", NULL, &error));
    EXPECT_FAIL(EINVAL, q2s_options_check(options, "-", NULL, &error));

    q2s_options_free(options);
    q2s_source_options_free(source_options);
}

/* The data file's name goes in the header cluster: 112 bytes of header,
 * the name's extension (8 bytes and the name padded to 8) and the feature
 * name table's (8 bytes and 8 entries of 48), so a 1024-byte cluster
 * holds a name of up to 512 bytes. */
static void test_check_data_file_name_length(void **state)
{
    struct q2s_options *options = q2s_options_new();
    char *name = malloc(70000);

    (void)state;
    assert_non_null(name);
    EXPECT_OK(q2s_options_set_cluster_size(options, 1024, &error));
    memset(name, 'n', 512);
    name[512] = '\0';
    EXPECT_OK(q2s_options_set_data_file(options, name, false, &error));
    EXPECT_OK(q2s_options_check(options, NULL, NULL, &error));
    EXPECT_OK(q2s_options_check(options, "disk.raw", NULL, &error));
    strcat(name, "n");
    EXPECT_OK(q2s_options_set_data_file(options, name, false, &error));
    EXPECT_FAIL(EINVAL, q2s_options_check(options, NULL, NULL, &error));
    EXPECT_FAIL(EINVAL, q2s_options_check(options, "disk.raw", NULL, &error));
    EXPECT_OK(q2s_options_set_cluster_size(options, 2048, &error));
    EXPECT_OK(q2s_options_check(options, "disk.raw", NULL, &error));

    /* Longer than the default cluster; fine in a 2 MiB one. */
    memset(name, 'n', 69999);
    name[69999] = '\0';
    EXPECT_OK(q2s_options_set_data_file(options, name, true, &error));
    EXPECT_OK(q2s_options_set_cluster_size(options, 65536, &error));
    EXPECT_FAIL(EINVAL, q2s_options_check(options, "disk.raw", NULL, &error));
    EXPECT_OK(q2s_options_set_cluster_size(options, 2097152, &error));
    EXPECT_OK(q2s_options_check(options, "disk.raw", NULL, &error));
    free(name);
    q2s_options_free(options);
}

/* What q2s_source_open() takes for an NBD URI: libnbd's schemes only. */
static void test_input_names(void **state)
{
    (void)state;
    assert_true(q2s_input_is_nbd_uri("nbd://host/export"));
    assert_true(q2s_input_is_nbd_uri("nbds://host"));
    assert_true(q2s_input_is_nbd_uri("nbd+unix:///?socket=/tmp/s"));
    assert_true(q2s_input_is_nbd_uri("nbds+unix:///?socket=/tmp/s"));
    assert_true(q2s_input_is_nbd_uri("nbd+vsock:///"));
    assert_false(q2s_input_is_nbd_uri("-"));
    assert_false(q2s_input_is_nbd_uri("disk.raw"));
    assert_false(q2s_input_is_nbd_uri("./nbd://x"));
    assert_false(q2s_input_is_nbd_uri("NBD://x"));
    assert_false(q2s_input_is_nbd_uri(""));
    assert_false(q2s_input_is_nbd_uri("nbd:"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exports),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_option_defaults),
        cmocka_unit_test(test_cluster_size),
        cmocka_unit_test(test_refcount_bits),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_compression_levels),
        cmocka_unit_test(test_compress_cache),
        cmocka_unit_test(test_data_file),
        cmocka_unit_test(test_source_format),
        cmocka_unit_test(test_source_options),
        cmocka_unit_test(test_check_data_file),
        cmocka_unit_test(test_check_data_file_name_length),
        cmocka_unit_test(test_input_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
