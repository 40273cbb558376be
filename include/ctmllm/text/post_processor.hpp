#pragma once
// The post_processor of tokenizer.json, for single sequences: TemplateProcessing adds the special
// tokens of its "single" template (Llama's BOS) when add_special_tokens is set; ByteLevel only
// adjusts offsets, so it leaves ids alone.
#include <climits>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctmllm/core/error.hpp"

namespace ctmllm::text {

class PostProcessor {
 public:
  static PostProcessor from_json(const nlohmann::json& j, const std::string& where) {
    PostProcessor p;
    if (!j.is_null()) p.add(j, where);
    return p;
  }

  std::vector<int32_t> apply(std::vector<int32_t> ids, bool add_special_tokens) const {
    if (!add_special_tokens || !template_) return ids;
    std::vector<int32_t> out;
    out.reserve(ids.size() + 4);
    for (const Item& item : *template_) {
      if (item.sequence) {
        out.insert(out.end(), ids.begin(), ids.end());
      } else {
        out.insert(out.end(), item.ids.begin(), item.ids.end());
      }
    }
    return out;
  }

  // The id of the special token the template puts first (BOS), if any.
  std::optional<int32_t> leading_special_id() const {
    if (!template_ || template_->empty() || template_->front().sequence || template_->front().ids.size() != 1)
      return std::nullopt;
    return template_->front().ids.front();
  }

 private:
  struct Item {
    bool sequence = false;     // the encoded text
    std::vector<int32_t> ids;  // a special token's ids
  };

  void add(const nlohmann::json& j, const std::string& where) {
    CTMLLM_CHECK(j.is_object() && j.contains("type") && j["type"].is_string(), where,
                 ": post_processor has no \"type\" string");
    const std::string type = j["type"].get<std::string>();
    if (type == "Sequence") {
      CTMLLM_CHECK(j.contains("processors") && j["processors"].is_array(), where,
                   ": Sequence post_processor has no \"processors\" array");
      for (const auto& p : j["processors"]) add(p, where);
    } else if (type == "ByteLevel") {
      // offsets only
    } else if (type == "TemplateProcessing") {
      CTMLLM_CHECK(!template_, where, ": more than one TemplateProcessing post_processor");
      CTMLLM_CHECK(j.contains("single") && j["single"].is_array(), where, ": TemplateProcessing has no \"single\" array");
      const auto& specials = j.contains("special_tokens") ? j["special_tokens"] : nlohmann::json::object();
      CTMLLM_CHECK(specials.is_object(), where, ": TemplateProcessing \"special_tokens\" is not an object");
      std::vector<Item> items;
      for (const auto& piece : j["single"]) {
        if (piece.is_object() && piece.contains("Sequence")) {
          items.push_back({true, {}});
        } else if (piece.is_object() && piece.contains("SpecialToken") && piece["SpecialToken"].is_object() &&
                   piece["SpecialToken"].contains("id") && piece["SpecialToken"]["id"].is_string()) {
          const std::string name = piece["SpecialToken"]["id"].get<std::string>();
          CTMLLM_CHECK(specials.contains(name) && specials[name].is_object() && specials[name].contains("ids") &&
                           specials[name]["ids"].is_array(),
                       where, ": TemplateProcessing uses special token '", name, "' that \"special_tokens\" does not define");
          Item item;
          for (const auto& id : specials[name]["ids"]) {
            CTMLLM_CHECK(id.is_number_unsigned() && id.get<uint64_t>() <= uint64_t(INT32_MAX), where,
                         ": TemplateProcessing special token '", name, "' has a bad id");
            item.ids.push_back(int32_t(id.get<uint32_t>()));
          }
          items.push_back(std::move(item));
        } else {
          fail(where, ": TemplateProcessing \"single\" entry is neither a Sequence nor a SpecialToken");
        }
      }
      template_ = std::move(items);
    } else {
      fail(where, ": unsupported post_processor type '", type, "' (supported: TemplateProcessing, ByteLevel, Sequence)");
    }
  }

  std::optional<std::vector<Item>> template_;
};

}  // namespace ctmllm::text
