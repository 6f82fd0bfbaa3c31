/* One growable array for every element type, in the spirit of nbdkit's
 * DEFINE_VECTOR_TYPE:
 *
 *     Q2S_DEFINE_VECTOR_TYPE(q2s_u32_vector, uint32_t)
 *
 * defines struct q2s_u32_vector { uint32_t *ptr; size_t len, cap; } and
 * the inline functions q2s_u32_vector_reserve, _append and _free.  A
 * zeroed vector is empty and needs no other set-up.  Everything is inline
 * as appending sits in hot loops. */
#ifndef Q2S_COMMON_VECTOR_H
#define Q2S_COMMON_VECTOR_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* The first allocation: about 4 KiB of elements, so that small vectors
 * do not realloc at every append. */
#define Q2S_VECTOR_FIRST_BYTES 4096

/* Makes room in *ptr (of *cap elements of elem_size bytes, len of them
 * used) for n more, at least doubling the capacity.  -1 with errno ENOMEM
 * if the size overflows or memory cannot be had; *ptr is then unchanged. */
static inline int q2s_vector_grow(void **ptr, size_t *cap, size_t len,
                                  size_t n, size_t elem_size)
{
    size_t need, new_cap;
    void *p;

    if (n <= *cap - len)
        return 0;
    if (__builtin_add_overflow(len, n, &need))
        goto nomem;
    new_cap = *cap <= SIZE_MAX / 2 ? *cap * 2 : SIZE_MAX;
    if (new_cap < Q2S_VECTOR_FIRST_BYTES / elem_size)
        new_cap = Q2S_VECTOR_FIRST_BYTES / elem_size;
    if (new_cap < need)
        new_cap = need;
    if (new_cap > SIZE_MAX / elem_size)
        goto nomem;
    p = realloc(*ptr, new_cap * elem_size);
    if (!p)
        goto nomem;
    *ptr = p;
    *cap = new_cap;
    return 0;

nomem:
    errno = ENOMEM;
    return -1;
}

/* Room for n more elements in an array kept as three lvalues: ptr (a
 * type *), len and cap (a size_t).  0, or -1 with errno ENOMEM and the
 * array unchanged.  The typed vectors below use it; it also serves a
 * struct whose array fields other files already read by their own names.
 * ptr and cap are evaluated more than once. */
#define Q2S_VECTOR_RESERVE(ptr, len, cap, n)                                 \
    __extension__({                                                          \
        void *q2s_vector_p_ = (ptr);                                         \
        int q2s_vector_ret_ = q2s_vector_grow(&q2s_vector_p_, &(cap), (len), \
                                              (n), sizeof *(ptr));           \
                                                                             \
        (ptr) = q2s_vector_p_;                                               \
        q2s_vector_ret_;                                                     \
    })

/* The functions are marked unused: a type defined in a .c file need not
 * use them all (clang warns of unused static inline functions there). */
#define Q2S_DEFINE_VECTOR_TYPE(name, type)                                   \
    struct name {                                                            \
        type *ptr;                                                           \
        size_t len;  /* elements in use */                                   \
        size_t cap;  /* elements allocated */                                \
    };                                                                       \
                                                                             \
    /* Room for n more elements; -1 with errno ENOMEM. */                    \
    __attribute__((unused))                                                  \
    static inline int name##_reserve(struct name *v, size_t n)               \
    {                                                                        \
        return Q2S_VECTOR_RESERVE(v->ptr, v->len, v->cap, n);                \
    }                                                                        \
                                                                             \
    /* Adds elem at the end; -1 with errno ENOMEM, v unchanged. */           \
    __attribute__((unused))                                                  \
    static inline int name##_append(struct name *v, type elem)               \
    {                                                                        \
        if (name##_reserve(v, 1) < 0)                                        \
            return -1;                                                       \
        v->ptr[v->len++] = elem;                                             \
        return 0;                                                            \
    }                                                                        \
                                                                             \
    /* Frees the array (not what elements point to); v is left empty. */     \
    __attribute__((unused))                                                  \
    static inline void name##_free(struct name *v)                           \
    {                                                                        \
        free(v->ptr);                                                        \
        v->ptr = NULL;                                                       \
        v->len = v->cap = 0;                                                 \
    }

#endif
