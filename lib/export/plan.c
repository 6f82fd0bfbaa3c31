#include "export/plan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/bits.h"
#include "error.h"
#include "format/qcow2_compress.h"
#include "format/qcow2_format.h"

int q2s_geometry_init(struct q2s_geometry *geometry,
                      const struct q2s_options *options, uint64_t input_size,
                      struct q2s_error *err)
{
    struct q2s_geometry g = { 0 };

    if (q2s_options_validate(options, err) < 0)
        return -1;
    g.cluster_size = options->cluster_size;
    g.cluster_bits = q2s_log2_power_of_two(options->cluster_size);
    g.refcount_bits = options->refcount_bits;
    g.refcount_order = q2s_log2_power_of_two(options->refcount_bits);
    g.l2_entries_per_table = options->cluster_size / 8;
    g.input_size = input_size;
    /* With the XAPI fork's input map, its info gives the disk's size. */
    if (options->input_map)
        input_size = options->input_virtual_size;
    if (input_size > UINT64_MAX - (QCOW2_SECTOR_SIZE - 1))
        return q2s_error_set(err, EFBIG, "the image size is too large");
    g.virtual_size = qcow2_round_up_to_sector(input_size);
    g.guest_clusters = q2s_div_round_up(g.virtual_size, g.cluster_size);
    g.l1_entries = q2s_div_round_up(g.guest_clusters, g.l2_entries_per_table);
    /* Checked here, before the input is read, as it depends on the size
     * alone.  At 2 MiB clusters the limit is 2^61 bytes (2 EiB), which an
     * NBD export can exceed: then no cluster size helps. */
    if (g.l1_entries > Q2S_MAX_L1_BYTES / 8)
        return q2s_error_set(err, EFBIG,
                             "the virtual size is too large: the L1 "
                             "table would take %llu entries, more than "
                             "QEMU's limit of 32 MiB (%u entries of 8 bytes): "
                             "%s", (unsigned long long)g.l1_entries,
                             Q2S_MAX_L1_BYTES / 8,
                             g.cluster_size < Q2S_MAX_CLUSTER_SIZE
                                 ? "use a larger cluster size"
                                 : "qcow2 cannot hold a disk this large");
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

void q2s_clusters_init(struct q2s_clusters *clusters,
                       const struct q2s_geometry *geometry)
{
    q2s_runs_init(&clusters->raw);
    q2s_runs_init(&clusters->compressed);
    q2s_runs_init(&clusters->zero);
    q2s_packing_init(&clusters->packing, geometry->cluster_bits,
                     geometry->refcount_bits);
}

void q2s_clusters_free(struct q2s_clusters *clusters)
{
    q2s_runs_free(&clusters->raw);
    q2s_runs_free(&clusters->compressed);
    q2s_runs_free(&clusters->zero);
    q2s_packing_free(&clusters->packing);
}

/* The L2 tables that the clusters of the sets need, as runs of L1
 * indices. */
static int collect_l2_tables(struct q2s_runs *l2_tables,
                             const struct q2s_runs *const sets[],
                             size_t set_count, uint32_t l2_bits)
{
    struct q2s_runs_builder tables;

    q2s_runs_builder_init(&tables);
    for (size_t s = 0; s < set_count; s++) {
        for (size_t i = 0; i < sets[s]->count; i++) {
            const struct q2s_run *run = &sets[s]->runs[i];
            uint64_t first = run->start >> l2_bits;
            uint64_t last = (run->start + run->length - 1) >> l2_bits;

            if (q2s_runs_builder_add(&tables, first, last - first + 1) < 0) {
                q2s_runs_builder_free(&tables);
                return -1;
            }
        }
    }
    return q2s_runs_builder_finish(&tables, l2_tables);
}

static uint64_t last_member(const struct q2s_runs *set)
{
    const struct q2s_run *last = &set->runs[set->count - 1];

    return last->start + last->length - 1;
}

/* The end of the host offsets that a compressed cluster descriptor can
 * hold: its offset bits, and never past Q2S_MAX_OFFSET_END. */
static uint64_t compressed_offset_limit(uint32_t cluster_bits)
{
    uint64_t limit = UINT64_C(1) << qcow2_compressed_offset_bits(cluster_bits);

    return limit < Q2S_MAX_OFFSET_END ? limit : Q2S_MAX_OFFSET_END;
}

int q2s_plan_init(struct q2s_plan *plan, const struct q2s_geometry *geometry,
                  const struct q2s_options *options,
                  struct q2s_clusters *clusters, struct q2s_error *err)
{
    const struct q2s_geometry *g = geometry;
    uint64_t data_host_clusters, other_clusters, cluster, compressed_bytes;

    memset(plan, 0, sizeof *plan);
    plan->geometry = *g;
    plan->data_clusters = clusters->raw;
    plan->compressed_clusters = clusters->compressed;
    plan->zero_clusters = clusters->zero;
    plan->packing = clusters->packing;
    q2s_clusters_init(clusters, g);
    q2s_runs_init(&plan->l2_tables);
    q2s_cache_init(&plan->cache, NULL, NULL);
    q2s_cache_init(&plan->data_cache, NULL, NULL);
    plan->data_file_raw = options->data_file_raw;
    plan->compression = options->compression;
    plan->compression_level = q2s_compression_level(
        options->compression, options->compression_level);
    plan->threads = options->threads;

    if ((plan->data_clusters.count > 0 &&
         last_member(&plan->data_clusters) >= g->guest_clusters) ||
        (plan->compressed_clusters.count > 0 &&
         last_member(&plan->compressed_clusters) >= g->guest_clusters) ||
        (plan->zero_clusters.count > 0 &&
         last_member(&plan->zero_clusters) >= g->guest_clusters)) {
        q2s_plan_fini(plan);
        return q2s_error_set(err, ENOTRECOVERABLE,
                             "internal error: a data cluster lies "
                             "beyond the end of the disk");
    }
    if (q2s_runs_total(&plan->compressed_clusters) != plan->packing.count) {
        q2s_plan_fini(plan);
        return q2s_error_set(err, ENOTRECOVERABLE,
                             "internal error: compressed clusters "
                             "without a size");
    }
    if (options->data_file_name) {
        plan->data_file_name = strdup(options->data_file_name);
        if (!plan->data_file_name)
            goto out_of_memory;
    }
    if (options->backing_file) {
        plan->backing_file = strdup(options->backing_file);
        plan->backing_format = strdup(options->backing_format);
        if (!plan->backing_file || !plan->backing_format)
            goto out_of_memory;
    }
    /* q2s_options_validate() saw that it fits. */
    if (q2s_header_layout(options->data_file_name, options->backing_file,
                          options->backing_format, g->cluster_size,
                          &plan->header_layout) < 0) {
        q2s_error_set(err, EINVAL, "the names do not fit the header cluster");
        goto refused;
    }
    /* data_file_raw: the data file is the disk, so every cluster is
     * allocated and mapped to the same offset in it. */
    if (options->data_file_raw &&
        q2s_runs_add(&plan->data_clusters, 0, g->guest_clusters) < 0)
        goto out_of_memory;
    if (collect_l2_tables(&plan->l2_tables,
                          (const struct q2s_runs *const[]){
                              &plan->data_clusters, &plan->compressed_clusters,
                              &plan->zero_clusters },
                          3, g->cluster_bits - 3) < 0)
        goto out_of_memory;

    /* With an external data file, the L2 entries hold offsets into it,
     * which are the guest offsets: the last mapped cluster must start
     * below Q2S_MAX_OFFSET_END.  (Without one, guest offsets are stored
     * nowhere; the host offsets are checked below.) */
    if (options->data_file_name && plan->data_clusters.count > 0 &&
        last_member(&plan->data_clusters) >=
            Q2S_MAX_OFFSET_END >> g->cluster_bits) {
        q2s_error_set(err, EFBIG, "with an external data file, the L2 entries "
                      "would need the data file offset %llu, past the 64 PiB "
                      "that their 56 bits of offset can reach: convert "
                      "without an external data file",
                      (unsigned long long)last_member(&plan->data_clusters)
                          << g->cluster_bits);
        goto refused;
    }

    /* With an external data file, data clusters live there, not here. */
    data_host_clusters =
        options->data_file_name ? 0 : q2s_runs_total(&plan->data_clusters);
    compressed_bytes = q2s_packing_bytes(&plan->packing);
    plan->compressed_host_clusters =
        q2s_div_round_up(compressed_bytes, g->cluster_size);
    other_clusters = 1 + g->l1_clusters + q2s_runs_total(&plan->l2_tables) +
                     data_host_clusters + plan->compressed_host_clusters;
    q2s_refcount_clusters(other_clusters, g->cluster_size, g->refcount_bits,
                          &plan->refcount_blocks,
                          &plan->refcount_table_clusters);
    plan->total_clusters =
        other_clusters + plan->refcount_blocks + plan->refcount_table_clusters;
    /* qcow2_do_open refuses a refcount table over QCOW_MAX_REFTABLE_SIZE.
     * It takes 2^20 refcount blocks, 2^23 * cluster_size^2 / refcount_bits
     * bytes of clusters: 32 GiB at 512-byte clusters and 64-bit refcounts.
     * Below 16-bit refcounts the L1 limit always comes first, and at 2 MiB
     * clusters the host offset limit does, so both remedies exist. */
    if (plan->refcount_table_clusters >
        Q2S_MAX_REFTABLE_BYTES / g->cluster_size) {
        q2s_error_set(err, EFBIG,
                      "the refcount table would take %llu clusters, "
                      "more than QEMU's limit of 8 MiB (%u clusters of %u "
                      "bytes): use a larger cluster size or a narrower "
                      "refcount width",
                      (unsigned long long)plan->refcount_table_clusters,
                      Q2S_MAX_REFTABLE_BYTES / g->cluster_size,
                      g->cluster_size);
        goto refused;
    }
    /* Every host cluster must start below Q2S_MAX_OFFSET_END for the L1
     * and L2 entries (and refcount table entries) to point to it.  This
     * also keeps the image within QEMU's BDRV_MAX_LENGTH (block.c,
     * bdrv_refresh_total_sectors) and the offsets within int64_t. */
    if (plan->total_clusters > Q2S_MAX_OFFSET_END >> g->cluster_bits) {
        q2s_error_set(err, EFBIG,
                      "the image would take %llu clusters of %u bytes, "
                      "past the 64 PiB that qcow2 can address (56 bits of "
                      "offset in L1 and L2 entries): the input holds too "
                      "much data for one qcow2 image",
                      (unsigned long long)plan->total_clusters,
                      g->cluster_size);
        goto refused;
    }

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
    cluster += data_host_clusters;
    plan->compressed_offset = cluster << g->cluster_bits;
    /* The last compressed cluster is padded to a whole sector, so that
     * reading the sectors its descriptor names stays within the image. */
    plan->image_size = plan->compressed_offset +
                       qcow2_round_up_to_sector(compressed_bytes);
    if (compressed_bytes > 0 &&
        plan->compressed_offset + compressed_bytes >
            compressed_offset_limit(g->cluster_bits)) {
        q2s_plan_fini(plan);
        return q2s_error_set(err, EFBIG,
                             "the image is too large for compressed "
                             "clusters of %u bytes; try a smaller cluster "
                             "size", g->cluster_size);
    }
    return 0;

out_of_memory:
    q2s_error_set_errno(err, ENOMEM, "cannot compute the plan");
refused:  /* err says why */
    q2s_plan_fini(plan);
    return -1;
}

void q2s_plan_fini(struct q2s_plan *plan)
{
    q2s_runs_free(&plan->data_clusters);
    q2s_runs_free(&plan->compressed_clusters);
    q2s_runs_free(&plan->zero_clusters);
    q2s_packing_free(&plan->packing);
    q2s_cache_free(&plan->cache);
    q2s_cache_free(&plan->data_cache);
    q2s_runs_free(&plan->l2_tables);
    free(plan->data_file_name);
    plan->data_file_name = NULL;
    free(plan->backing_file);
    plan->backing_file = NULL;
    free(plan->backing_format);
    plan->backing_format = NULL;
}
