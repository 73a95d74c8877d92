// Chain verification and reading certificates, with OpenSSL's X509_STORE.
#include <openssl/err.h>

#include <cctype>
#include <ctime>
#include <string>
#include <utility>

#include "keyline/hsm/x509.h"
#include "x509/x509_codec.h"

namespace keyline::hsm {

using namespace internal;

StatusOr<CertificateSubject> SubjectOf(std::string_view cert_pem) {
  ASSIGN_OR_RETURN(X509Ptr cert, ParseCertificatePem(cert_pem, "certificate"));
  return FromX509Name(X509_get_subject_name(cert.get()));
}

StatusOr<std::vector<uint8_t>> PublicKeyInfoOf(std::string_view cert_pem) {
  ASSIGN_OR_RETURN(X509Ptr cert, ParseCertificatePem(cert_pem, "certificate"));
  if (X509_get0_pubkey(cert.get()) == nullptr) {
    return InvalidArgumentError("certificate public key cannot be read");
  }
  return SpkiOf(X509_get_X509_PUBKEY(cert.get()));
}

StatusOr<CertificateInfo> InspectCertificate(std::string_view cert_pem) {
  ASSIGN_OR_RETURN(X509Ptr cert, ParseCertificatePem(cert_pem, "certificate"));
  CertificateInfo info;
  info.subject = FromX509Name(X509_get_subject_name(cert.get()));
  info.issuer = FromX509Name(X509_get_issuer_name(cert.get()));
  BignumPtr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr));
  if (serial) {
    char* hex = BN_bn2hex(serial.get());
    if (hex != nullptr) {
      info.serial_hex = hex;
      OPENSSL_free(hex);
      for (char& c : info.serial_hex) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  for (auto [time, out] : {std::pair{X509_get0_notBefore(cert.get()), &info.validity.not_before},
                           std::pair{X509_get0_notAfter(cert.get()), &info.validity.not_after}}) {
    std::tm tm{};
    if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) {
      return InvalidArgumentError("certificate validity cannot be read");
    }
    *out = std::chrono::sys_seconds(std::chrono::seconds(timegm(&tm)));
  }
  // X509_get_extension_flags computes the cached extension data (and flags invalid ones).
  const uint32_t flags = X509_get_extension_flags(cert.get());
  if ((flags & EXFLAG_INVALID) != 0) return InvalidArgumentError("certificate has invalid extensions");
  info.is_ca = (flags & EXFLAG_CA) != 0;
  info.path_length = X509_get_pathlen(cert.get());
  info.self_signed = X509_self_signed(cert.get(), 1) == 1;
  ERR_clear_error();
  if (X509_get0_pubkey(cert.get()) == nullptr) {
    return InvalidArgumentError("certificate public key cannot be read");
  }
  ASSIGN_OR_RETURN(info.spki_der, SpkiOf(X509_get_X509_PUBKEY(cert.get())));
  return info;
}

Status VerifyChain(std::string_view leaf, std::span<const std::string> chain, std::string_view root,
                   std::chrono::sys_seconds at_time) {
  ASSIGN_OR_RETURN(X509Ptr leaf_cert, ParseCertificatePem(leaf, "leaf certificate"));
  ASSIGN_OR_RETURN(X509Ptr root_cert, ParseCertificatePem(root, "root certificate"));
  std::vector<X509Ptr> intermediates;
  for (size_t i = 0; i < chain.size(); ++i) {
    ASSIGN_OR_RETURN(X509Ptr cert,
                     ParseCertificatePem(chain[i], "chain certificate " + std::to_string(i)));
    intermediates.push_back(std::move(cert));
  }
  X509StorePtr store(X509_STORE_new());
  if (!store || X509_STORE_add_cert(store.get(), root_cert.get()) != 1) {
    return InternalError("OpenSSL: cannot build a trust store: " + TakeOpenSslError());
  }
  // The stack borrows the certificates: intermediates owns them.
  struct StackFree {
    void operator()(STACK_OF(X509) * stack) const { sk_X509_free(stack); }
  };
  std::unique_ptr<STACK_OF(X509), StackFree> untrusted(sk_X509_new_null());
  for (const X509Ptr& cert : intermediates) {
    if (!untrusted || sk_X509_push(untrusted.get(), cert.get()) <= 0) {
      return InternalError("OpenSSL: cannot hold the chain");
    }
  }
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), leaf_cert.get(), untrusted.get()) != 1) {
    return InternalError("OpenSSL: cannot start a verification: " + TakeOpenSslError());
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, at_time.time_since_epoch().count());
  X509_STORE_CTX_set_flags(ctx.get(), X509_V_FLAG_X509_STRICT);
  if (X509_verify_cert(ctx.get()) == 1) return Status::Ok();

  int error = X509_STORE_CTX_get_error(ctx.get());
  int depth = X509_STORE_CTX_get_error_depth(ctx.get());
  X509* failed = X509_STORE_CTX_get_current_cert(ctx.get());
  std::string who = failed != nullptr ? FromX509Name(X509_get_subject_name(failed)).common_name : "";
  if (who.empty() && failed != nullptr) who = FromX509Name(X509_get_subject_name(failed)).serial_number;
  std::string message = std::string("certificate chain refused at depth ") + std::to_string(depth) +
                        " ('" + who + "'): " + X509_verify_cert_error_string(error);
  ERR_clear_error();
  if (error == X509_V_ERR_CERT_HAS_EXPIRED || error == X509_V_ERR_CERT_NOT_YET_VALID) {
    return FailedPreconditionError(message);
  }
  return UnauthenticatedError(message);
}

}  // namespace keyline::hsm
