#pragma once
// Element types: the 16-bit floats (bf16, half) with round-to-nearest-even conversion, and the
// DType tag used by file formats and error messages.
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <ostream>
#include <type_traits>

namespace ctmllm {

// bfloat16: the top 16 bits of an IEEE float32.
struct bf16 {
  uint16_t bits = 0;
  bf16() = default;
  bf16(float f) : bits(from_float(f)) {}  // NOLINT: implicit like a built-in float type
  operator float() const { return std::bit_cast<float>(uint32_t(bits) << 16); }
  static bf16 from_bits(uint16_t b) { bf16 r; r.bits = b; return r; }

  static uint16_t from_float(float f) {
    uint32_t u = std::bit_cast<uint32_t>(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x0040u);  // NaN stays NaN (quiet)
    u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
    return uint16_t(u >> 16);
  }
};

// IEEE 754 binary16.
struct half {
  uint16_t bits = 0;
  half() = default;
  half(float f) : bits(from_float(f)) {}  // NOLINT
  operator float() const { return to_float(bits); }
  static half from_bits(uint16_t b) { half r; r.bits = b; return r; }

  static uint16_t from_float(float f) {
    const uint32_t u = std::bit_cast<uint32_t>(f);
    const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // NaN, quiet
    if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to >= 65520: Inf
    if (a >= 0x38800000u) {  // normal half
      uint32_t m = a + 0xc8000fffu + ((a >> 13) & 1u);  // rebias exponent (-112 << 23) and round
      return uint16_t(sign | (m >> 13));
    }
    if (a < 0x33000000u) return sign;  // below half the smallest subnormal: signed zero
    // Subnormal half: shift the implicit-one mantissa into place with round-to-nearest-even.
    const int e = int(a >> 23);
    const uint32_t mant = (a & 0x7fffffu) | 0x800000u;
    const int shift = 126 - e;  // 14..24
    uint32_t r = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1u), halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (r & 1u))) ++r;
    return uint16_t(sign | r);
  }
  static float to_float(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000u) << 16;
    const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (m << 13));
    if (e == 0) {
      if (m == 0) return std::bit_cast<float>(sign);
      const float v = std::ldexp(float(m), -24);
      return sign ? -v : v;
    }
    return std::bit_cast<float>(sign | ((e + 112u) << 23) | (m << 13));
  }
};

enum class DType { F64, F32, BF16, F16, I64, I32, I16, I8, U8, Bool };

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F64: return "float64";
    case DType::F32: return "float32";
    case DType::BF16: return "bfloat16";
    case DType::F16: return "float16";
    case DType::I64: return "int64";
    case DType::I32: return "int32";
    case DType::I16: return "int16";
    case DType::I8: return "int8";
    case DType::U8: return "uint8";
    case DType::Bool: return "bool";
  }
  return "unknown";
}
inline std::ostream& operator<<(std::ostream& os, DType t) { return os << dtype_name(t); }

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64: case DType::I64: return 8;
    case DType::F32: case DType::I32: return 4;
    case DType::BF16: case DType::F16: case DType::I16: return 2;
    case DType::I8: case DType::U8: case DType::Bool: return 1;
  }
  return 0;
}

template <class T> struct dtype_of;
template <> struct dtype_of<double> { static constexpr DType value = DType::F64; };
template <> struct dtype_of<float> { static constexpr DType value = DType::F32; };
template <> struct dtype_of<bf16> { static constexpr DType value = DType::BF16; };
template <> struct dtype_of<half> { static constexpr DType value = DType::F16; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::I64; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::I32; };
template <> struct dtype_of<int16_t> { static constexpr DType value = DType::I16; };
template <> struct dtype_of<int8_t> { static constexpr DType value = DType::I8; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::U8; };
template <> struct dtype_of<bool> { static constexpr DType value = DType::Bool; };
template <class T> inline constexpr DType dtype_v = dtype_of<T>::value;

template <class T>
inline constexpr bool is_floating_v = std::is_floating_point_v<T> || std::is_same_v<T, bf16> || std::is_same_v<T, half>;

// The type arithmetic on T accumulates in: double for double, float for every other float type.
template <class T>
using acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

// Value conversion between element types; 16-bit floats go through float32.
template <class To, class From>
inline To cast(From v) {
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (std::is_same_v<From, bf16> || std::is_same_v<From, half>) {
    return cast<To>(float(v));
  } else if constexpr (std::is_same_v<To, bf16> || std::is_same_v<To, half>) {
    return To(float(v));
  } else {
    return static_cast<To>(v);
  }
}

}  // namespace ctmllm
