#pragma once
// StringMap<V>: a hash map with std::string keys that std::string_view looks up without building a
// temporary string (the tokenizers' hot lookups take views into the text).
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace ctmllm::text {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

template <class V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

}  // namespace ctmllm::text
