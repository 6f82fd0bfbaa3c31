#include "plan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "qcow2_format.h"

void q2s_options_init(struct q2s_options *options)
{
    *options = (struct q2s_options){
        .cluster_size = Q2S_DEFAULT_CLUSTER_SIZE,
        .refcount_bits = Q2S_DEFAULT_REFCOUNT_BITS,
    };
}

static bool is_power_of_two(uint64_t n)
{
    return n != 0 && (n & (n - 1)) == 0;
}

static uint32_t log2_of(uint64_t power_of_two)
{
    return (uint32_t)__builtin_ctzll(power_of_two);
}

uint64_t q2s_header_bytes(const char *data_file_name)
{
    uint64_t bytes = QCOW2_V3_HEADER_LENGTH;

    if (data_file_name)
        bytes += QCOW2_EXTENSION_HEADER_BYTES +
                 ((strlen(data_file_name) + 7) & ~(uint64_t)7);
    return bytes + QCOW2_EXTENSION_HEADER_BYTES + QCOW2_FEATURE_NAME_TABLE_BYTES;
}

int q2s_options_check(const struct q2s_options *options, struct q2s_error *err)
{
    if (!is_power_of_two(options->cluster_size) ||
        options->cluster_size < Q2S_MIN_CLUSTER_SIZE ||
        options->cluster_size > Q2S_MAX_CLUSTER_SIZE)
        return q2s_error_set(err, "invalid cluster size %u: must be a power "
                             "of two from 512 to 2097152",
                             options->cluster_size);
    if (!is_power_of_two(options->refcount_bits) ||
        options->refcount_bits > 64)
        return q2s_error_set(err, "invalid refcount width %u: must be 1, 2, "
                             "4, 8, 16, 32 or 64", options->refcount_bits);
    if (options->data_file_raw && !options->data_file_name)
        return q2s_error_set(err, "data_file_raw needs an external data file");
    if (options->data_file_name &&
        options->cluster_size == Q2S_MIN_CLUSTER_SIZE)
        return q2s_error_set(err, "external data files require a larger "
                             "cluster size");
    if (q2s_header_bytes(options->data_file_name) > options->cluster_size)
        return q2s_error_set(err, "the data file name is too long for a "
                             "%u-byte header cluster; use a shorter path or "
                             "a larger cluster size", options->cluster_size);
    return 0;
}

int q2s_geometry_init(struct q2s_geometry *geometry,
                      const struct q2s_options *options, uint64_t input_size,
                      struct q2s_error *err)
{
    struct q2s_geometry g = { 0 };

    if (q2s_options_check(options, err) < 0)
        return -1;
    g.cluster_size = options->cluster_size;
    g.cluster_bits = log2_of(options->cluster_size);
    g.refcount_bits = options->refcount_bits;
    g.refcount_order = log2_of(options->refcount_bits);
    g.l2_entries_per_table = options->cluster_size / 8;
    g.input_size = input_size;
    if (input_size > UINT64_MAX - 511)
        return q2s_error_set(err, "the image size is too large");
    g.virtual_size = (input_size + 511) & ~(uint64_t)511;
    g.guest_clusters = q2s_div_round_up(g.virtual_size, g.cluster_size);
    g.l1_entries = q2s_div_round_up(g.guest_clusters, g.l2_entries_per_table);
    if (g.l1_entries > Q2S_MAX_L1_BYTES / 8)
        return q2s_error_set(err, "the image size is too large for a %u-byte "
                             "cluster size (its L1 table would exceed 32 MiB); "
                             "try a larger cluster size", g.cluster_size);
    g.l1_clusters = q2s_div_round_up(g.l1_entries, g.cluster_size / 8);
    *geometry = g;
    return 0;
}

void q2s_refcount_clusters(uint64_t other_clusters, uint32_t cluster_size,
                           uint32_t refcount_bits, uint64_t *refcount_blocks,
                           uint64_t *refcount_table_clusters)
{
    uint64_t refcounts_per_block = (uint64_t)cluster_size * 8 / refcount_bits;
    uint64_t entries_per_table = cluster_size / 8;
    uint64_t blocks = q2s_div_round_up(other_clusters, refcounts_per_block);
    uint64_t tables = q2s_div_round_up(blocks, entries_per_table);

    /* The refcount structures need refcounts too, which may need more
     * blocks, which may need more table clusters; iterate to the fixed
     * point exactly as the reference does (it only recomputes the table
     * when the block count grows). */
    for (;;) {
        uint64_t total = other_clusters + tables + blocks;
        uint64_t new_blocks = q2s_div_round_up(total, refcounts_per_block);

        if (new_blocks <= blocks)
            break;
        blocks = new_blocks;
        tables = q2s_div_round_up(blocks, entries_per_table);
    }
    *refcount_blocks = blocks;
    *refcount_table_clusters = tables;
}

/* The L2 tables that the allocated clusters need, as runs of L1 indices. */
static int collect_l2_tables(struct q2s_runs *l2_tables,
                             const struct q2s_runs *data_clusters,
                             uint32_t l2_bits)
{
    for (size_t i = 0; i < data_clusters->count; i++) {
        const struct q2s_run *run = &data_clusters->runs[i];
        uint64_t first = run->start >> l2_bits;
        uint64_t last = (run->start + run->length - 1) >> l2_bits;

        if (q2s_runs_add(l2_tables, first, last - first + 1) < 0)
            return -1;
    }
    return 0;
}

int q2s_plan_init(struct q2s_plan *plan, const struct q2s_geometry *geometry,
                  const struct q2s_options *options,
                  struct q2s_runs *data_clusters, struct q2s_error *err)
{
    const struct q2s_geometry *g = geometry;
    uint64_t data_host_clusters, other_clusters, cluster;

    memset(plan, 0, sizeof *plan);
    plan->geometry = *g;
    plan->data_clusters = *data_clusters;
    q2s_runs_init(data_clusters);
    q2s_runs_init(&plan->l2_tables);
    plan->data_file_raw = options->data_file_raw;

    if (plan->data_clusters.count > 0) {
        const struct q2s_run *last =
            &plan->data_clusters.runs[plan->data_clusters.count - 1];

        if (last->start + last->length > g->guest_clusters) {
            q2s_plan_fini(plan);
            return q2s_error_set(err, "internal error: a data cluster lies "
                                 "beyond the end of the disk");
        }
    }
    if (options->data_file_name) {
        plan->data_file_name = strdup(options->data_file_name);
        if (!plan->data_file_name)
            goto out_of_memory;
    }
    /* data_file_raw: the data file is the disk, so every cluster is
     * allocated and mapped to the same offset in it. */
    if (options->data_file_raw &&
        q2s_runs_add(&plan->data_clusters, 0, g->guest_clusters) < 0)
        goto out_of_memory;
    if (collect_l2_tables(&plan->l2_tables, &plan->data_clusters,
                          g->cluster_bits - 3) < 0)
        goto out_of_memory;

    /* With an external data file, data clusters live there, not here. */
    data_host_clusters =
        options->data_file_name ? 0 : q2s_runs_total(&plan->data_clusters);
    other_clusters = 1 + g->l1_clusters + q2s_runs_total(&plan->l2_tables) +
                     data_host_clusters;
    q2s_refcount_clusters(other_clusters, g->cluster_size, g->refcount_bits,
                          &plan->refcount_blocks,
                          &plan->refcount_table_clusters);
    plan->total_clusters =
        other_clusters + plan->refcount_blocks + plan->refcount_table_clusters;

    cluster = 1;
    plan->refcount_table_offset = cluster << g->cluster_bits;
    cluster += plan->refcount_table_clusters;
    plan->refcount_blocks_offset = cluster << g->cluster_bits;
    cluster += plan->refcount_blocks;
    plan->l1_offset = cluster << g->cluster_bits;
    cluster += g->l1_clusters;
    plan->l2_offset = cluster << g->cluster_bits;
    cluster += q2s_runs_total(&plan->l2_tables);
    plan->data_offset = cluster << g->cluster_bits;
    if (__builtin_mul_overflow(plan->total_clusters, (uint64_t)g->cluster_size,
                               &plan->image_size) ||
        plan->image_size > INT64_MAX) {
        q2s_plan_fini(plan);
        return q2s_error_set(err, "the image would be too large");
    }
    return 0;

out_of_memory:
    q2s_plan_fini(plan);
    return q2s_error_set_errno(err, ENOMEM, "cannot compute the plan");
}

void q2s_plan_fini(struct q2s_plan *plan)
{
    q2s_runs_free(&plan->data_clusters);
    q2s_runs_free(&plan->l2_tables);
    free(plan->data_file_name);
    plan->data_file_name = NULL;
}
