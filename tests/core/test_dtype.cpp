// bf16 and half conversion: exhaustive round trips, ties to even, NaN, Inf, overflow, subnormals.
#include <bit>
#include <cmath>
#include <limits>

#include "ctmllm/core/dtype.hpp"
#include "support/catch.hpp"

using namespace ctmllm;

namespace {
uint16_t bf16_bits(float f) { return bf16(f).bits; }
uint16_t half_bits(float f) { return half(f).bits; }
float from_bits(uint32_t u) { return std::bit_cast<float>(u); }
}  // namespace

TEST_CASE("every bf16 value survives a round trip through float", "[core][dtype]") {
  for (uint32_t b = 0; b < 65536; ++b) {
    const float f = bf16::from_bits(uint16_t(b));
    if (std::isnan(f)) {
      CHECK(std::isnan(float(bf16(f))));
    } else {
      REQUIRE(bf16_bits(f) == b);
    }
  }
}

TEST_CASE("every half value survives a round trip through float", "[core][dtype]") {
  for (uint32_t b = 0; b < 65536; ++b) {
    const float f = half::from_bits(uint16_t(b));
    if (std::isnan(f)) {
      CHECK(std::isnan(float(half(f))));
    } else {
      REQUIRE(half_bits(f) == b);
    }
  }
}

TEST_CASE("bf16 rounds to nearest, ties to even", "[core][dtype]") {
  CHECK(bf16_bits(1.0f) == 0x3f80);
  CHECK(bf16_bits(from_bits(0x3f808000)) == 0x3f80);  // halfway, even below
  CHECK(bf16_bits(from_bits(0x3f818000)) == 0x3f82);  // halfway, even above
  CHECK(bf16_bits(from_bits(0x3f808001)) == 0x3f81);  // just above halfway
  CHECK(bf16_bits(from_bits(0x3f807fff)) == 0x3f80);  // just below halfway
  CHECK(bf16_bits(-2.0f) == 0xc000);
  CHECK(bf16_bits(std::numeric_limits<float>::infinity()) == 0x7f80);
  CHECK(bf16_bits(-std::numeric_limits<float>::infinity()) == 0xff80);
  CHECK(bf16_bits(std::numeric_limits<float>::max()) == 0x7f80);  // rounds up to Inf
  CHECK(std::isnan(float(bf16(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(std::isnan(float(bf16(from_bits(0x7f800001)))));  // a NaN whose payload would round to Inf
  CHECK(bf16_bits(from_bits(0x00010000)) == 0x0001);      // float subnormals keep their top bits
}

TEST_CASE("half rounds to nearest, ties to even, with overflow and subnormals", "[core][dtype]") {
  CHECK(half_bits(1.0f) == 0x3c00);
  CHECK(half_bits(-2.0f) == 0xc000);
  CHECK(half_bits(65504.0f) == 0x7bff);  // largest finite
  CHECK(half_bits(65519.0f) == 0x7bff);  // below the rounding midpoint
  CHECK(half_bits(65520.0f) == 0x7c00);  // midpoint rounds to even = Inf
  CHECK(half_bits(1e10f) == 0x7c00);
  CHECK(half_bits(-1e10f) == 0xfc00);
  CHECK(half_bits(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);      // tie, even below
  CHECK(half_bits(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);  // tie, even above
  CHECK(half_bits(std::ldexp(1.0f, -14)) == 0x0400);             // smallest normal
  CHECK(half_bits(std::ldexp(1.0f, -24)) == 0x0001);             // smallest subnormal
  CHECK(half_bits(std::ldexp(1.0f, -25)) == 0x0000);             // tie to even: zero
  CHECK(half_bits(3 * std::ldexp(1.0f, -25)) == 0x0002);         // tie to even: 2
  CHECK(half_bits(std::ldexp(1.0f, -26)) == 0x0000);
  CHECK(half_bits(-std::ldexp(1.0f, -30)) == 0x8000);  // signed zero
  CHECK(half_bits(std::numeric_limits<float>::infinity()) == 0x7c00);
  CHECK(std::isnan(float(half(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(float(half::from_bits(0x0001)) == std::ldexp(1.0f, -24));
  CHECK(float(half::from_bits(0x7bff)) == 65504.0f);
}

TEST_CASE("dtype names and sizes", "[core][dtype]") {
  CHECK(std::string(dtype_name(dtype_v<bf16>)) == "bfloat16");
  CHECK(std::string(dtype_name(dtype_v<half>)) == "float16");
  CHECK(dtype_size(DType::I64) == 8);
  CHECK(dtype_size(DType::BF16) == 2);
  CHECK(cast<float>(bf16(3.0f)) == 3.0f);
  CHECK(cast<int32_t>(half(7.0f)) == 7);
}
