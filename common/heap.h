/* One binary min-heap for every element type, beside common/vector.h:
 *
 *     Q2S_DEFINE_HEAP_TYPE(name, type, before)
 *
 * defines struct name { type *ptr; size_t len, cap; } and the inline
 * functions name##_push, _pop and _free, where before(const type *a,
 * const type *b) says that a comes out first.  A zeroed heap is empty. */
#ifndef Q2S_COMMON_HEAP_H
#define Q2S_COMMON_HEAP_H

#include <stddef.h>
#include <stdlib.h>

#include "common/vector.h"

#define Q2S_DEFINE_HEAP_TYPE(name, type, before)                             \
    struct name {                                                            \
        type *ptr;                                                           \
        size_t len;                                                          \
        size_t cap;                                                          \
    };                                                                       \
                                                                             \
    /* -1 with errno ENOMEM, the heap unchanged. */                          \
    __attribute__((unused))                                                  \
    static inline int name##_push(struct name *heap, const type *elem)       \
    {                                                                        \
        size_t i;                                                            \
                                                                             \
        if (Q2S_VECTOR_RESERVE(heap->ptr, heap->len, heap->cap, 1) < 0)      \
            return -1;                                                       \
        for (i = heap->len++; i > 0; i = (i - 1) / 2) {                      \
            if (!before(elem, &heap->ptr[(i - 1) / 2]))                      \
                break;                                                       \
            heap->ptr[i] = heap->ptr[(i - 1) / 2];                           \
        }                                                                    \
        heap->ptr[i] = *elem;                                                \
        return 0;                                                            \
    }                                                                        \
                                                                             \
    /* The first element, or NULL when empty. */                             \
    __attribute__((unused))                                                  \
    static inline const type *name##_top(const struct name *heap)            \
    {                                                                        \
        return heap->len ? &heap->ptr[0] : NULL;                             \
    }                                                                        \
                                                                             \
    /* Takes the first element out into *elem; the heap is not empty. */     \
    __attribute__((unused))                                                  \
    static inline void name##_pop(struct name *heap, type *elem)             \
    {                                                                        \
        type last;                                                           \
        size_t i = 0;                                                        \
                                                                             \
        *elem = heap->ptr[0];                                                \
        last = heap->ptr[--heap->len];                                       \
        for (;;) {                                                           \
            size_t child = 2 * i + 1;                                        \
                                                                             \
            if (child >= heap->len)                                          \
                break;                                                       \
            if (child + 1 < heap->len &&                                     \
                before(&heap->ptr[child + 1], &heap->ptr[child]))            \
                child++;                                                     \
            if (!before(&heap->ptr[child], &last))                           \
                break;                                                       \
            heap->ptr[i] = heap->ptr[child];                                 \
            i = child;                                                       \
        }                                                                    \
        if (heap->len > 0)                                                   \
            heap->ptr[i] = last;                                             \
    }                                                                        \
                                                                             \
    /* Frees the array (not what elements point to). */                      \
    __attribute__((unused))                                                  \
    static inline void name##_free(struct name *heap)                        \
    {                                                                        \
        free(heap->ptr);                                                     \
        heap->ptr = NULL;                                                    \
        heap->len = heap->cap = 0;                                           \
    }

#endif
