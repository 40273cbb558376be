// LR schedules against transformers' schedule functions (tests/fixtures/train/schedules.json,
// tests/tools/gen_schedule_fixtures.py): warm-up steps from the ratio and the multiplier per step.
#include <string>

#include "ctmllm/text/json_file.hpp"
#include "ctmllm/train/schedule.hpp"
#include "support/catch.hpp"
#include "support/fixtures.hpp"

using namespace ctmllm;

TEST_CASE("schedules match transformers step by step", "[train][schedule]") {
  const auto fixture = text::read_json_file(testing::fixture_path("train/schedules.json"));
  REQUIRE(fixture.at("cases").size() >= 10);
  for (const auto& c : fixture.at("cases")) {
    const std::string name = c.at("name");
    const int64_t total = c.at("total_steps");
    INFO(name << ", warmup_ratio " << double(c.at("warmup_ratio")) << ", " << total << " steps");
    const int64_t warmup = train::warmup_steps_from_ratio(c.at("warmup_ratio"), total);
    CHECK(warmup == int64_t(c.at("warmup_steps")));
    const train::Schedule schedule(train::parse_schedule_kind(name), warmup, total);
    const auto& factors = c.at("factors");
    for (int64_t s = 0; s <= total; ++s) {
      INFO("step " << s);
      CHECK(schedule(s) == Approx(double(factors[size_t(s)])).epsilon(1e-12).margin(1e-15));
    }
  }
}

TEST_CASE("schedule names and arguments are checked", "[train][schedule]") {
  CHECK(train::parse_schedule_kind("cosine") == train::ScheduleKind::cosine);
  CHECK_THROWS_WITH(train::parse_schedule_kind("cosine_with_restarts"), Catch::Contains("cosine_with_restarts"));
  CHECK_THROWS_AS(train::warmup_steps_from_ratio(1.5, 10), Error);
  CHECK_THROWS_AS(train::Schedule(train::ScheduleKind::linear, -1, 10), Error);
  CHECK_THROWS_AS(train::Schedule()(-1), Error);
  // Past the end the decaying schedules stay at 0, as transformers' max(0, …) does.
  CHECK(train::Schedule(train::ScheduleKind::linear, 2, 10)(15) == 0.0);
  CHECK(train::Schedule(train::ScheduleKind::cosine, 2, 10)(10) == Approx(0.0).margin(1e-15));
}
