#pragma once
// Catch2 v2 and v3 behind one include.
#if __has_include(<catch2/catch_test_macros.hpp>)
// v3 splits v2's single header: everything the tests use (GENERATE, Approx, string and floating-point
// matchers, a Session for the programs with their own main) is included here.
#include <catch2/catch_approx.hpp>
#include <catch2/catch_session.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#include <catch2/matchers/catch_matchers_floating_point.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <string>
#ifdef SKIP  // Catch2 3.3 and later
// Ends the test case as skipped (reported as such by Catch2 v3 and ctest).
#define CTMLLM_SKIP(reason) SKIP(reason)
#endif
namespace Catch {
// The substring matcher under its v2 names (v3 calls it Matchers::ContainsSubstring; its
// Matchers::Contains is a range matcher, not included here).
inline auto Contains(const std::string& s) { return Matchers::ContainsSubstring(s); }
namespace Matchers {
inline auto Contains(const std::string& s) { return ContainsSubstring(s); }
}  // namespace Matchers
}  // namespace Catch
using Catch::Approx;  // v2 declares it in the global namespace too
#else
#include <catch2/catch.hpp>
namespace Catch {
using Detail::Approx;  // v3 spells it Catch::Approx
}
#endif
#ifndef CTMLLM_SKIP
// Catch2 v2 (and v3 before 3.3) has no skip: the case passes with a warning that says why it did nothing.
#define CTMLLM_SKIP(reason) \
  do {                      \
    WARN(reason);           \
    return;                 \
  } while (0)
#endif
