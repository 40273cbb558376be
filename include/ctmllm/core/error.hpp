#pragma once
// ctmllm::Error: the one exception type of the library. Every check on user input (shapes, dtypes,
// file contents, indices) throws it with a message that names what was wrong.
#include <sstream>
#include <stdexcept>
#include <string>

namespace ctmllm {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

template <class... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(detail::concat(args...));
}

}  // namespace ctmllm

// CTMLLM_CHECK(cond, parts...): throw ctmllm::Error(parts...) when cond is false. The message parts
// are only formatted on failure, so checks cost one branch on the hot path.
#define CTMLLM_CHECK(cond, ...)             \
  do {                                      \
    if (!(cond)) ::ctmllm::fail(__VA_ARGS__); \
  } while (0)
