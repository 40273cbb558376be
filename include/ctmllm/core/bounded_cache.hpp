#pragma once
// BoundedCache<Key, Value>: a value built once per key and kept, for the last `capacity` keys built
// (when full, the oldest goes first), shared between threads. For what is costly to make and
// depends only on its key: cuDNN attention graphs (ops/cuda/sdpa_cudnn.cuh) and cuBLASLt GEMM plans
// (ops/cuda/gemm.cuh). Keys need operator<; values are handed out as shared_ptr<const Value>, so an
// evicted value lives on with its users.
#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <mutex>

#include "ctmllm/core/error.hpp"

namespace ctmllm {

template <class Key, class Value>
class BoundedCache {
 public:
  explicit BoundedCache(size_t capacity) : capacity_(capacity) {
    CTMLLM_CHECK(capacity > 0, "BoundedCache: capacity must be positive");
  }

  // The value for key, made by build() (returning a Value) when it is not kept. Builds run under the
  // cache's lock: two threads asking for one new key build it once.
  template <class Build>
  std::shared_ptr<const Value> get(const Key& key, Build&& build) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (const auto it = values_.find(key); it != values_.end()) return it->second;
    auto value = std::make_shared<const Value>(build());
    if (order_.size() == capacity_) {
      values_.erase(order_.front());
      order_.pop_front();
    }
    values_.emplace(key, value);
    order_.push_back(key);
    ++builds_;
    return value;
  }

  size_t size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return values_.size();
  }
  // Values built so far (evicted ones included).
  size_t builds() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return builds_;
  }

 private:
  size_t capacity_;
  mutable std::mutex mutex_;
  std::map<Key, std::shared_ptr<const Value>> values_;
  std::deque<Key> order_;  // keys in the order they were built
  size_t builds_ = 0;
};

}  // namespace ctmllm
