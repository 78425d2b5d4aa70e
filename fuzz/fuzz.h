/* fuzz.h: what every libFuzzer harness here shares: the entry point's
 * prototype and an invariant check that survives -DNDEBUG. */
#ifndef OPENOVA_FUZZ_H
#define OPENOVA_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* abort() rather than assert(): libFuzzer saves the input of any deadly
 * signal, and the check must not vanish in a release-style build. */
#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

#endif
