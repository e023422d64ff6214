/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fixed keys of the fuzz targets: an HS256 secret, a P-256 (ES256) and an
 * Ed25519 (EdDSA) pair, generated once with openssl for fuzzing only. They
 * are fixed, not generated per run, so that corpus tokens signed with them
 * keep verifying and the fuzzer explores what follows a valid signature.
 */
#ifndef PIGEON_FUZZ_KEYS_H
#define PIGEON_FUZZ_KEYS_H

#define FUZZ_HS256_SECRET "pigeon-fuzz-hs256-secret-0123456"

#define FUZZ_ES256_PRIVATE                                                                         \
	"-----BEGIN PRIVATE KEY-----\n"                                                            \
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg+sI+/YM/u94NSgGg\n"                       \
	"2c6XRvefOY03OPcu3SEtlguWEcGhRANCAAQeKNM23YUwxa90Ef1B4fGv2hog4MbQ\n"                       \
	"Sm8yL3Lo3+yXSNALUnUfAK/1X4QnlThxxBiQZ1zpTD3jXf3h811OJnr0\n"                               \
	"-----END PRIVATE KEY-----\n"

#define FUZZ_ES256_PUBLIC                                                                          \
	"-----BEGIN PUBLIC KEY-----\n"                                                             \
	"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEHijTNt2FMMWvdBH9QeHxr9oaIODG\n"                       \
	"0EpvMi9y6N/sl0jQC1J1HwCv9V+EJ5U4ccQYkGdc6Uw941394fNdTiZ69A==\n"                           \
	"-----END PUBLIC KEY-----\n"

#define FUZZ_EDDSA_PRIVATE                                                                         \
	"-----BEGIN PRIVATE KEY-----\n"                                                            \
	"MC4CAQAwBQYDK2VwBCIEIFp58zUOZM+QlVdAfofIKneykUa/oIj8QKoozTDkxHZa\n"                       \
	"-----END PRIVATE KEY-----\n"

#define FUZZ_EDDSA_PUBLIC                                                                          \
	"-----BEGIN PUBLIC KEY-----\n"                                                             \
	"MCowBQYDK2VwAyEAXL3oFCvVxXNo34MM+0MoxUmnvzaWwPGZ/KRoBu6tZZ4=\n"                           \
	"-----END PUBLIC KEY-----\n"

/* The clock every token target verifies at (2023-11-14), so exp/nbf are reproducible. */
#define FUZZ_NOW_S 1700000000

#endif
