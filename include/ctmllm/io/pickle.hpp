#pragma once
// A restricted unpickler (protocols 2-5) for the object graphs torch.save writes for state dicts. It
// executes nothing: it builds a tree of plain values, and a call (REDUCE) becomes a `Call` node that
// records the callee and its arguments for the caller to interpret. Only the globals in the
// allow-list below may be named, and only the opcodes a state dict needs are understood; anything
// else is an Error naming the global or the opcode.
//
// Containers live in an arena and values refer to them by index, so memoised objects are shared the
// way Python shares them (SETITEMS on a memoised dict is seen through every reference), copies are
// cheap, and a hostile pickle cannot make memory grow faster than its own length.
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ctmllm/core/error.hpp"

namespace ctmllm::io::pickle {

enum class Kind : uint8_t {
  None, Bool, Int, Float, String,
  Global,        // an allow-listed global; `ref` indexes strings ("module.name")
  Tuple, List,   // `ref` indexes Pickle::nodes, the elements are in `items`
  Dict,          // `ref` indexes Pickle::nodes, alternating key, value in `items`
  Call,          // REDUCE of an allow-listed callable: items = {callee Global, args Tuple}
  PersistentId,  // BINPERSID: items = {the persistent id}
  Mark,          // only on the machine's stack
};

struct Value {
  Kind kind = Kind::None;
  int64_t i = 0;   // Bool, Int
  double f = 0;    // Float
  uint32_t ref = 0;  // String/Global: index into strings; containers, Call, PersistentId: into nodes
};

struct Node {
  std::vector<Value> items;
};

// The globals a torch state dict may name: three callables for REDUCE, and the storage types that
// appear as values inside persistent ids.
inline bool allowed_callable(const std::string& qualified) {
  return qualified == "collections.OrderedDict" || qualified == "torch._utils._rebuild_tensor_v2" ||
         qualified == "torch._utils._rebuild_parameter";
}
inline bool allowed_storage_type(const std::string& qualified) {
  static const char* const types[] = {"torch.FloatStorage", "torch.HalfStorage",  "torch.BFloat16Storage",
                                      "torch.DoubleStorage", "torch.LongStorage", "torch.IntStorage",
                                      "torch.ShortStorage",  "torch.CharStorage", "torch.ByteStorage",
                                      "torch.BoolStorage"};
  for (const char* t : types)
    if (qualified == t) return true;
  return false;
}

// The unpickled object graph: `root` is what STOP returned.
struct Pickle {
  std::string source;  // names the pickle in error messages ("ckpt.pth: archive/data.pkl")
  std::vector<Node> nodes;
  std::vector<std::string> strings;
  Value root;

  const std::string& str(const Value& v) const {
    CTMLLM_CHECK(v.kind == Kind::String || v.kind == Kind::Global, source, ": expected a string");
    return strings[v.ref];
  }
  const std::vector<Value>& items(const Value& v) const {
    CTMLLM_CHECK(v.kind >= Kind::Tuple && v.kind <= Kind::PersistentId, source, ": expected a container");
    return nodes[v.ref].items;
  }
};

inline const char* kind_name(Kind k) {
  switch (k) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::String: return "str";
    case Kind::Global: return "global";
    case Kind::Tuple: return "tuple";
    case Kind::List: return "list";
    case Kind::Dict: return "dict";
    case Kind::Call: return "call";
    case Kind::PersistentId: return "persistent id";
    case Kind::Mark: return "mark";
  }
  return "?";
}

class Unpickler {
 public:
  Unpickler(std::span<const std::byte> bytes, std::string source) : in_(bytes) {
    out_.source = std::move(source);
    // Values index the arena with 32 bits; a state dict's pickle is kilobytes to a few megabytes.
    CTMLLM_CHECK(bytes.size() < (uint64_t(1) << 32), out_.source, ": pickle of ", bytes.size(), " bytes is too large");
  }

  Pickle run() {
    for (;;) {
      const size_t at = pos_;
      const uint8_t op = u8();
      switch (op) {
        case 0x80: {  // PROTO
          const uint8_t proto = u8();
          CTMLLM_CHECK(proto >= 2 && proto <= 5, src(), ": pickle protocol ", int(proto), " is not supported (2 to 5 are)");
          break;
        }
        case 0x95: take(8); break;  // FRAME: a length hint only
        case '.':                    // STOP
          CTMLLM_CHECK(stack_.size() == 1 && marks_.empty(), src(), ": STOP with ", stack_.size(), " values on the stack");
          out_.root = stack_.back();
          return std::move(out_);
        case '(': marks_.push_back(stack_.size()); stack_.push_back({Kind::Mark}); break;
        case 'N': push({Kind::None}); break;
        case 0x88: push({Kind::Bool, 1}); break;
        case 0x89: push({Kind::Bool, 0}); break;
        case 'J': push({Kind::Int, int32_t(le(4))}); break;  // BININT
        case 'K': push({Kind::Int, int64_t(le(1))}); break;  // BININT1
        case 'M': push({Kind::Int, int64_t(le(2))}); break;  // BININT2
        case 0x8a: push({Kind::Int, long1()}); break;        // LONG1
        case 'G': {                                          // BINFLOAT: big-endian double
          uint64_t b = 0;
          for (const std::byte c : take(8)) b = b << 8 | uint64_t(c);
          double d;
          std::memcpy(&d, &b, 8);
          push({Kind::Float, 0, d});
          break;
        }
        case 0x8c: push(string(le(1))); break;  // SHORT_BINUNICODE
        case 'X': push(string(le(4))); break;   // BINUNICODE
        case 0x8d: push(string(le(8))); break;  // BINUNICODE8
        case '}': push(node(Kind::Dict, {})); break;
        case ']': push(node(Kind::List, {})); break;
        case ')': push(node(Kind::Tuple, {})); break;
        case 0x85: push(node(Kind::Tuple, pop_n(1))); break;
        case 0x86: push(node(Kind::Tuple, pop_n(2))); break;
        case 0x87: push(node(Kind::Tuple, pop_n(3))); break;
        case 't': push(node(Kind::Tuple, pop_mark())); break;
        case 'l': push(node(Kind::List, pop_mark())); break;
        case 'd': {
          std::vector<Value> kv = pop_mark();
          CTMLLM_CHECK(kv.size() % 2 == 0, src(), ": DICT with an odd number of items at byte ", at);
          push(node(Kind::Dict, std::move(kv)));
          break;
        }
        case 'a': {  // APPEND
          const Value v = pop();
          append(top(), Kind::List, {v}, at);
          break;
        }
        case 'e': {  // APPENDS
          std::vector<Value> vs = pop_mark();
          append(top(), Kind::List, std::move(vs), at);
          break;
        }
        case 's': {  // SETITEM
          const Value v = pop(), k = pop();
          append(top(), Kind::Dict, {k, v}, at);
          break;
        }
        case 'u': {  // SETITEMS
          std::vector<Value> kv = pop_mark();
          CTMLLM_CHECK(kv.size() % 2 == 0, src(), ": SETITEMS with an odd number of items at byte ", at);
          append(top(), Kind::Dict, std::move(kv), at);
          break;
        }
        case 'q': memo_put(uint32_t(le(1))); break;  // BINPUT
        case 'r': memo_put(uint32_t(le(4))); break;  // LONG_BINPUT
        case 0x94: memo_put(uint32_t(memo_.size())); break;  // MEMOIZE
        case 'h': memo_get(uint32_t(le(1)), at); break;      // BINGET
        case 'j': memo_get(uint32_t(le(4)), at); break;      // LONG_BINGET
        case 'c': {  // GLOBAL: "module\nname\n"
          const std::string module = line(), name = line();
          push(global(module, name));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          const Value name = pop(), module = pop();
          CTMLLM_CHECK(name.kind == Kind::String && module.kind == Kind::String, src(),
                       ": STACK_GLOBAL needs two strings at byte ", at);
          push(global(out_.strings[module.ref], out_.strings[name.ref]));
          break;
        }
        case 'R': {  // REDUCE
          const Value args = pop(), fn = pop();
          CTMLLM_CHECK(fn.kind == Kind::Global && args.kind == Kind::Tuple, src(), ": REDUCE needs a global and an argument tuple at byte ", at);
          if (out_.strings[fn.ref] == "collections.OrderedDict") {
            CTMLLM_CHECK(out_.nodes[args.ref].items.empty(), src(), ": OrderedDict called with arguments at byte ", at);
            push(node(Kind::Dict, {}));
          } else {
            CTMLLM_CHECK(allowed_callable(out_.strings[fn.ref]), src(), ": ", out_.strings[fn.ref], " cannot be called");
            push(node(Kind::Call, {fn, args}));
          }
          break;
        }
        case 'b': {  // BUILD: sets attributes (an OrderedDict's _metadata), which a state dict does not need
          pop();
          CTMLLM_CHECK(top().kind == Kind::Dict, src(), ": BUILD on a ", kind_name(top().kind), " at byte ", at);
          break;
        }
        case 'Q': push(node(Kind::PersistentId, {pop()})); break;  // BINPERSID
        default:
          fail(src(), ": pickle opcode 0x", hex(op), printable(op), " at byte ", at,
               " is not supported by the restricted unpickler");
      }
    }
  }

 private:
  const std::string& src() const { return out_.source; }

  std::span<const std::byte> take(uint64_t n) {
    CTMLLM_CHECK(n <= in_.size() - pos_, src(), ": pickle truncated at byte ", pos_, " (", n, " more bytes needed)");
    const auto s = in_.subspan(pos_, size_t(n));
    pos_ += size_t(n);
    return s;
  }
  uint8_t u8() { return uint8_t(take(1)[0]); }
  uint64_t le(int n) {
    uint64_t v = 0;
    const auto b = take(uint64_t(n));
    for (int i = n - 1; i >= 0; --i) v = v << 8 | uint64_t(b[size_t(i)]);
    return v;
  }
  // LONG1: n little-endian two's-complement bytes; only values that fit int64.
  int64_t long1() {
    const uint8_t n = u8();
    CTMLLM_CHECK(n <= 8, src(), ": LONG1 of ", int(n), " bytes does not fit a 64-bit integer");
    if (n == 0) return 0;
    uint64_t v = le(n);
    if (n < 8 && (v >> (8 * n - 1)) & 1u) v |= ~uint64_t(0) << (8 * n);  // sign-extend
    return int64_t(v);
  }
  std::string line() {
    const size_t start = pos_;
    while (pos_ < in_.size() && in_[pos_] != std::byte{'\n'}) ++pos_;
    CTMLLM_CHECK(pos_ < in_.size(), src(), ": GLOBAL line at byte ", start, " is not terminated");
    std::string s(reinterpret_cast<const char*>(in_.data() + start), pos_ - start);
    ++pos_;
    return s;
  }
  Value string(uint64_t n) {
    const auto b = take(n);
    out_.strings.emplace_back(reinterpret_cast<const char*>(b.data()), b.size());
    return {Kind::String, 0, 0, uint32_t(out_.strings.size() - 1)};
  }
  Value global(const std::string& module, const std::string& name) {
    const std::string q = module + "." + name;
    CTMLLM_CHECK(allowed_callable(q) || allowed_storage_type(q), src(), ": global ", q, " is not allowed in a checkpoint (refusing to load it)");
    out_.strings.push_back(q);
    return {Kind::Global, 0, 0, uint32_t(out_.strings.size() - 1)};
  }
  Value node(Kind k, std::vector<Value> items) {
    out_.nodes.push_back({std::move(items)});
    return {k, 0, 0, uint32_t(out_.nodes.size() - 1)};
  }
  void append(const Value& target, Kind want, std::vector<Value> vs, size_t at) {
    CTMLLM_CHECK(target.kind == want, src(), ": cannot add items to a ", kind_name(target.kind), " at byte ", at);
    auto& items = out_.nodes[target.ref].items;
    items.insert(items.end(), vs.begin(), vs.end());
  }

  void push(Value v) { stack_.push_back(v); }
  const Value& top() const {
    CTMLLM_CHECK(!stack_.empty() && stack_.back().kind != Kind::Mark, src(), ": pickle stack underflow at byte ", pos_);
    return stack_.back();
  }
  Value pop() {
    const Value v = top();
    stack_.pop_back();
    return v;
  }
  std::vector<Value> pop_n(size_t n) {
    CTMLLM_CHECK(stack_.size() >= n + (marks_.empty() ? 0 : marks_.back() + 1), src(), ": pickle stack underflow at byte ", pos_);
    std::vector<Value> vs(stack_.end() - std::ptrdiff_t(n), stack_.end());
    stack_.resize(stack_.size() - n);
    return vs;
  }
  std::vector<Value> pop_mark() {
    CTMLLM_CHECK(!marks_.empty(), src(), ": no MARK on the pickle stack at byte ", pos_);
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Value> vs(stack_.begin() + std::ptrdiff_t(m) + 1, stack_.end());
    stack_.resize(m);
    return vs;
  }
  void memo_put(uint32_t key) { memo_[key] = top(); }
  void memo_get(uint32_t key, size_t at) {
    auto it = memo_.find(key);
    CTMLLM_CHECK(it != memo_.end(), src(), ": memo key ", key, " read before it was written at byte ", at);
    push(it->second);
  }

  static std::string hex(uint8_t b) {
    const char* d = "0123456789abcdef";
    return {d[b >> 4], d[b & 15]};
  }
  static std::string printable(uint8_t b) {
    return b >= 0x21 && b < 0x7f ? std::string(" ('") + char(b) + "')" : std::string();
  }

  std::span<const std::byte> in_;
  size_t pos_ = 0;
  Pickle out_;
  std::vector<Value> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, Value> memo_;
};

// Unpickles `bytes`; `source` names them in error messages.
inline Pickle unpickle(std::span<const std::byte> bytes, const std::string& source) {
  return Unpickler(bytes, source).run();
}

}  // namespace ctmllm::io::pickle
