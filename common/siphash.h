/* siphash.h: SipHash-2-4 (Aumasson and Bernstein, 2012), a keyed 64-bit hash
 * for hash tables whose keys an attacker chooses: without the 128-bit key no
 * one can predict which names collide. Written from the paper's description;
 * checked against its published test vectors (tests/unit/test_siphash.c).
 * Pure function: any thread. */
#ifndef RTM_SIPHASH_H
#define RTM_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t rtm_siphash24(const uint8_t key[16], const void *data, size_t len);

#endif
