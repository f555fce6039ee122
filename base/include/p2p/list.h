/*
 * list.h: an intrusive, circular, doubly linked list (libuv's QUEUE, the Linux
 * kernel's list_head).
 *
 * A list is a struct p2p_list head; an element embeds a struct p2p_list link and is
 * found from it with P2P_LIST_ENTRY.  Insertion and removal are O(1) and never
 * allocate.  An unlinked link points at itself, so p2p_list_remove on it is a no-op.
 */
#ifndef P2P_LIST_H
#define P2P_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct p2p_list {
    struct p2p_list *prev, *next;
};

/* The element of type `type` whose member `member` is the link `ptr`. */
#define P2P_LIST_ENTRY(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Visits each link of head; the body must not unlink any. */
#define P2P_LIST_FOREACH(it, head) for ((it) = (head)->next; (it) != (head); (it) = (it)->next)

/* Visits each link of head; the body may remove (and free) the visited one. */
#define P2P_LIST_FOREACH_SAFE(it, tmp, head)                                                       \
    for ((it) = (head)->next, (tmp) = (it)->next; (it) != (head); (it) = (tmp), (tmp) = (it)->next)

static inline void p2p_list_init(struct p2p_list *l)
{
    l->prev = l->next = l;
}

static inline bool p2p_list_empty(const struct p2p_list *head)
{
    return head->next == head;
}

/* Inserts n at the front of head (n not linked). */
static inline void p2p_list_push_front(struct p2p_list *head, struct p2p_list *n)
{
    n->next = head->next;
    n->prev = head;
    head->next->prev = n;
    head->next = n;
}

/* Unlinks n (from whatever list holds it); n is then an empty list of its own. */
static inline void p2p_list_remove(struct p2p_list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    p2p_list_init(n);
}

#endif
