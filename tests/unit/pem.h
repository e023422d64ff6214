/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A key as PEM text, for the unit tests that load keys the way an operator's
 * key file would reach pigeon (test_token.c, test_keyset.c). Aborts on any
 * failure: a test without its key would test nothing.
 */
#ifndef PIGEON_TEST_PEM_H
#define PIGEON_TEST_PEM_H

#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

/* pkey's public key (private_key 0) or private key as PEM; the caller frees it. */
static char *pem_of(EVP_PKEY *pkey, int private_key)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *pem;
	long len;
	int ok;

	if (bio == NULL) {
		abort();
	}
	ok = private_key ? PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL)
	                 : PEM_write_bio_PUBKEY(bio, pkey);
	len = BIO_get_mem_data(bio, &data);
	if (ok != 1 || len <= 0 || (pem = malloc((size_t)len + 1)) == NULL) {
		abort();
	}
	memcpy(pem, data, (size_t)len);
	pem[len] = '\0';
	BIO_free(bio);
	return pem;
}

#endif
