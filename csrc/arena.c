#include <stdlib.h>

#include "ffiprof.h"

struct ffiprof_node {
    ffiprof_node *next;
    uint64_t value;
};

/* Nodes are carved from one malloc'd block; reset makes the whole block free again. */
struct ffiprof_arena {
    size_t capacity;
    size_t used;
    ffiprof_node nodes[];
};

/* Same formula as node_value in src/workload/arena.rs. */
static uint64_t node_value(uint64_t i, uint64_t seed) { return (i ^ seed) * 0x9e3779b97f4a7c15ULL; }

/* Returns NULL when malloc fails; the list given stays valid. */
FFIPROF_CALLEE ffiprof_node *ffiprof_node_push(ffiprof_node *head, uint64_t value) {
    ffiprof_node *node = malloc(sizeof *node);
    if (node == NULL) {
        return NULL;
    }
    node->next = head;
    node->value = value;
    return node;
}

FFIPROF_CALLEE ffiprof_node *ffiprof_node_pop(ffiprof_node *head, uint64_t *value) {
    ffiprof_node *next = head->next;
    *value = head->value;
    free(head);
    return next;
}

uint64_t ffiprof_nodes_batched(uint64_t n, uint64_t seed) {
    ffiprof_node *head = NULL;
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        ffiprof_node *node = ffiprof_node_push(head, node_value(i, seed));
        if (node == NULL) {
            break; /* out of memory: the sum shows it, the list is still freed below */
        }
        head = node;
    }
    while (head != NULL) {
        uint64_t v = 0;
        head = ffiprof_node_pop(head, &v);
        sum += v;
    }
    return sum;
}

ffiprof_arena *ffiprof_arena_new(size_t capacity_nodes) {
    ffiprof_arena *arena = malloc(sizeof *arena + capacity_nodes * sizeof(ffiprof_node));
    if (arena == NULL) {
        return NULL;
    }
    arena->capacity = capacity_nodes;
    arena->used = 0;
    return arena;
}

/* Returns NULL when the arena is full. */
FFIPROF_CALLEE ffiprof_node *ffiprof_arena_push(ffiprof_arena *arena, ffiprof_node *head,
                                                uint64_t value) {
    if (arena->used == arena->capacity) {
        return NULL;
    }
    ffiprof_node *node = &arena->nodes[arena->used++];
    node->next = head;
    node->value = value;
    return node;
}

uint64_t ffiprof_list_sum(const ffiprof_node *head) {
    uint64_t sum = 0;
    for (; head != NULL; head = head->next) {
        sum += head->value;
    }
    return sum;
}

void ffiprof_arena_free(ffiprof_arena *arena) { free(arena); }
