#include "test_pki.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>

namespace hyperaccel::testing {
namespace {

struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CertFree {
  void operator()(X509* x) const { X509_free(x); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, CertFree>;
using Bio = std::unique_ptr<BIO, BioFree>;

void Check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("test PKI: ") + what + " failed");
}

std::string Drain(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  Check(n >= 0 && data != nullptr, "BIO_get_mem_data");
  return {data, static_cast<size_t>(n)};
}

std::string KeyPem(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  Check(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1,
        "writing a key");
  return Drain(bio.get());
}

std::string CertPem(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  Check(PEM_write_bio_X509(bio.get(), cert) == 1, "writing a certificate");
  return Drain(bio.get());
}

Key NewKey() {
  Key key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  Check(key != nullptr, "EC key generation");
  return key;
}

// A certificate for `cn` signed by `issuer` (self-signed when null) with OpenSSL config-style
// extensions ({NID_subject_alt_name, "IP:127.0.0.1"}, ...).
Cert MakeCert(const std::string& cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, long serial,
              const std::vector<std::pair<int, std::string>>& extensions) {
  Cert cert(X509_new());
  Check(cert != nullptr, "X509_new");
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24L * 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1,
                             -1, 0);
  X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name);
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
  for (const auto& [nid, value] : extensions) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    Check(ext != nullptr, "an X.509 extension");
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  Check(X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256()) > 0, "signing");
  return cert;
}

}  // namespace

TestPki::TestPki() {
  static std::atomic<int> counter{0};
  dir_ = std::filesystem::temp_directory_path() /
         ("hyperaccel-pki-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  std::filesystem::create_directories(dir_);
  Key ca_key = NewKey();
  Cert ca = MakeCert("test-ca", ca_key.get(), nullptr, nullptr, 1,
                     {{NID_basic_constraints, "critical,CA:TRUE"}, {NID_key_usage, "critical,keyCertSign"}});
  Key server_key = NewKey();
  Cert server = MakeCert("kube-apiserver", server_key.get(), ca.get(), ca_key.get(), 2,
                         {{NID_subject_alt_name, "IP:127.0.0.1"}, {NID_ext_key_usage, "serverAuth"}});
  Key client_key = NewKey();
  Cert client = MakeCert("system:node:n1", client_key.get(), ca.get(), ca_key.get(), 3,
                         {{NID_ext_key_usage, "clientAuth"}});
  Key other_key = NewKey();
  Cert other_ca = MakeCert("other-ca", other_key.get(), nullptr, nullptr, 4,
                           {{NID_basic_constraints, "critical,CA:TRUE"}});
  ca_pem = CertPem(ca.get());
  other_ca_pem = CertPem(other_ca.get());
  client_cert_pem = CertPem(client.get());
  client_key_pem = KeyPem(client_key.get());
  ca_file = Write("ca.crt", ca_pem);
  server_cert_file = Write("server.crt", CertPem(server.get()));
  server_key_file = Write("server.key", KeyPem(server_key.get()));
  client_cert_file = Write("client.crt", client_cert_pem);
  client_key_file = Write("client.key", client_key_pem);
}

TestPki::~TestPki() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string TestPki::Write(const std::string& name, const std::string& text) {
  auto path = (dir_ / name).string();
  std::ofstream out(path);
  out << text;
  Check(static_cast<bool>(out), "writing a PEM file");
  return path;
}

}  // namespace hyperaccel::testing
