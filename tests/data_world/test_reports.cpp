// Ground-truth reports: a tiny rule-based labeller reading finding_table.json recovers exactly the
// generated findings from every report; reports name each finding's location and size and the
// normal organs; phrasing varies with the seed.
#include <algorithm>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "ctmllm/data/anatomy.hpp"
#include "ctmllm/data/finding_table.hpp"
#include "ctmllm/data/phantom.hpp"
#include "ctmllm/data/report_writer.hpp"
#include "support/catch.hpp"
#include "support/fixtures.hpp"

using namespace ctmllm;
using namespace ctmllm::data;

namespace {

const std::string kTablePath = std::string(CTMLLM_TEST_DATA) + "/../../include/ctmllm/data/finding_table.json";

struct Kind {
  std::string name, region;
  std::vector<std::string> positive, negation;
};

std::vector<Kind> load_table() {
  std::ifstream in(kTablePath);
  REQUIRE(in.good());
  const auto j = nlohmann::json::parse(in);
  std::vector<Kind> kinds;
  for (const auto& k : j.at("kinds"))
    kinds.push_back({k.at("name"), k.at("region"), k.at("positive_patterns"), k.at("negation_cues")});
  return kinds;
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Sentences end at . ! ? ; followed by whitespace or the end, and at line breaks.
std::vector<std::string> sentences(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool end = c == '\n' || ((c == '.' || c == '!' || c == '?' || c == ';') &&
                                   (i + 1 == text.size() || std::isspace(static_cast<unsigned char>(text[i + 1]))));
    if (c != '\n') cur += c;
    if (end) out.push_back(lower(cur)), cur.clear();
  }
  if (!cur.empty()) out.push_back(lower(cur));
  return out;
}

// Start positions of whole-word occurrences of `phrase` in `s`.
std::vector<size_t> occurrences(const std::string& s, const std::string& phrase) {
  std::vector<size_t> at;
  auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  for (size_t p = s.find(phrase); p != std::string::npos; p = s.find(phrase, p + 1)) {
    const bool left = p == 0 || !word(s[p - 1]), right = p + phrase.size() == s.size() || !word(s[p + phrase.size()]);
    if (left && right) at.push_back(p);
  }
  return at;
}

// The table's rule; with cue_anywhere, a cue anywhere in the sentence negates (a simpler rule the
// generated reports must satisfy too).
std::set<std::string> label_text(const std::string& text, const std::vector<Kind>& kinds, const std::string& region,
                                 bool cue_anywhere) {
  std::set<std::string> found;
  for (const std::string& s : sentences(text))
    for (const Kind& k : kinds) {
      if (!region.empty() && k.region != region) continue;
      for (const std::string& pattern : k.positive)
        for (size_t at : occurrences(s, pattern)) {
          bool negated = false;
          for (const std::string& cue : k.negation)
            for (size_t c : occurrences(s, cue)) negated |= cue_anywhere || c < at;
          if (!negated) found.insert(k.name);
        }
    }
  return found;
}

std::set<std::string> kinds_of(const std::vector<Finding>& findings) {
  std::set<std::string> out;
  for (const Finding& f : findings) out.insert(kind_name(f.kind));
  return out;
}

bool contains(const std::string& text, const std::string& part) {
  return lower(text).find(lower(part)) != std::string::npos;
}

}  // namespace

TEST_CASE("the checked-in finding table is the one the code defines", "[data_world][reports]") {
  std::ifstream in(kTablePath);
  REQUIRE(in.good());
  CHECK(nlohmann::ordered_json::parse(in) == finding_table_json());
}

TEST_CASE("labelling every generated report recovers exactly its findings", "[data_world][reports]") {
  const std::vector<Kind> kinds = load_table();
  std::array<int, kNumFindingKinds> positives{};
  int cases = 0;
  for (double prevalence : {0.0, 0.35, 1.0}) {
    std::array<double, kNumFindingKinds> p{};
    p.fill(prevalence);
    for (uint64_t seed = 0; seed < 150; ++seed) {
      const Anatomy a = sample_anatomy({384, 384, 320}, p, seed + uint64_t(prevalence * 1000));
      for (uint64_t phrasing = 0; phrasing < 4; ++phrasing) {
        const Report r = write_report(a.findings, phrasing * 7919 + seed);
        std::set<std::string> all_regions, all_anywhere;
        for (Region region : kRegions) {
          std::vector<Finding> expected;
          for (const Finding& f : a.findings)
            if (f.region() == region) expected.push_back(f);
          INFO(region_name(region) << ": " << r.region(region));
          CHECK(label_text(r.region(region), kinds, region_name(region), false) == kinds_of(expected));
          CHECK(label_text(r.region(region), kinds, region_name(region), true) == kinds_of(expected));
        }
        // Without the region restriction too: no kind's phrases appear in another region.
        const std::string whole =
            r.region(Region::chest) + "\n" + r.region(Region::abdomen) + "\n" + r.region(Region::pelvis);
        CHECK(label_text(whole, kinds, "", false) == kinds_of(a.findings));
        ++cases;
      }
      for (const Finding& f : a.findings) ++positives[size_t(f.kind)];
    }
  }
  for (int n : positives) CHECK(n > 100);  // every kind was exercised
  CHECK(cases == 1800);
}

TEST_CASE("reports state each finding's location and size, and the normal organs", "[data_world][reports]") {
  std::array<double, kNumFindingKinds> all{};
  all.fill(1.0);
  for (uint64_t seed = 0; seed < 60; ++seed) {
    const Anatomy a = sample_anatomy({384, 384, 320}, seed % 3 == 0 ? PhantomConfig::default_prevalence() : all, seed);
    const Report r = write_report(a.findings, seed);
    for (const Finding& f : a.findings) {
      const std::string& text = r.region(f.region());
      INFO(kind_name(f.kind) << ": " << text);
      CHECK((contains(text, data::size_text(f.size_mm, true)) || contains(text, data::size_text(f.size_mm, false))));
      switch (f.kind) {
        case FindingKind::lung_nodule:
        case FindingKind::liver_cyst:
          CHECK(contains(text, f.location));
          break;
        case FindingKind::kidney_stone:
          CHECK((contains(text, f.location) && contains(text, f.side)));
          break;
        case FindingKind::pleural_effusion:
          CHECK((f.side == "bilateral" ? contains(text, "bilateral") || contains(text, "both sides")
                                       : contains(text, f.side)));
          break;
        case FindingKind::pericardial_effusion:
          CHECK(contains(text, "pericardial effusion"));
          break;
        case FindingKind::splenomegaly:
          CHECK((contains(text, "splenomegaly") || contains(text, "spleen is enlarged")));
          break;
        case FindingKind::bladder_wall_thickening:
          CHECK((f.location == "diffuse" ? contains(text, "diffuse") || contains(text, "circumferential")
                                         : contains(text, f.location.substr(0, f.location.size() - 5))));
          break;
      }
    }
    // Each routinely reported structure, by any of its names.
    const std::vector<std::pair<Region, std::vector<std::string>>> structures = {
        {Region::chest, {"lung", "pulmonary", "lobe"}},
        {Region::chest, {"trachea", "airways"}},
        {Region::chest, {"pleural"}},
        {Region::chest, {"heart", "pericardial"}},
        {Region::chest, {"mediastin", "hilar"}},
        {Region::chest, {"aorta"}},
        {Region::chest, {"ribs"}},
        {Region::abdomen, {"liver", "hepatic"}},
        {Region::abdomen, {"spleen", "splen"}},
        {Region::abdomen, {"kidney", "renal"}},
        {Region::abdomen, {"aort"}},
        {Region::abdomen, {"lymph"}},
        {Region::pelvis, {"bladder"}},
        {Region::pelvis, {"pelvi"}},
        {Region::pelvis, {"lymph"}}};
    for (const auto& [region, names] : structures) {
      INFO(region_name(region) << ": " << r.region(region) << " (looking for " << names[0] << ")");
      CHECK(
          std::any_of(names.begin(), names.end(), [&](const std::string& n) { return contains(r.region(region), n); }));
    }
    CHECK(!r.impression.empty());
  }
}

TEST_CASE("phrasing varies with the seed and repeats for the same seed", "[data_world][reports]") {
  std::array<double, kNumFindingKinds> all{};
  all.fill(1.0);
  const Anatomy a = sample_anatomy({384, 384, 320}, all, 5);
  std::set<std::string> chest, abdomen, pelvis;
  for (uint64_t seed = 0; seed < 30; ++seed) {
    const Report r = write_report(a.findings, seed);
    chest.insert(r.region(Region::chest));
    abdomen.insert(r.region(Region::abdomen));
    pelvis.insert(r.region(Region::pelvis));
    const Report again = write_report(a.findings, seed);
    CHECK(again.findings == r.findings);
    CHECK(again.impression == r.impression);
  }
  CHECK(chest.size() >= 10);
  CHECK(abdomen.size() >= 10);
  CHECK(pelvis.size() >= 5);
}

TEST_CASE("a report holds at most one finding per kind", "[data_world][reports]") {
  Finding f;
  f.kind = FindingKind::liver_cyst;
  CHECK_THROWS_AS(write_report({f, f}, 0), Error);
}

// The first sentence where a region's report with a finding differs from the same report without it
// (same phrasing seed) is the finding's statement against the organ's normal sentence: their first
// words differ, so greedy decoding decides the finding at one word (report_writer.hpp).
TEST_CASE("a finding's sentence and its organ's normal sentence begin with different words", "[data_world][reports]") {
  const auto first_word = [](const std::string& sentence) {
    const size_t start = sentence.find_first_not_of(' ');
    return sentence.substr(start, sentence.find(' ', start) - start);
  };
  std::array<double, kNumFindingKinds> all{};
  all.fill(1.0);
  std::array<int, kNumFindingKinds> compared{};
  for (uint64_t seed = 0; seed < 120; ++seed) {
    const Anatomy a = sample_anatomy({384, 384, 320}, all, seed);
    for (size_t i = 0; i < a.findings.size(); ++i) {
      std::vector<Finding> without = a.findings;
      without.erase(without.begin() + ptrdiff_t(i));
      const Region region = a.findings[i].region();
      const std::vector<std::string> with_s = sentences(write_report(a.findings, seed).region(region));
      const std::vector<std::string> without_s = sentences(write_report(without, seed).region(region));
      size_t at = 0;
      while (at < with_s.size() && at < without_s.size() && with_s[at] == without_s[at]) ++at;
      REQUIRE(at < with_s.size());
      REQUIRE(at < without_s.size());
      INFO(kind_name(a.findings[i].kind) << ": '" << with_s[at] << "' against '" << without_s[at] << "'");
      CHECK(first_word(with_s[at]) != first_word(without_s[at]));
      ++compared[size_t(a.findings[i].kind)];
    }
  }
  for (int n : compared) CHECK(n > 50);
}
