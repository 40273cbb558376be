#pragma once
// Training checkpoints: one folder per save, <output_dir>/checkpoint-<step>/, holding
//   model.safetensors      the trained parameters under their Hugging Face names (in T)
//   optimizer.safetensors  AdamW::state(): "<name>.exp_avg", ".exp_avg_sq", ".step" (float)
//   trainer_state.json     TrainerState: step, seed, accumulation, lr factor, loss and eval history
// A checkpoint appears atomically: it is written into "<name>.tmp" in the same folder, every file
// and the folder are fsync'ed, then the folder is renamed into place (and the parent fsync'ed), so
// a crash leaves either the whole checkpoint or a ".tmp" folder that readers ignore. Only complete
// checkpoints (with trainer_state.json) count for "latest" and for keep-last-K pruning.
// The schedule position is the step itself (schedules are functions of the step).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/core/error.hpp"
#include "ctmllm/io/safetensors.hpp"
#include "ctmllm/text/json_file.hpp"
#include "ctmllm/train/adamw.hpp"

namespace ctmllm::train {

// One optimizer step as the log records it.
struct StepRecord {
  int64_t step = 0;  // 1-based: the record of the first update is step 1
  double loss = 0;   // mean over the accumulated micro-batches
  double lr = 0;     // of group 0, as used by this step's update
  double grad_norm = 0;
  int64_t tokens = 0;
  double seconds = 0;  // wall time of the step
};
struct EvalRecord {
  int64_t step = 0;
  double loss = 0;
};

struct TrainerState {
  int64_t step = 0;  // optimizer steps done
  uint64_t seed = 0;
  int64_t grad_accum = 1;
  double lr_factor = 1;
  std::vector<StepRecord> history;
  std::vector<EvalRecord> evals;
};

inline nlohmann::json step_to_json(const StepRecord& r) {
  return {{"step", r.step}, {"loss", r.loss},     {"lr", r.lr},
          {"grad_norm", r.grad_norm}, {"tokens", r.tokens}, {"seconds", r.seconds}};
}
inline nlohmann::json eval_to_json(const EvalRecord& r) { return {{"step", r.step}, {"eval_loss", r.loss}}; }

inline nlohmann::json trainer_state_to_json(const TrainerState& s) {
  nlohmann::json j;
  j["step"] = s.step;
  j["seed"] = s.seed;
  j["grad_accum"] = s.grad_accum;
  j["lr_factor"] = s.lr_factor;
  j["history"] = nlohmann::json::array();
  for (const StepRecord& r : s.history) j["history"].push_back(step_to_json(r));
  j["evals"] = nlohmann::json::array();
  for (const EvalRecord& r : s.evals) j["evals"].push_back(eval_to_json(r));
  return j;
}

namespace detail {
template <class V>
V json_field(const nlohmann::json& j, const char* key, const std::string& where) {
  CTMLLM_CHECK(j.is_object() && j.contains(key), where, ": missing field \"", key, "\"");
  const nlohmann::json& v = j[key];
  if constexpr (std::is_floating_point_v<V>)
    CTMLLM_CHECK(v.is_number(), where, ": field \"", key, "\" must be a number");
  else if constexpr (std::is_unsigned_v<V>)
    CTMLLM_CHECK(v.is_number_unsigned(), where, ": field \"", key, "\" must be a non-negative integer");
  else
    CTMLLM_CHECK(v.is_number_integer(), where, ": field \"", key, "\" must be an integer");
  return v.get<V>();
}
}  // namespace detail

inline TrainerState trainer_state_from_json(const nlohmann::json& j, const std::string& where) {
  TrainerState s;
  s.step = detail::json_field<int64_t>(j, "step", where);
  s.seed = detail::json_field<uint64_t>(j, "seed", where);
  s.grad_accum = detail::json_field<int64_t>(j, "grad_accum", where);
  s.lr_factor = detail::json_field<double>(j, "lr_factor", where);
  CTMLLM_CHECK(s.step >= 0 && s.grad_accum >= 1, where, ": step must be >= 0 and grad_accum >= 1");
  CTMLLM_CHECK(j.contains("history") && j["history"].is_array(), where, ": missing array \"history\"");
  CTMLLM_CHECK(j.contains("evals") && j["evals"].is_array(), where, ": missing array \"evals\"");
  for (const auto& e : j["history"]) {
    const std::string at = where + " history[" + std::to_string(s.history.size()) + "]";
    s.history.push_back(StepRecord{detail::json_field<int64_t>(e, "step", at), detail::json_field<double>(e, "loss", at),
                                   detail::json_field<double>(e, "lr", at),
                                   detail::json_field<double>(e, "grad_norm", at),
                                   detail::json_field<int64_t>(e, "tokens", at),
                                   detail::json_field<double>(e, "seconds", at)});
  }
  for (const auto& e : j["evals"]) {
    const std::string at = where + " evals[" + std::to_string(s.evals.size()) + "]";
    s.evals.push_back(EvalRecord{detail::json_field<int64_t>(e, "step", at), detail::json_field<double>(e, "eval_loss", at)});
  }
  return s;
}

inline constexpr const char* kModelFile = "model.safetensors";
inline constexpr const char* kOptimizerFile = "optimizer.safetensors";
inline constexpr const char* kTrainerStateFile = "trainer_state.json";

inline std::string checkpoint_name(int64_t step) { return "checkpoint-" + std::to_string(step); }

// Flushes a file's (or a folder's) data to the disk.
inline void fsync_path(const std::filesystem::path& p, bool directory = false) {
  const int fd = ::open(p.c_str(), O_RDONLY | (directory ? O_DIRECTORY : 0));
  CTMLLM_CHECK(fd >= 0, p.string(), ": cannot open to sync");
  const int rc = ::fsync(fd);
  ::close(fd);
  CTMLLM_CHECK(rc == 0, p.string(), ": fsync failed");
}

// Complete checkpoints in output_dir, oldest first, as (step, folder).
inline std::vector<std::pair<int64_t, std::filesystem::path>> list_checkpoints(const std::string& output_dir) {
  namespace fs = std::filesystem;
  std::vector<std::pair<int64_t, fs::path>> out;
  if (!fs::is_directory(output_dir)) return out;
  for (const auto& e : fs::directory_iterator(output_dir)) {
    const std::string name = e.path().filename().string();
    const std::string prefix = "checkpoint-";
    if (!e.is_directory() || !name.starts_with(prefix) || name.size() == prefix.size()) continue;
    const std::string digits = name.substr(prefix.size());
    if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    if (!fs::is_regular_file(e.path() / kTrainerStateFile)) continue;
    out.emplace_back(std::stoll(digits), e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// "latest" (the newest complete checkpoint in output_dir) or a checkpoint folder.
inline std::string resolve_checkpoint(const std::string& spec, const std::string& output_dir) {
  if (spec == "latest") {
    const auto all = list_checkpoints(output_dir);
    CTMLLM_CHECK(!all.empty(), output_dir, ": no checkpoint to resume from (no complete checkpoint-<step> folder)");
    return all.back().second.string();
  }
  CTMLLM_CHECK(std::filesystem::is_directory(spec), spec, ": checkpoint folder not found");
  CTMLLM_CHECK(std::filesystem::is_regular_file(std::filesystem::path(spec) / kTrainerStateFile), spec,
               ": not a complete checkpoint (no ", kTrainerStateFile, ")");
  return spec;
}

// Writes checkpoint-<state.step> into output_dir atomically; returns its folder. An existing
// checkpoint of the same step (left by an earlier run that got further) is replaced.
template <class T, class D>
std::string save_checkpoint(const std::string& output_dir, const std::vector<autograd::Variable<T, D>>& params,
                            const AdamW<T, D>& optimizer, const TrainerState& state) {
  namespace fs = std::filesystem;
  fs::create_directories(output_dir);
  const fs::path final_dir = fs::path(output_dir) / checkpoint_name(state.step);
  const fs::path tmp = fs::path(output_dir) / (checkpoint_name(state.step) + ".tmp");
  fs::remove_all(tmp);
  fs::create_directories(tmp);

  io::SafeTensorsWriter model;
  model.set_metadata("format", "pt");
  for (const auto& p : params) model.add(p.name(), p.value().template to_device<Cpu>());
  model.write((tmp / kModelFile).string());
  io::SafeTensorsWriter opt;
  for (const auto& [name, t] : optimizer.state()) opt.add(name, t);
  opt.write((tmp / kOptimizerFile).string());
  {
    std::ofstream out(tmp / kTrainerStateFile, std::ios::binary | std::ios::trunc);
    CTMLLM_CHECK(out.good(), (tmp / kTrainerStateFile).string(), ": cannot open for writing");
    out << trainer_state_to_json(state).dump(1) << "\n";
    out.close();
    CTMLLM_CHECK(out.good(), (tmp / kTrainerStateFile).string(), ": write failed");
  }
  for (const char* f : {kModelFile, kOptimizerFile, kTrainerStateFile}) fsync_path(tmp / f);
  fsync_path(tmp, true);
  if (fs::exists(final_dir)) fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);
  fsync_path(output_dir, true);
  return final_dir.string();
}

// Restores parameters and optimizer state from a checkpoint folder and returns its trainer state.
// Every parameter must be in the checkpoint with its shape.
template <class T, class D>
TrainerState load_checkpoint(const std::string& dir, const std::vector<autograd::Variable<T, D>>& params,
                             AdamW<T, D>& optimizer) {
  namespace fs = std::filesystem;
  const std::string state_path = (fs::path(dir) / kTrainerStateFile).string();
  CTMLLM_CHECK(fs::is_regular_file(state_path), dir, ": not a complete checkpoint (no ", kTrainerStateFile, ")");
  TrainerState state = trainer_state_from_json(text::read_json_file(state_path), state_path);

  const std::string model_path = (fs::path(dir) / kModelFile).string();
  CTMLLM_CHECK(fs::is_regular_file(model_path), model_path, ": missing");
  const io::SafeTensorsFile model(model_path);
  for (const auto& p : params) {
    CTMLLM_CHECK(model.contains(p.name()), model_path, ": no tensor for parameter '", p.name(), "'");
    const Tensor<T, Cpu> t = model.get<T>(p.name());
    CTMLLM_CHECK(t.shape() == p.shape(), model_path, ": tensor '", p.name(), "' has shape ", t.shape(),
                 ", the parameter ", p.shape());
    p.value().copy_from(t.template to_device<D>());
  }
  const std::string opt_path = (fs::path(dir) / kOptimizerFile).string();
  CTMLLM_CHECK(fs::is_regular_file(opt_path), opt_path, ": missing");
  const io::SafeTensorsFile opt(opt_path);
  optimizer.load_state([&](const std::string& name) {
    CTMLLM_CHECK(opt.contains(name), opt_path, ": no optimizer state '", name, "'");
    return opt.get<float>(name).clone();
  });
  return state;
}

// Deletes all but the newest `keep_last` complete checkpoints (keep_last <= 0 keeps all), and
// ".tmp" folders that a crash left behind.
inline void prune_checkpoints(const std::string& output_dir, int keep_last) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(output_dir)) return;
  for (const auto& e : fs::directory_iterator(output_dir)) {
    const std::string name = e.path().filename().string();
    if (e.is_directory() && name.starts_with("checkpoint-") && name.ends_with(".tmp")) fs::remove_all(e.path());
  }
  if (keep_last <= 0) return;
  const auto all = list_checkpoints(output_dir);
  for (size_t i = 0; i + size_t(keep_last) < all.size(); ++i) fs::remove_all(all[i].second);
}

}  // namespace ctmllm::train
