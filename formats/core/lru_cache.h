// A small thread-safe least-recently-used cache of shared, immutable values
// (decompressed grains and chunks, loaded tables): readers on several threads
// share one entry, and an evicted entry lives on while a reader holds it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>

namespace vdisk {

template <class Key, class Value>
class LruCache {
 public:
  using Ptr = std::shared_ptr<const Value>;

  // Keeps at most `capacity` entries (at least 1).
  explicit LruCache(size_t capacity) : capacity_(std::max<size_t>(capacity, 1)) {}

  // The entry for `key` (now the most recently used), or null.
  Ptr get(const Key& key) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->second;
  }

  // Inserts `value` unless `key` is present (another thread got there
  // first: its value is kept), evicting the least recently used entries
  // beyond the capacity. Returns the cached value.
  Ptr put(const Key& key, Ptr value) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(key);
    if (it != map_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->second;
    }
    lru_.emplace_front(key, std::move(value));
    map_[key] = lru_.begin();
    while (map_.size() > capacity_) {
      map_.erase(lru_.back().first);
      lru_.pop_back();
    }
    return lru_.front().second;
  }

  size_t capacity() const { return capacity_; }

 private:
  using Item = std::pair<Key, Ptr>;
  size_t capacity_;
  std::mutex mu_;
  std::list<Item> lru_;
  std::unordered_map<Key, typename std::list<Item>::iterator> map_;
};

}  // namespace vdisk
