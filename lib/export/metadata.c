#include "export/metadata.h"
#include "export/plan.h"

#include <stdbool.h>
#include <string.h>

#include "common/bits.h"
#include "format/qcow2_format.h"

/* "Feature name table" header extension: the names QEMU 9.0 knows. */
static const struct qcow2_feature_name
    feature_names[QCOW2_FEATURE_NAME_ENTRIES] = {
        { QCOW2_FEATURE_INCOMPATIBLE, QCOW2_INCOMPAT_DIRTY_BIT, "dirty bit" },
        { QCOW2_FEATURE_INCOMPATIBLE, QCOW2_INCOMPAT_CORRUPT_BIT,
          "corrupt bit" },
        { QCOW2_FEATURE_INCOMPATIBLE, QCOW2_INCOMPAT_DATA_FILE_BIT,
          "external data file" },
        { QCOW2_FEATURE_INCOMPATIBLE, QCOW2_INCOMPAT_COMPRESSION_BIT,
          "compression type" },
        { QCOW2_FEATURE_INCOMPATIBLE, QCOW2_INCOMPAT_EXTL2_BIT,
          "extended L2 entries" },
        { QCOW2_FEATURE_COMPATIBLE, QCOW2_COMPAT_LAZY_REFCOUNTS_BIT,
          "lazy refcounts" },
        { QCOW2_FEATURE_AUTOCLEAR, QCOW2_AUTOCLEAR_BITMAPS_BIT, "bitmaps" },
        { QCOW2_FEATURE_AUTOCLEAR, QCOW2_AUTOCLEAR_DATA_FILE_RAW_BIT,
          "raw external data" },
    };

/* A "Header extensions" entry: its type and length, then the data padded
 * to a multiple of 8. */
static uint64_t extension_bytes(uint64_t length)
{
    return sizeof(struct qcow2_extension_header) +
           q2s_round_up(length, QCOW2_EXTENSION_ALIGNMENT);
}

int q2s_header_layout(const char *data_file_name, const char *backing_file,
                      const char *backing_format, uint32_t cluster_size,
                      struct q2s_header_layout *layout)
{
    uint64_t bytes = sizeof(struct qcow2_header);
    uint64_t features = extension_bytes(sizeof feature_names);
    uint64_t name_length;

    *layout = (struct q2s_header_layout){ .feature_table = true };
    if (data_file_name)
        bytes += extension_bytes(strlen(data_file_name));
    if (!backing_file) {
        layout->bytes = bytes + features;
        return layout->bytes <= cluster_size ? 0 : -1;
    }
    /* QEMU's order: the extensions, their end, then the name, which
     * backing_file_offset and backing_file_size point to. */
    name_length = strlen(backing_file);
    bytes += extension_bytes(strlen(backing_format)) +
             QCOW2_EXTENSION_HEADER_BYTES;
    if (bytes + features + name_length > cluster_size) {
        features = 0;
        layout->feature_table = false;
    }
    layout->backing_name_offset = bytes + features;
    layout->bytes = layout->backing_name_offset + name_length;
    return name_length <= QCOW2_MAX_BACKING_FILE_NAME &&
                   layout->bytes <= cluster_size
               ? 0 : -1;
}

/* The extension at p, padded with the zeros already in the buffer.
 * Returns what follows it. */
static uint8_t *put_extension(uint8_t *p, uint32_t type, const void *data,
                              uint32_t length)
{
    struct qcow2_extension_header ext = {
        .type = htobe32(type),
        .length = htobe32(length),
    };

    memcpy(p, &ext, sizeof ext);
    memcpy(p + sizeof ext, data, length);
    return p + extension_bytes(length);
}

/* "Header" and "Header extensions", then the backing file name.  Fields
 * not set stay 0: no encryption, no snapshots, no compatible features. */
static void header_cluster(const struct q2s_plan *plan, uint8_t *buf)
{
    const struct q2s_geometry *g = &plan->geometry;
    const struct q2s_header_layout *layout = &plan->header_layout;
    struct qcow2_header header = { 0 };
    uint64_t incompatible = 0, autoclear = 0;
    uint8_t *p;

    if (plan->data_file_name)
        incompatible |= UINT64_C(1) << QCOW2_INCOMPAT_DATA_FILE_BIT;
    if (plan->data_file_raw)
        autoclear |= UINT64_C(1) << QCOW2_AUTOCLEAR_DATA_FILE_RAW_BIT;
    /* compression_type stays zlib unless the incompatible bit says not. */
    if (plan->compression == Q2S_COMPRESSION_ZSTD) {
        incompatible |= UINT64_C(1) << QCOW2_INCOMPAT_COMPRESSION_BIT;
        header.compression_type = QCOW2_COMPRESSION_TYPE_ZSTD;
    }

    header.magic = htobe32(QCOW2_MAGIC);
    header.version = htobe32(QCOW2_VERSION);
    if (plan->backing_file) {
        header.backing_file_offset = htobe64(layout->backing_name_offset);
        header.backing_file_size =
            htobe32((uint32_t)strlen(plan->backing_file));
    }
    header.cluster_bits = htobe32(g->cluster_bits);
    header.size = htobe64(g->virtual_size);
    header.l1_size = htobe32((uint32_t)g->l1_entries);
    header.l1_table_offset = htobe64(g->l1_clusters ? plan->l1_offset : 0);
    header.refcount_table_offset = htobe64(plan->refcount_table_offset);
    header.refcount_table_clusters =
        htobe32((uint32_t)plan->refcount_table_clusters);
    header.incompatible_features = htobe64(incompatible);
    header.autoclear_features = htobe64(autoclear);
    header.refcount_order = htobe32(g->refcount_order);
    header.header_length = htobe32(QCOW2_V3_HEADER_LENGTH);
    memcpy(buf, &header, sizeof header);

    p = buf + sizeof header;
    if (plan->data_file_name)
        p = put_extension(p, QCOW2_EXT_DATA_FILE_NAME, plan->data_file_name,
                          (uint32_t)strlen(plan->data_file_name));
    if (plan->backing_file)
        p = put_extension(p, QCOW2_EXT_BACKING_FORMAT, plan->backing_format,
                          (uint32_t)strlen(plan->backing_format));
    if (layout->feature_table)
        put_extension(p, QCOW2_EXT_FEATURE_NAME_TABLE, feature_names,
                      sizeof feature_names);
    /* The zeros that follow end the extensions; the name comes after. */
    if (plan->backing_file)
        memcpy(buf + layout->backing_name_offset, plan->backing_file,
               strlen(plan->backing_file));
}

/* The members of run within [first, end): [*from, *to). */
static void clip_run(const struct q2s_run *run, uint64_t first, uint64_t end,
                     uint64_t *from, uint64_t *to)
{
    *from = run->start > first ? run->start : first;
    *to = run->start + run->length < end ? run->start + run->length : end;
}

/* Entries [first, first + count) of a table, one for each member x of set
 * in that range: with identity, x's own offset (x clusters); otherwise the
 * members' clusters follow each other from first_target on. */
static void pointer_entries(const struct q2s_runs *set, uint64_t first,
                            uint64_t count, uint64_t first_target,
                            bool identity, uint32_t cluster_bits, uint8_t *buf)
{
    uint64_t end = first + count;

    for (size_t i = q2s_runs_search(set, first);
         i < set->count && set->runs[i].start < end; i++) {
        const struct q2s_run *run = &set->runs[i];
        uint64_t from, to, target;

        clip_run(run, first, end, &from, &to);
        target =
            identity ? from << cluster_bits
                     : first_target +
                           ((run->rank + (from - run->start)) << cluster_bits);

        for (uint64_t x = from; x < to; x++) {
            q2s_put_be64(buf + (x - first) * 8, target | QCOW2_OFLAG_COPIED);
            target += UINT64_C(1) << cluster_bits;
        }
    }
}

/* Entries [first, first + count) of an L2 table for the compressed guest
 * clusters among them: "Compressed Clusters Descriptor"s, without
 * QCOW2_OFLAG_COPIED. */
static void compressed_entries(const struct q2s_plan *plan, uint64_t first,
                               uint64_t count, uint8_t *buf)
{
    const struct q2s_runs *set = &plan->compressed_clusters;
    size_t i = q2s_runs_search(set, first);
    uint64_t end = first + count;
    struct q2s_packing_state state;
    uint64_t index;

    if (i == set->count || set->runs[i].start >= end)
        return;
    index = set->runs[i].rank +
            (set->runs[i].start > first ? 0 : first - set->runs[i].start);
    q2s_packing_seek(&plan->packing, index, &state);
    for (; i < set->count && set->runs[i].start < end; i++) {
        uint64_t from, to;

        clip_run(&set->runs[i], first, end, &from, &to);
        for (uint64_t x = from; x < to; x++, index++) {
            uint32_t bytes = plan->packing.sizes[index];
            uint64_t host = plan->compressed_offset +
                            q2s_packing_place(&plan->packing, &state, bytes);

            q2s_put_be64(buf + (x - first) * 8,
                         qcow2_compressed_descriptor(
                             host, bytes, plan->geometry.cluster_bits));
        }
    }
}

/* Entries [first, first + count) of an L2 table for the zero clusters
 * among them: the zero flag, no host cluster, not QCOW2_OFLAG_COPIED
 * (which goes with a refcount of one). */
static void zero_entries(const struct q2s_runs *set, uint64_t first,
                         uint64_t count, uint8_t *buf)
{
    uint64_t end = first + count;

    for (size_t i = q2s_runs_search(set, first);
         i < set->count && set->runs[i].start < end; i++) {
        uint64_t from, to;

        clip_run(&set->runs[i], first, end, &from, &to);
        for (uint64_t x = from; x < to; x++)
            q2s_put_be64(buf + (x - first) * 8, QCOW2_OFLAG_ZERO);
    }
}

/* "Refcount table": one entry per refcount block, which follow it. */
static void refcount_table_cluster(const struct q2s_plan *plan, uint64_t index,
                                   uint8_t *buf)
{
    uint32_t entries_per_cluster = plan->geometry.cluster_size / 8;
    uint64_t first = index * entries_per_cluster;
    uint64_t block_offset = plan->refcount_blocks_offset +
                            (first << plan->geometry.cluster_bits);

    for (uint64_t i = first;
         i < plan->refcount_blocks && i < first + entries_per_cluster; i++) {
        q2s_put_be64(buf + (i - first) * 8, block_offset);
        block_offset += plan->geometry.cluster_size;
    }
}

/* Refcount entry i of a block: one more reference.  Entries narrower than
 * a byte fill it from the least significant bit; wider ones are big-endian.
 * The packing keeps every count within the width, so nothing carries out
 * of an entry. */
static void refcount_increment(uint8_t *buf, uint64_t i, uint32_t bits)
{
    if (bits < 8) {
        uint64_t per_byte = 8 / bits;

        buf[i / per_byte] += (uint8_t)(1u << ((i % per_byte) * bits));
    } else {
        uint8_t *entry = buf + i * (bits / 8);

        for (uint32_t j = bits / 8; j-- > 0;)
            if (++entry[j] != 0)
                break;
    }
}

/* The first count entries of a block, for clusters used exactly once. */
static void refcounts_of_one(uint8_t *buf, uint64_t count, uint32_t bits)
{
    if (bits < 8) {
        uint64_t per_byte = 8 / bits;
        uint8_t pattern = 0;

        for (uint32_t i = 0; i < per_byte; i++)
            pattern |= (uint8_t)(1u << (i * bits));
        memset(buf, pattern, count / per_byte);
        for (uint64_t i = count - count % per_byte; i < count; i++)
            refcount_increment(buf, i, bits);
    } else {
        for (uint64_t i = 0; i < count; i++)
            buf[i * (bits / 8) + bits / 8 - 1] = 1;
    }
}

/* Entries for host clusters [first, end) of the compressed region, from
 * entry number entry on: each counts the compressed clusters touching it. */
static void compressed_refcounts(const struct q2s_plan *plan, uint64_t first,
                                 uint64_t end, uint64_t entry, uint8_t *buf)
{
    const struct q2s_packing *packing = &plan->packing;
    uint32_t cluster_bits = plan->geometry.cluster_bits;
    struct q2s_packing_state state;

    for (uint64_t i = q2s_packing_find(packing, first << cluster_bits, &state);
         i < packing->count; i++) {
        uint32_t bytes = packing->sizes[i];
        uint64_t start = q2s_packing_place(packing, &state, bytes);
        uint64_t from = start >> cluster_bits;
        uint64_t to = (start + bytes - 1) >> cluster_bits;

        if (from >= end)
            break;
        if (from < first)
            from = first;
        for (uint64_t c = from; c <= to && c < end; c++)
            refcount_increment(buf, entry + (c - first),
                               plan->geometry.refcount_bits);
    }
}

/* "Refcount blocks": every host cluster before the compressed region is
 * used exactly once. */
static void refcount_block(const struct q2s_plan *plan, uint64_t index,
                           uint8_t *buf)
{
    uint32_t bits = plan->geometry.refcount_bits;
    uint64_t per_block = (uint64_t)plan->geometry.cluster_size * 8 / bits;
    uint64_t first = index * per_block;
    uint64_t count = plan->total_clusters - first;
    uint64_t region = plan->compressed_offset >> plan->geometry.cluster_bits;
    uint64_t ones;

    if (count > per_block)
        count = per_block;
    ones = region <= first ? 0 : region - first < count ? region - first
                                                        : count;
    refcounts_of_one(buf, ones, bits);
    if (ones < count)
        compressed_refcounts(plan, first + ones - region,
                             first + count - region, ones, buf);
}

void q2s_metadata_cluster(const struct q2s_plan *plan, uint64_t host_cluster,
                          uint8_t *buf)
{
    const struct q2s_geometry *g = &plan->geometry;
    uint64_t offset = host_cluster << g->cluster_bits;
    uint32_t entries_per_cluster = g->cluster_size / 8;

    memset(buf, 0, g->cluster_size);
    if (host_cluster == 0) {
        header_cluster(plan, buf);
    } else if (offset < plan->refcount_blocks_offset) {
        refcount_table_cluster(
            plan, (offset - plan->refcount_table_offset) >> g->cluster_bits,
            buf);
    } else if (offset < plan->l1_offset) {
        refcount_block(
            plan, (offset - plan->refcount_blocks_offset) >> g->cluster_bits,
            buf);
    } else if (offset < plan->l2_offset) {
        uint64_t first = ((offset - plan->l1_offset) >> g->cluster_bits) *
                         entries_per_cluster;
        uint64_t count = g->l1_entries - first;

        if (count > entries_per_cluster)
            count = entries_per_cluster;
        pointer_entries(&plan->l2_tables, first, count, plan->l2_offset,
                        false, g->cluster_bits, buf);
    } else {
        /* The table_rank-th L2 table covers the guest clusters of one L1
         * index: the table_rank-th member of plan->l2_tables. */
        uint64_t table_rank = (offset - plan->l2_offset) >> g->cluster_bits;
        const struct q2s_run *run =
            &plan->l2_tables.runs[q2s_runs_select(&plan->l2_tables,
                                                  table_rank)];
        uint64_t l1_index = run->start + (table_rank - run->rank);
        uint64_t first = l1_index * entries_per_cluster;

        /* With a data file, guest cluster x lives at the same offset in it;
         * otherwise data clusters follow each other from data_offset. */
        pointer_entries(&plan->data_clusters, first, entries_per_cluster,
                        plan->data_file_name ? 0 : plan->data_offset,
                        plan->data_file_name != NULL, g->cluster_bits, buf);
        compressed_entries(plan, first, entries_per_cluster, buf);
        zero_entries(&plan->zero_clusters, first, entries_per_cluster, buf);
    }
}
