/* Parsing the JSON of qemu-img map, rbd diff and qemu-img info.  A map of
 * a large disk runs to hundreds of megabytes, which json-c would take
 * gigabytes to hold as one tree: so only the array's framing ('[', ',',
 * ']') is scanned here, and json-c parses one element at a time, which
 * is freed once its extent is kept. */
#include "export/map_json.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

/* An element of a map is an object of scalars: a little room for what
 * the keys that are not read may hold, and no more, so that deep nesting
 * fails early instead of using memory. */
#define MAP_ELEMENT_DEPTH 8
/* qemu-img info nests the format's details, children and snapshots. */
#define IMAGE_INFO_DEPTH 32
/* Standard JSON, UTF-8 checked; a map's elements follow one another. */
#define TOKENER_FLAGS \
    (JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8 | \
     JSON_TOKENER_ALLOW_TRAILING_CHARS)

/* What names a place in a message: "map JSON: element 3". */
#define WHERE_BYTES 64

/* The text and how far it has been parsed. */
struct json_text {
    const char *bytes;
    size_t length;
    size_t pos;
};

static void skip_space(struct json_text *t)
{
    while (t->pos < t->length &&
           (t->bytes[t->pos] == ' ' || t->bytes[t->pos] == '\t' ||
            t->bytes[t->pos] == '\r' || t->bytes[t->pos] == '\n'))
        t->pos++;
}

/* One JSON value from t->pos on, into *value (NULL for null); t->pos
 * moves past it. */
static int parse_value(struct json_tokener *tok, struct json_text *t,
                       const char *where, struct json_object **value,
                       struct q2s_error *err)
{
    enum json_tokener_error error;

    json_tokener_reset(tok);
    do {
        /* json-c takes an int length; a value longer than that is fed
         * in pieces. */
        size_t left = t->length - t->pos;
        int piece = left < INT_MAX ? (int)left : INT_MAX;

        *value = json_tokener_parse_ex(tok, t->bytes + t->pos, piece);
        t->pos += json_tokener_get_parse_end(tok);
        error = json_tokener_get_error(tok);
    } while (error == json_tokener_continue && t->pos < t->length);
    /* At the end of the text: a '\0' tells json-c so, which ends a
     * number there. */
    if (error == json_tokener_continue) {
        *value = json_tokener_parse_ex(tok, "", 1);
        error = json_tokener_get_error(tok);
    }
    if (error == json_tokener_success)
        return 0;
    json_object_put(*value);
    *value = NULL;
    if (error == json_tokener_continue)
        return q2s_error_set(err, EPROTO, "%s: the text ends in the middle",
                             where);
    return q2s_error_set(err, EPROTO, "%s: %s at byte %zu", where,
                         json_tokener_error_desc(error), t->pos);
}

/* What a value is, for messages. */
static const char *type_name(const struct json_object *value)
{
    switch (json_object_get_type(value)) {
    case json_type_null:
        return "null";
    case json_type_boolean:
        return "a boolean";
    case json_type_double:
        return "a number with a fraction or an exponent";
    case json_type_int:
        return "an integer";
    case json_type_object:
        return "an object";
    case json_type_array:
        return "an array";
    case json_type_string:
        return "a string";
    }
    return "an unknown type";
}

/* The value of key in object, which must be there. */
static int get_key(struct json_object *object, const char *key,
                   const char *where, struct json_object **value,
                   struct q2s_error *err)
{
    if (!json_object_object_get_ex(object, key, value))
        return q2s_error_set(err, EPROTO, "%s: missing key \"%s\"", where,
                             key);
    return 0;
}

/* The value of key in object, which must be there and of that type
 * (type_name() of it). */
static int get_typed(struct json_object *object, const char *key,
                     enum json_type type, const char *type_wanted,
                     const char *where, struct json_object **value,
                     struct q2s_error *err)
{
    if (get_key(object, key, where, value, err) < 0)
        return -1;
    if (!json_object_is_type(*value, type))
        return q2s_error_set(err, EPROTO, "%s: \"%s\" is %s, not %s", where,
                             key, type_name(*value), type_wanted);
    return 0;
}

/* A JSON integer from 0 to INT64_MAX, as offsets and sizes are.  json-c
 * clamps what it cannot hold to INT64_MIN or UINT64_MAX, both refused
 * here, so no clamped number passes for a real one. */
static int get_size(struct json_object *object, const char *key,
                    const char *where, uint64_t *size, struct q2s_error *err)
{
    struct json_object *value;

    if (get_typed(object, key, json_type_int, "an integer", where, &value,
                  err) < 0)
        return -1;
    if (json_object_get_int64(value) < 0)
        return q2s_error_set(err, EPROTO, "%s: \"%s\" is negative", where,
                             key);
    *size = json_object_get_uint64(value);
    if (*size > INT64_MAX)
        return q2s_error_set(err, EPROTO, "%s: \"%s\" is larger than "
                             "2^63 - 1", where, key);
    return 0;
}

static int get_bool(struct json_object *object, const char *key,
                    const char *where, bool *flag, struct q2s_error *err)
{
    struct json_object *value;

    if (get_typed(object, key, json_type_boolean, "a boolean", where,
                  &value, err) < 0)
        return -1;
    *flag = json_object_get_boolean(value);
    return 0;
}

/* rbd writes "exists" as the string "true" or "false"; a boolean is
 * taken too. */
static int get_exists(struct json_object *object, const char *where,
                      bool *flag, struct q2s_error *err)
{
    struct json_object *value;
    const char *text;

    if (get_key(object, "exists", where, &value, err) < 0)
        return -1;
    if (json_object_is_type(value, json_type_string)) {
        text = json_object_get_string(value);
        if (strcmp(text, "true") != 0 && strcmp(text, "false") != 0)
            return q2s_error_set(err, EPROTO, "%s: \"exists\" is neither "
                                 "\"true\" nor \"false\"", where);
        *flag = strcmp(text, "true") == 0;
        return 0;
    }
    return get_bool(object, "exists", where, flag, err);
}

/* The two kinds of element, told apart by their keys. */
enum map_shape {
    SHAPE_NONE,
    SHAPE_QEMU_IMG_MAP,  /* start, length, data */
    SHAPE_RBD_DIFF,      /* offset, length, exists */
};

static const char *const shape_names[] = {
    [SHAPE_QEMU_IMG_MAP] = "a qemu-img map entry",
    [SHAPE_RBD_DIFF] = "an rbd diff entry",
};

static enum map_shape shape_of(struct json_object *element)
{
    /* qemu-img map entries have an "offset" too: "start" decides. */
    if (json_object_object_get_ex(element, "start", NULL))
        return SHAPE_QEMU_IMG_MAP;
    if (json_object_object_get_ex(element, "exists", NULL))
        return SHAPE_RBD_DIFF;
    return SHAPE_NONE;
}

/* Adds element's extent to map if it holds data; *shape is the first
 * element's, SHAPE_NONE before it. */
static int add_element(struct q2s_map *map, struct json_object *element,
                       enum map_shape *shape, const char *where,
                       struct q2s_error *err)
{
    enum map_shape this_shape;
    uint64_t offset = 0, length = 0;
    bool data = false;

    if (!json_object_is_type(element, json_type_object))
        return q2s_error_set(err, EPROTO, "%s: %s, not an object", where,
                             type_name(element));
    this_shape = shape_of(element);
    if (*shape == SHAPE_NONE) {
        if (this_shape == SHAPE_NONE)
            return q2s_error_set(err, EPROTO, "%s: neither a qemu-img map "
                                 "entry (\"start\", \"length\", \"data\") "
                                 "nor an rbd diff entry (\"offset\", "
                                 "\"length\", \"exists\")", where);
        *shape = this_shape;
    } else if (this_shape != SHAPE_NONE && this_shape != *shape) {
        return q2s_error_set(err, EPROTO, "%s: %s where the first is %s",
                             where, shape_names[this_shape],
                             shape_names[*shape]);
    }
    if (*shape == SHAPE_QEMU_IMG_MAP
            ? get_size(element, "start", where, &offset, err) < 0 ||
              get_size(element, "length", where, &length, err) < 0 ||
              get_bool(element, "data", where, &data, err) < 0
            : get_size(element, "offset", where, &offset, err) < 0 ||
              get_size(element, "length", where, &length, err) < 0 ||
              get_exists(element, where, &data, err) < 0)
        return -1;
    if (offset + length > INT64_MAX)
        return q2s_error_set(err, EPROTO, "%s: the extent ends past 2^63 - 1",
                             where);
    if (!data || length == 0)
        return 0;
    return q2s_map_append(map, offset, length, err);
}

/* What is wrong with a text whose first character is not '['. */
static int not_an_array(struct json_tokener *tok, struct json_text *t,
                        struct q2s_error *err)
{
    struct json_object *value;

    /* An object may be huge: it is not parsed to be refused. */
    if (t->bytes[t->pos] == '{')
        return q2s_error_set(err, EPROTO, "map JSON: an object, not an "
                             "array");
    if (parse_value(tok, t, "map JSON", &value, err) < 0)
        return -1;
    q2s_error_set(err, EPROTO, "map JSON: %s, not an array",
                  type_name(value));
    json_object_put(value);
    return -1;
}

/* The elements of the array that starts at t->pos, into map. */
static int parse_elements(struct json_tokener *tok, struct json_text *t,
                          struct q2s_map *map, struct q2s_error *err)
{
    enum map_shape shape = SHAPE_NONE;
    char where[WHERE_BYTES];

    t->pos++;  /* '[' */
    skip_space(t);
    if (t->pos < t->length && t->bytes[t->pos] == ']') {
        t->pos++;
        return 0;
    }
    for (size_t index = 0;; index++) {
        struct json_object *element;
        int ret;

        snprintf(where, sizeof where, "map JSON: element %zu", index);
        if (parse_value(tok, t, where, &element, err) < 0)
            return -1;
        ret = add_element(map, element, &shape, where, err);
        json_object_put(element);
        if (ret < 0)
            return -1;
        skip_space(t);
        if (t->pos == t->length)
            return q2s_error_set(err, EPROTO, "map JSON: the text ends "
                                 "after element %zu, before ']'", index);
        if (t->bytes[t->pos] == ']') {
            t->pos++;
            return 0;
        }
        if (t->bytes[t->pos] != ',')
            return q2s_error_set(err, EPROTO, "map JSON: after element %zu: "
                                 "',' or ']' expected at byte %zu", index,
                                 t->pos);
        t->pos++;
    }
}

/* The text after the value must be blank. */
static int check_end(struct json_text *t, const char *what,
                     struct q2s_error *err)
{
    skip_space(t);
    if (t->pos < t->length)
        return q2s_error_set(err, EPROTO, "%s: unexpected text after the "
                             "end, at byte %zu", what, t->pos);
    return 0;
}

/* A parser for the text t, which must not be blank (what names it in
 * messages); NULL on failure. */
static struct json_tokener *start_parsing(struct json_text *t, int depth,
                                          const char *what,
                                          struct q2s_error *err)
{
    struct json_tokener *tok;

    skip_space(t);
    if (t->pos == t->length) {
        q2s_error_set(err, EPROTO, "%s: the text is empty", what);
        return NULL;
    }
    tok = json_tokener_new_ex(depth);
    if (!tok)
        q2s_error_set_errno(err, ENOMEM, "cannot allocate a JSON parser");
    else
        json_tokener_set_flags(tok, TOKENER_FLAGS);
    return tok;
}

int q2s_parse_map_json(const char *text, size_t length, struct q2s_map **map,
                       struct q2s_error *err)
{
    struct json_text t = { text, length, 0 };
    struct json_tokener *tok;
    int ret = -1;

    *map = NULL;
    tok = start_parsing(&t, MAP_ELEMENT_DEPTH, "map JSON", err);
    if (!tok)
        return -1;
    if (t.bytes[t.pos] != '[') {
        not_an_array(tok, &t, err);
        goto out;
    }
    *map = q2s_map_create();
    if (!*map) {
        q2s_error_set_errno(err, ENOMEM, "cannot allocate a map");
        goto out;
    }
    ret = parse_elements(tok, &t, *map, err) < 0 ? -1
                                                  : check_end(&t, "map JSON",
                                                              err);
out:
    json_tokener_free(tok);
    if (ret < 0) {
        q2s_map_destroy(*map);
        *map = NULL;
    }
    return ret;
}

int q2s_parse_image_info_json(const char *text, size_t length,
                              uint64_t *virtual_size, uint32_t *cluster_size,
                              struct q2s_error *err)
{
    struct json_text t = { text, length, 0 };
    struct json_object *info = NULL;
    struct json_tokener *tok;
    uint64_t size, cluster;
    int ret = -1;

    if (length > Q2S_IMAGE_INFO_JSON_MAX_BYTES)
        return q2s_error_set(err, EPROTO, "info JSON: larger than %d MiB",
                             Q2S_IMAGE_INFO_JSON_MAX_BYTES >> 20);
    tok = start_parsing(&t, IMAGE_INFO_DEPTH, "info JSON", err);
    if (!tok)
        return -1;
    if (parse_value(tok, &t, "info JSON", &info, err) < 0 ||
        check_end(&t, "info JSON", err) < 0)
        goto out;
    if (!json_object_is_type(info, json_type_object)) {
        q2s_error_set(err, EPROTO, "info JSON: %s, not an object",
                      type_name(info));
        goto out;
    }
    /* Into the caller's variables only once all is checked. */
    if (get_size(info, "virtual-size", "info JSON", &size, err) < 0 ||
        get_size(info, "cluster-size", "info JSON", &cluster, err) < 0)
        goto out;
    if (cluster == 0 || cluster > UINT32_MAX) {
        q2s_error_set(err, EPROTO, "info JSON: \"cluster-size\" %llu is not "
                      "from 1 to 2^32 - 1", (unsigned long long)cluster);
        goto out;
    }
    *virtual_size = size;
    *cluster_size = (uint32_t)cluster;
    ret = 0;
out:
    json_object_put(info);
    json_tokener_free(tok);
    return ret;
}
