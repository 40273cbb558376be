#pragma once
// A read-only memory map of a whole file. Tensors that wrap its bytes keep it alive through the
// shared owner, so a checkpoint's weights can be used in place without a second copy.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <span>
#include <string>

#include "ctmllm/core/error.hpp"

namespace ctmllm::io {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path) : path_(path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    CTMLLM_CHECK(fd >= 0, path, ": cannot open (", std::strerror(errno), ")");
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      fail(path, ": not a regular file");
    }
    size_ = size_t(st.st_size);
    void* p = nullptr;
    if (size_ > 0) {
      p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        const int err = errno;
        ::close(fd);
        fail(path, ": mmap failed (", std::strerror(err), ")");
      }
    }
    ::close(fd);
    const size_t n = size_;
    owner_ = std::shared_ptr<std::byte>(static_cast<std::byte*>(p), [n](std::byte* q) {
      if (q) ::munmap(q, n);
    });
  }

  // Bytes already in memory (a decompressed archive member, a fuzzer input) behind the same
  // interface; `name` stands in for the path in error messages.
  static MappedFile from_memory(std::string name, std::shared_ptr<std::byte> owner, size_t size) {
    MappedFile f;
    f.path_ = std::move(name);
    f.owner_ = std::move(owner);
    f.size_ = size;
    return f;
  }

  const std::string& path() const { return path_; }
  size_t size() const { return size_; }
  const std::byte* data() const { return owner_.get(); }
  std::span<const std::byte> bytes() const { return {owner_.get(), size_}; }
  // Shared ownership of the mapping, aliased to `p` (a pointer inside it).
  std::shared_ptr<std::byte> share(const std::byte* p) const {
    return std::shared_ptr<std::byte>(owner_, const_cast<std::byte*>(p));
  }

 private:
  MappedFile() = default;

  std::string path_;
  size_t size_ = 0;
  std::shared_ptr<std::byte> owner_;
};

}  // namespace ctmllm::io
