// A small thread-safe LRU map from a 64-bit key to a shared value, for the
// caches formats keep within a fixed budget (decompressed VMDK grains, qcow2
// L2 tables and clusters).
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <unordered_map>
#include <utility>

namespace vdisk {

// V is a pointer-like type (std::shared_ptr<const T>): get() returns a null
// V on a miss. Holds at most `capacity` entries; the least recently used
// goes first. Every method may be called from any thread.
template <class V>
class LruCache {
 public:
  explicit LruCache(size_t capacity) : capacity_(capacity < 1 ? 1 : capacity) {}

  V get(uint64_t key) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->second;
  }

  // Keeps the value already cached under `key`, if any.
  void put(uint64_t key, V value) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(key);
    if (it != map_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return;
    }
    lru_.emplace_front(key, std::move(value));
    map_[key] = lru_.begin();
    while (map_.size() > capacity_) {
      map_.erase(lru_.back().first);
      lru_.pop_back();
    }
  }

 private:
  using Item = std::pair<uint64_t, V>;
  size_t capacity_;
  std::mutex mu_;
  std::list<Item> lru_;
  std::unordered_map<uint64_t, typename std::list<Item>::iterator> map_;
};

}  // namespace vdisk
