/* The C library mixsum wraps: a 64-bit mixing function (splitmix64's finalizer), one
 * item per call or a whole array per call, and a description string the caller frees. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t mix(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

uint64_t mix_all(const uint64_t *xs, size_t n) {
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += mix(xs[i]);
    }
    return sum;
}

/* A new string, from malloc: the caller frees it with free(). */
char *mix_describe(uint64_t x) {
    char *s = malloc(32);
    if (s != NULL) {
        snprintf(s, 32, "%016llx", (unsigned long long)mix(x));
    }
    return s;
}
