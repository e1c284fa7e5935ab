// Hashes of the guest stream (OpenSSL EVP): MD5, SHA-1, SHA-256.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace vdisk {

enum class HashAlgo { kMd5, kSha1, kSha256 };
const char* hash_algo_name(HashAlgo a);

// Parses "md5,sha1,sha256" (any subset, any order, case and '-' ignored:
// "SHA-256") or "none" (empty list). Throws Error(kInvalidArgument) for an
// unknown name, an empty text or item ("", "md5,,sha1"), and "none" inside a
// list.
std::vector<HashAlgo> parse_hash_algos(const std::string& text);

// One running hash. Not thread-safe; one per thread.
class Hasher {
 public:
  explicit Hasher(HashAlgo algo);
  ~Hasher();
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;
  void update(const void* data, size_t len);
  // Feeds `len` zero bytes without a buffer of that size.
  void update_zeros(uint64_t len);
  // Lower-case hex digest; the hasher cannot be updated afterwards.
  std::string finish_hex();
  // An independent copy of the running state (to finish one stream and keep
  // extending another that shares its prefix).
  std::unique_ptr<Hasher> clone() const;
  HashAlgo algo() const { return algo_; }

 private:
  struct Impl;
  Hasher(HashAlgo algo, std::unique_ptr<Impl> impl);
  HashAlgo algo_;
  std::unique_ptr<Impl> impl_;
};

struct HashValue {
  HashAlgo algo;
  std::string hex;
  bool operator==(const HashValue&) const = default;
};

// Hex digits of a digest: 32 (md5), 40 (sha1), 64 (sha256).
size_t hash_hex_length(HashAlgo a);

// A digest as typed or stored ("sha256", "AB12…"): one algorithm name and
// hash_hex_length hex digits (lower-cased). Throws Error(kInvalidArgument)
// naming what is wrong.
HashValue parse_hash_value(const std::string& algo_name, std::string hex);

}  // namespace vdisk
