// Signing X.509 structures with a key that stays in a KeyCustody.
//
// OpenSSL signs a certificate with an EVP_PKEY it holds, and a token-held key is not one (short
// of a custom OpenSSL provider). So OpenSSL builds and encodes, and the custody signs:
//   1. set the signature algorithm (ecdsa-with-SHA256) where the structure carries it,
//   2. DER-encode the to-be-signed part (i2d_re_X509_tbs / i2d_re_X509_REQ_tbs),
//   3. custody.SignEcdsaSha256(key, tbs) -> DER ECDSA-Sig-Value (software: libsodium-guarded
//      scalar; PKCS#11: CKM_ECDSA on the token),
//   4. put the signature in, and check it with OpenSSL against the signer's public key.
// Both backends take the same path; neither hands OpenSSL a private key.
#pragma once

#include "keyline/common/status.h"
#include "keyline/hsm/key_custody.h"
#include "x509/openssl_ptrs.h"

namespace keyline::hsm::internal {

// Signs `cert` (every other field set) by `key`, the kEcdsaP256 key whose public half is
// `signer_public`; verifies the result with it.
[[nodiscard]] Status SignCertificateInCustody(KeyCustody& custody, KeyHandle key,
                                              EVP_PKEY* signer_public, X509* cert);

// The same for a CSR, without the check: its receiver verifies it anyway (CheckCsr), and a
// CSR that does not verify is refused there, unlike a certificate that is handed out.
[[nodiscard]] Status SignRequestInCustody(KeyCustody& custody, KeyHandle key, X509_REQ* req);

}  // namespace keyline::hsm::internal
