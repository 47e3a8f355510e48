// Certificates for HTTPS tests and benchmarks, made with OpenSSL when constructed: a CA, a server
// certificate for 127.0.0.1 (IP SAN only, so "localhost" does not match it), a client certificate
// signed by the CA, and an unrelated second CA. PEM text in memory and in files under a temporary
// directory that the destructor deletes. P-256 keys, valid from an hour ago for a day.
// Throws std::runtime_error when OpenSSL fails (test code only).
#pragma once

#include <filesystem>
#include <string>

namespace hyperaccel::testing {

class TestPki {
 public:
  TestPki();
  ~TestPki();
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;

  std::string ca_pem, other_ca_pem, client_cert_pem, client_key_pem;
  std::string ca_file, server_cert_file, server_key_file, client_cert_file, client_key_file;

 private:
  std::string Write(const std::string& name, const std::string& text);
  std::filesystem::path dir_;
};

}  // namespace hyperaccel::testing
