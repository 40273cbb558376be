#pragma once
// Prefetcher: one background thread calls make(i) for i = first, first + 1, ... < end and keeps up
// to `depth` results ready in a bounded queue, so loading and preprocessing the next batches
// overlaps the training step. next() hands them out in index order (the order never depends on
// timing), and an exception thrown by make(i) is rethrown by the next() that would have returned
// item i. The destructor stops the thread and waits for it (a make() in progress finishes first).
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "ctmllm/core/error.hpp"

namespace ctmllm::data {

template <class Item>
class Prefetcher {
 public:
  Prefetcher(std::function<Item(int64_t)> make, int64_t first, size_t depth,
             int64_t end = std::numeric_limits<int64_t>::max())
      : make_(std::move(make)), first_(first), next_(first), end_(end), depth_(depth) {
    CTMLLM_CHECK(make_ != nullptr, "Prefetcher: no item function");
    CTMLLM_CHECK(depth > 0, "Prefetcher: depth must be at least 1");
    CTMLLM_CHECK(first <= end, "Prefetcher: first index ", first, " is past the end ", end);
    worker_ = std::thread([this] { run(); });
  }
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;
  ~Prefetcher() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    worker_.join();
  }

  // The index the next call of next() returns (consumer side).
  int64_t position() const { return next_; }

  Item next() {
    // After a failure every later call rethrows it: the worker made nothing past it.
    if (failed_) std::rethrow_exception(failed_);
    CTMLLM_CHECK(next_ < end_, "Prefetcher: read past the last index ", end_ - 1);
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return !ready_.empty(); });
    Slot s = std::move(ready_.front());
    ready_.pop_front();
    lock.unlock();
    changed_.notify_all();
    if (s.error) {
      failed_ = s.error;
      std::rethrow_exception(s.error);
    }
    ++next_;
    return std::move(*s.item);
  }

 private:
  struct Slot {
    std::optional<Item> item;
    std::exception_ptr error;
  };

  void run() {
    for (int64_t i = first_; i < end_; ++i) {
      {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return stop_ || ready_.size() < depth_; });
        if (stop_) return;
      }
      Slot s;
      try {
        s.item.emplace(make_(i));
      } catch (...) {
        s.error = std::current_exception();
      }
      const bool failed = s.error != nullptr;
      {
        std::lock_guard lock(mutex_);
        ready_.push_back(std::move(s));
      }
      changed_.notify_all();
      if (failed) return;  // nothing past a failure: the consumer stops there
    }
  }

  std::function<Item(int64_t)> make_;
  const int64_t first_;
  int64_t next_;                // consumer side only
  std::exception_ptr failed_;  // consumer side only
  const int64_t end_;
  const size_t depth_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Slot> ready_;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace ctmllm::data
