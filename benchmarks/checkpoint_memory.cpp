// Peak memory of loading a large checkpoint: writes a synthetic bf16 safetensors checkpoint of the
// requested size (2 shards + index, like a Hugging Face folder), then, in a fresh process, loads
// every tensor through io::CheckpointDir, touches every byte, and prints the time and the peak
// resident set. bf16 tensors stay views of the memory map, so the peak stays near one copy.
//   checkpoint_memory write DIR GIB     then     checkpoint_memory load DIR [bf16|f32]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "ctmllm/core/rng.hpp"
#include "ctmllm/io/checkpoint.hpp"
#include "ctmllm/io/safetensors.hpp"

using namespace ctmllm;

namespace {
double peak_rss_gib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / (1024.0 * 1024.0);  // ru_maxrss is in KiB on Linux
}

// Two shards of `gib` GiB together, tensors of 64 Mi bf16 values (128 MiB) each.
void write_checkpoint(const std::string& dir, double gib) {
  std::filesystem::create_directories(dir);
  const int64_t per_tensor = int64_t(64) << 20;
  const int64_t count = std::max<int64_t>(2, int64_t(gib * 1024 / 128));
  nlohmann::json weight_map;
  for (int shard = 0; shard < 2; ++shard) {
    io::SafeTensorsWriter w;  // holds one shard in memory while writing: the writer, not the load, is measured here
    const std::string file = "model-0000" + std::to_string(shard + 1) + "-of-00002.safetensors";
    for (int64_t i = shard; i < count; i += 2) {
      const std::string name = "model.layers." + std::to_string(i) + ".mlp.weight";
      Tensor<bf16, Cpu> t = Tensor<bf16, Cpu>::full({per_tensor / 4096, 4096}, bf16(float(i % 7) * 0.25f));
      w.add(name, t);
      weight_map[name] = file;
    }
    w.write(dir + "/" + file);
  }
  std::ofstream(dir + "/model.safetensors.index.json") << nlohmann::json{{"metadata", nlohmann::json::object()}, {"weight_map", weight_map}}.dump(1);
  std::cout << "wrote " << count << " tensors, " << double(count * per_tensor * 2) / double(1 << 30) << " GiB, to " << dir << "\n";
}

template <class T>
void load_checkpoint(const std::string& dir) {
  const auto t0 = std::chrono::steady_clock::now();
  io::CheckpointDir ckpt(dir);
  std::vector<Tensor<T, Cpu>> kept;  // a model keeps every weight
  double checksum = 0, bytes = 0;
  for (const auto& name : ckpt.names()) {
    kept.push_back(ckpt.get<T>(name));
    const Tensor<T, Cpu>& t = kept.back();
    for (int64_t i = 0; i < t.numel(); i += 2048) checksum += float(t.data()[i]);  // one read per 4 KiB page
    bytes += double(t.numel()) * sizeof(T);
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "loaded " << kept.size() << " tensors as " << dtype_name(dtype_v<T>) << ": " << bytes / double(1 << 30)
            << " GiB in " << s << " s; peak RSS " << peak_rss_gib() << " GiB (checksum " << checksum << ")\n";
}
}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string mode = argc > 2 ? argv[1] : "";
    if (mode == "write" && argc == 4) {
      write_checkpoint(argv[2], std::stod(argv[3]));
    } else if (mode == "load" && (argc == 3 || argc == 4)) {
      const std::string as = argc == 4 ? argv[3] : "bf16";
      if (as == "f32") load_checkpoint<float>(argv[2]);
      else load_checkpoint<bf16>(argv[2]);
    } else {
      std::cerr << "usage: checkpoint_memory write DIR GIB | load DIR [bf16|f32]\n";
      return 2;
    }
  } catch (const std::exception& e) {
    std::cerr << "checkpoint_memory: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
