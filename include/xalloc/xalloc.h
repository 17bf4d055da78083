/*
 * xalloc: the public header. The standard allocation functions keep their
 * usual declarations in <stdlib.h> and <malloc.h>; this header declares the
 * ones those headers may lack.
 */
#ifndef XALLOC_XALLOC_H
#define XALLOC_XALLOC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define XALLOC_VERSION "0.1.0"
#define XALLOC_VERSION_MAJOR 0
#define XALLOC_VERSION_MINOR 1
#define XALLOC_VERSION_PATCH 0

size_t malloc_usable_size(void *ptr);
/* C23: free with the size (and alignment) the block was allocated with. */
void free_sized(void *ptr, size_t size);
void free_aligned_sized(void *ptr, size_t alignment, size_t size);

#ifdef __cplusplus
}
#endif
#endif
