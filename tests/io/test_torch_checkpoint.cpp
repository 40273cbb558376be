// torch.save checkpoints: every dtype, strided views and shared storages, nn.Parameter, nested
// dicts, DEFLATE members; the restricted unpickler on hand-written pickles; and corrupt, truncated,
// legacy and malicious files, which must raise ctmllm::Error and never execute or crash.

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "ctmllm/io/torch_checkpoint.hpp"
#include "support/catch.hpp"
#include "support/files_and_errors.hpp"
#include "support/fixtures.hpp"

using namespace ctmllm;
using testing::message_of;
using namespace std::string_literals;
namespace pickle = ctmllm::io::pickle;

namespace {
std::vector<std::byte> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> c((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> b(c.size());
  std::memcpy(b.data(), c.data(), c.size());
  return b;
}
io::MappedFile in_memory(const std::vector<std::byte>& bytes, const std::string& name = "<memory>") {
  std::shared_ptr<std::byte> buf(new std::byte[bytes.size() + 1], std::default_delete<std::byte[]>());
  if (!bytes.empty()) std::memcpy(buf.get(), bytes.data(), bytes.size());
  return io::MappedFile::from_memory(name, buf, bytes.size());
}
std::span<const std::byte> as_bytes(const std::string& s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }
// Values as doubles, in row-major order, whatever the stored dtype.
template <class File>
std::vector<double> values(const File& f, const std::string& name) {
  return f.template get<double>(name).to_vector();
}
}  // namespace

TEST_CASE("reads a torch.save state dict: every dtype, strided views, parameters", "[io][torch]") {
  io::TorchCheckpoint ck(testing::fixture_path("io/torch/state_dict.pth"));
  io::SafeTensorsFile expected(testing::fixture_path("io/torch/expected.safetensors"));
  // The pickled OrderedDict's order, M3D-style module names first.
  CHECK(ck.names() == std::vector<std::string>{"vision_tower.vision_tower.blocks.0.attn.qkv.weight", "f32", "bf16", "f16",
                                               "f64", "i64", "mask", "transposed", "base", "rows", "every_other", "param",
                                               "scalar", "empty"});
  for (const std::string& name : ck.names()) {
    INFO(name);
    CHECK(ck.info(name).dtype == expected.info(name).dtype);
    CHECK(ck.info(name).shape == expected.info(name).shape);
    CHECK(values(ck, name) == values(expected, name));
  }
  CHECK(ck.get<int64_t>("i64").to_vector() == std::vector<int64_t>{-(int64_t(1) << 40), 0, 7, 123456789012});
  CHECK(ck.get<uint8_t>("mask").to_vector() == std::vector<uint8_t>{1, 0, 1});
  CHECK(ck.get<float>("scalar").rank() == 0);
  CHECK(ck.get<float>("scalar").item() == 2.5f);
  CHECK(ck.get<float>("empty").shape() == Shape{0, 3});
  CHECK(ck.get<bf16>("bf16").to_vector().size() == 6);
  CHECK_THROWS_AS(ck.get<int64_t>("f32"), Error);  // float -> int would truncate
  CHECK_THROWS_AS(ck.get<float>("nope"), Error);
}

TEST_CASE("views keep their storage layout and come back zero-copy when contiguous", "[io][torch]") {
  io::TorchCheckpoint ck(testing::fixture_path("io/torch/state_dict.pth"));
  const auto& tr = ck.info("transposed");
  CHECK(tr.shape == Shape{5, 6});
  CHECK(tr.strides == Shape{1, 5});
  CHECK(ck.info("rows").offset == 10);
  CHECK(ck.info("rows").storage == ck.info("base").storage);
  CHECK(ck.info("every_other").strides == Shape{5, 2});
  const auto base = ck.get<float>("base");
  const auto rows = ck.get<float>("rows");
  CHECK(rows.data() == base.data() + 10);  // both views of the one mapped storage
  CHECK(ck.get<float>("base").data() == base.data());
  const auto t = ck.get<float>("transposed");  // gathered
  CHECK(t.is_contiguous());
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 6; ++j) CHECK(t.at(i, j) == base.at(j, i));
  const auto eo = ck.get<float>("every_other");
  CHECK(eo.shape() == Shape{6, 3});
  CHECK(eo.at(4, 2) == base.at(4, 4));
}

TEST_CASE("DEFLATE members read the same as STORED ones", "[io][torch][zip]") {
  io::TorchCheckpoint stored(testing::fixture_path("io/torch/state_dict.pth"));
  io::TorchCheckpoint deflated(testing::fixture_path("io/torch/deflated.pth"));
  CHECK(deflated.names() == stored.names());
  for (const std::string& name : stored.names()) CHECK(values(deflated, name) == values(stored, name));
  io::ZipArchive zip(testing::fixture_path("io/torch/deflated.pth"));
  CHECK(zip.entry("state_dict/data.pkl").method == io::ZipArchive::kDeflate);
}

TEST_CASE("nested dicts and lists flatten to dotted names, other values are skipped", "[io][torch]") {
  io::TorchCheckpoint ck(testing::fixture_path("io/torch/nested.pth"));
  std::vector<std::string> names = ck.names();
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"list.0", "list.1", "model.tied", "model.w", "opt.0"});
  CHECK(values(ck, "model.tied") == values(ck, "model.w"));  // one tensor, two names
  CHECK(ck.info("list.0").dtype == DType::I64);
  CHECK(ck.get<int64_t>("list.0").to_vector() == std::vector<int64_t>{0, 1, 2});
  CHECK(ck.get<float>("opt.0").item() == 1.5f);
}

TEST_CASE("the unpickler reads protocol 4 and 5 value pickles", "[io][pickle]") {
  using pickle::Kind;
  // pickle.dumps({'a': 1, 'b': [1.5, -3, 2**40, -2**63, None, True, False, 300, 70000], 'c': ('x', 'y' * 300)}, protocol=4)
  const std::string p4 = "\x80\x04\x95\x7a\x01\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01" "a\x94K\x01\x8c\x01"
                                     "b\x94]\x94(G\x3f\xf8\x00\x00\x00\x00\x00\x00J\xfd\xff\xff\xff\x8a\x06\x00\x00\x00"
                                     "\x00\x00\x01\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80N\x88\x89M\x2c\x01J\x70\x11\x01"
                                     "\x00" "e\x8c\x01" "c\x94\x8c\x01x\x94X\x2c\x01\x00\x00"s +
                         std::string(300, 'y') + "\x94\x86\x94u."s;
  const pickle::Pickle p = pickle::unpickle(as_bytes(p4), "p4");
  REQUIRE(p.root.kind == Kind::Dict);
  const auto& d = p.items(p.root);
  REQUIRE(d.size() == 6);
  CHECK(p.str(d[0]) == "a");
  CHECK(d[1].i == 1);
  const auto& list = p.items(d[3]);
  REQUIRE(list.size() == 9);
  CHECK(list[0].kind == Kind::Float);
  CHECK(list[0].f == 1.5);
  CHECK(list[1].i == -3);
  CHECK(list[2].i == int64_t(1) << 40);
  CHECK(list[3].i == std::numeric_limits<int64_t>::min());
  CHECK(list[4].kind == Kind::None);
  CHECK((list[5].kind == Kind::Bool && list[5].i == 1 && list[6].i == 0));
  CHECK(list[7].i == 300);
  CHECK(list[8].i == 70000);
  REQUIRE(d[5].kind == Kind::Tuple);
  CHECK(p.str(p.items(d[5])[1]) == std::string(300, 'y'));

  // pickle.dumps(OrderedDict([('k', 'v')]), protocol=5): STACK_GLOBAL, MEMOIZE, SETITEM.
  const std::string p5("\x80\x05\x95\x2b\x00\x00\x00\x00\x00\x00\x00\x8c\x0b" "collections\x94\x8c\x0bOrderedDict\x94"
                       "\x93\x94)R\x94\x8c\x01k\x94\x8c\x01v\x94s.", 54);
  const pickle::Pickle q = pickle::unpickle(as_bytes(p5), "p5");
  REQUIRE(q.root.kind == Kind::Dict);
  CHECK(q.str(q.items(q.root)[1]) == "v");
}

TEST_CASE("the unpickler refuses globals and opcodes outside its allow-list", "[io][pickle][errors]") {
  auto err = [](const std::string& bytes) {
    return message_of([&] { pickle::unpickle(as_bytes(bytes), "test.pkl"); });
  };
  CHECK(err("\x80\x02" "cos\nsystem\n(S'ls'\ntR."s).find("global os.system is not allowed") != std::string::npos);
  CHECK(err("\x80\x02" "cbuiltins\neval\n)R."s).find("builtins.eval") != std::string::npos);
  CHECK(err("\x80\x04\x8c\x05posix\x8c\x06system\x93."s).find("posix.system") != std::string::npos);
  CHECK(err("\x80\x02" "ctorch\nFloatStorage\n)R."s).find("cannot be called") != std::string::npos);
  CHECK(err("\x80\x02(S'x'\n."s).find("opcode 0x53 ('S')") != std::string::npos);  // STRING
  CHECK(err("\x80\x02\x81."s).find("opcode 0x81") != std::string::npos);          // NEWOBJ
  CHECK(err("\x80\x01}."s).find("protocol 1") != std::string::npos);
  CHECK(err("\x80\x02h\x05."s).find("memo key 5") != std::string::npos);
  CHECK(err("\x80\x02X\xff\xff\x00\x00" "ab."s).find("truncated") != std::string::npos);
  CHECK(err("\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01."s).find("LONG1") != std::string::npos);
  CHECK(err("\x80\x02]K\x01K\x02s."s).find("cannot add items to a list") != std::string::npos);
  CHECK(err("\x80\x02)K\x01" "a."s).find("cannot add items to a tuple") != std::string::npos);
  CHECK(err("\x80\x02]N" "b."s).find("BUILD on a list") != std::string::npos);
  CHECK(err("\x80\x02" "a."s).find("underflow") != std::string::npos);
  CHECK(err("\x80\x02(K\x01\x86."s).find("underflow") != std::string::npos);  // TUPLE2 across a MARK
  CHECK(err("\x80\x02K\x01K\x02."s).find("2 values") != std::string::npos);
  CHECK(err("\x80\x02}"s).find("truncated") != std::string::npos);  // no STOP
}

TEST_CASE("a malicious checkpoint is refused without running anything", "[io][torch][errors]") {
  const std::string marker = "/tmp/ctmllm_pickle_pwned";
  std::filesystem::remove(marker);
  const std::string msg = message_of([] { io::TorchCheckpoint(testing::fixture_path("io/torch/malicious.pth")); });
  CHECK(msg.find("malicious.pth") != std::string::npos);
  CHECK(msg.find("global os.system is not allowed") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(marker));
}

TEST_CASE("legacy, non-torch and corrupt archives raise ctmllm::Error", "[io][torch][errors]") {
  CHECK(message_of([] { io::load_torch_state_dict(testing::fixture_path("io/torch/legacy.pth")); }).find("legacy") !=
        std::string::npos);
  CHECK(message_of([] { io::TorchCheckpoint(testing::fixture_path("io/torch/expected.safetensors")); }).find("not a zip") !=
        std::string::npos);
  CHECK_THROWS_AS(io::TorchCheckpoint(testing::fixture_path("io/torch/missing.pth")), Error);
  const auto good = read_bytes(testing::fixture_path("io/torch/state_dict.pth"));

  // A storage member renamed (in the local header and the central directory alike) is missing.
  auto renamed = good;
  const std::string from = "state_dict/data/3", to = "state_dict/data/Z";
  int hits = 0;
  for (size_t i = 0; i + from.size() <= renamed.size(); ++i)
    if (std::memcmp(renamed.data() + i, from.data(), from.size()) == 0) {
      std::memcpy(renamed.data() + i, to.data(), to.size());
      ++hits;
    }
  REQUIRE(hits == 2);
  CHECK(message_of([&] { io::TorchCheckpoint(in_memory(renamed, "renamed.pth")); }).find("no member 'state_dict/data/3'") !=
        std::string::npos);

  // Every truncation fails cleanly (the end-of-central-directory record is gone).
  for (size_t n = 0; n < good.size(); n += 13) {
    std::vector<std::byte> cut(good.begin(), good.begin() + std::ptrdiff_t(n));
    CHECK_THROWS_AS(io::TorchCheckpoint(in_memory(cut)), Error);
  }
  // Every single-byte corruption either still loads or fails with an Error; reading all tensors
  // of a file that loads stays in bounds (run under ASan/UBSan to see it).
  int loaded = 0, refused = 0;
  for (size_t i = 0; i < good.size(); ++i) {
    auto bad = good;
    bad[i] ^= std::byte{0x5a};
    try {
      io::TorchCheckpoint ck(in_memory(bad));
      for (const std::string& name : ck.names()) {
        try {
          ck.get<double>(name);
        } catch (const Error&) {
        }
      }
      ++loaded;
    } catch (const Error&) {
      ++refused;
    }
  }
  CHECK(loaded + refused == int(good.size()));
  CHECK(refused > 0);
}
