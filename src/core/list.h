/* list: the doubly linked lists of the code base, written once.
 *
 * Intrusive: any struct with `prev` and `next` pointers to its own type is
 * an element; the list is a `head` pointer (and a `tail` for the lists
 * appended to). Unlinking is O(1) and leaves the element's links NULL.
 * Macros, so that the element keeps its own type and iteration stays
 * `for (x = head; x; x = x->next)`. Every argument is evaluated more than
 * once: pass plain lvalues.
 */
#ifndef AMIBRIDGE_CORE_LIST_H
#define AMIBRIDGE_CORE_LIST_H

#include <stddef.h>

/* Put x first in the list at head. */
#define LIST_PUSH_FRONT(head, x)                                                                   \
    do {                                                                                           \
        (x)->prev = NULL;                                                                          \
        (x)->next = (head);                                                                        \
        if (head)                                                                                  \
            (head)->prev = (x);                                                                    \
        (head) = (x);                                                                              \
    } while (0)

/* Take x out of the list at head. */
#define LIST_UNLINK(head, x)                                                                       \
    do {                                                                                           \
        if ((x)->prev)                                                                             \
            (x)->prev->next = (x)->next;                                                           \
        else                                                                                       \
            (head) = (x)->next;                                                                    \
        if ((x)->next)                                                                             \
            (x)->next->prev = (x)->prev;                                                           \
        (x)->prev = (x)->next = NULL;                                                              \
    } while (0)

/* The same for a list with a tail: append x, take x out. */
#define LIST_PUSH_BACK(head, tail, x)                                                              \
    do {                                                                                           \
        (x)->next = NULL;                                                                          \
        (x)->prev = (tail);                                                                        \
        if (tail)                                                                                  \
            (tail)->next = (x);                                                                    \
        else                                                                                       \
            (head) = (x);                                                                          \
        (tail) = (x);                                                                              \
    } while (0)

#define LIST_UNLINK2(head, tail, x)                                                                \
    do {                                                                                           \
        if ((x)->prev)                                                                             \
            (x)->prev->next = (x)->next;                                                           \
        else                                                                                       \
            (head) = (x)->next;                                                                    \
        if ((x)->next)                                                                             \
            (x)->next->prev = (x)->prev;                                                           \
        else                                                                                       \
            (tail) = (x)->prev;                                                                    \
        (x)->prev = (x)->next = NULL;                                                              \
    } while (0)

#endif
