// Hashes of the guest stream (OpenSSL EVP): MD5, SHA-1, SHA-256.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace vdisk {

enum class HashAlgo { kMd5, kSha1, kSha256 };
const char* hash_algo_name(HashAlgo a);

// Parses "md5,sha1,sha256" (any subset, any order) or "none" (empty list).
// Throws Error(kInvalidArgument) for an unknown name.
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
};

}  // namespace vdisk
