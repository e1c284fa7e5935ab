#include "converters/hasher.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <optional>

#include "formats/core/error.h"
#include "formats/core/hex.h"

namespace vdisk {

const char* hash_algo_name(HashAlgo a) {
  switch (a) {
    case HashAlgo::kMd5:
      return "md5";
    case HashAlgo::kSha1:
      return "sha1";
    case HashAlgo::kSha256:
      return "sha256";
  }
  return "?";
}

namespace {

// "md5", "SHA-256" → the algorithm; nullopt for another name.
std::optional<HashAlgo> hash_algo_of(std::string name) {
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  name.erase(std::remove(name.begin(), name.end(), '-'), name.end());
  if (name == "md5") return HashAlgo::kMd5;
  if (name == "sha1") return HashAlgo::kSha1;
  if (name == "sha256") return HashAlgo::kSha256;
  return std::nullopt;
}

}  // namespace

std::vector<HashAlgo> parse_hash_algos(const std::string& text) {
  std::vector<HashAlgo> out;
  if (text == "none") return out;
  // An empty list would silently turn hashing off: only "none" says so.
  if (text.empty()) throw_invalid("", "no hash algorithm named (md5, sha1, sha256, or none)");
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string name =
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? text.size() + 1 : comma + 1;
    if (name.empty()) throw_invalid("", "empty name in hash list '" + text + "'");
    if (name == "none") throw_invalid("", "'none' cannot be combined with other algorithms");
    std::optional<HashAlgo> a = hash_algo_of(name);
    if (!a) throw_invalid("", "unknown hash algorithm '" + name + "' (known: md5, sha1, sha256)");
    if (std::find(out.begin(), out.end(), *a) == out.end()) out.push_back(*a);
  }
  return out;
}

size_t hash_hex_length(HashAlgo a) {
  switch (a) {
    case HashAlgo::kMd5:
      return 32;
    case HashAlgo::kSha1:
      return 40;
    case HashAlgo::kSha256:
      return 64;
  }
  return 0;
}

HashValue parse_hash_value(const std::string& algo_name, std::string hex) {
  std::optional<HashAlgo> a = hash_algo_of(algo_name);
  if (!a) throw_invalid("", "'" + algo_name + "' is not one of md5, sha1, sha256");
  for (auto& c : hex) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  bool ok = hex.size() == hash_hex_length(*a);
  for (char c : hex) ok = ok && std::isxdigit(static_cast<unsigned char>(c));
  if (!ok) {
    throw_invalid("", algo_name + " digest '" + hex + "' is not " +
                          std::to_string(hash_hex_length(*a)) + " hexadecimal digits");
  }
  return HashValue{*a, hex};
}

struct Hasher::Impl {
  EVP_MD_CTX* ctx = nullptr;
};

Hasher::Hasher(HashAlgo algo) : algo_(algo), impl_(std::make_unique<Impl>()) {
  const EVP_MD* md = algo == HashAlgo::kMd5    ? EVP_md5()
                     : algo == HashAlgo::kSha1 ? EVP_sha1()
                                               : EVP_sha256();
  impl_->ctx = EVP_MD_CTX_new();
  if (!impl_->ctx || EVP_DigestInit_ex(impl_->ctx, md, nullptr) != 1) {
    throw Error(ErrorKind::kIo, "", std::nullopt, "OpenSSL could not start a hash");
  }
}

Hasher::Hasher(HashAlgo algo, std::unique_ptr<Impl> impl) : algo_(algo), impl_(std::move(impl)) {}

Hasher::~Hasher() {
  EVP_MD_CTX_free(impl_->ctx);
}

std::unique_ptr<Hasher> Hasher::clone() const {
  auto impl = std::make_unique<Impl>();
  impl->ctx = EVP_MD_CTX_new();
  if (!impl->ctx || EVP_MD_CTX_copy_ex(impl->ctx, impl_->ctx) != 1) {
    EVP_MD_CTX_free(impl->ctx);
    throw Error(ErrorKind::kIo, "", std::nullopt, "OpenSSL could not copy a hash state");
  }
  return std::unique_ptr<Hasher>(new Hasher(algo_, std::move(impl)));
}

void Hasher::update(const void* data, size_t len) {
  EVP_DigestUpdate(impl_->ctx, data, len);
}

void Hasher::update_zeros(uint64_t len) {
  static const uint8_t zeros[1 << 16] = {};
  while (len > 0) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(len, sizeof zeros));
    EVP_DigestUpdate(impl_->ctx, zeros, n);
    len -= n;
  }
}

std::string Hasher::finish_hex() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(impl_->ctx, md, &n);
  return hex_bytes(md, n);
}

}  // namespace vdisk
