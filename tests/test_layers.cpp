// The one layer model (formats/core/parent.h): a format answers for its own
// layer, LayeredDevice composes child over parent once for every format, and
// `map`/`info` show which layer holds what. The rules are checked on scripted
// layers in process, then against qemu-img on a real three-level VMDK chain.
#include <catch2/catch.hpp>
#include <cstring>

#include "formats/core/error.h"
#include "formats/core/json.h"
#include "formats/core/parent.h"
#include "formats/registry.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

// A layer with a fixed extent list: data bytes read as `fill`, everything
// else as zeros (as a format's own device does).
class ScriptedLayer final : public BlockDevice {
 public:
  ScriptedLayer(std::vector<MappedExtent> ex, uint8_t fill) : ex_(std::move(ex)), fill_(fill) {}
  uint64_t size() const override { return ex_.back().start + ex_.back().length; }
  ImageInfo info() const override {
    ImageInfo i;
    i.path = "layer" + std::to_string(fill_);
    i.format = "scripted";
    i.virtual_size = size();
    return i;
  }

 protected:
  void do_read(uint64_t offset, void* buf, size_t len) const override {
    auto* p = static_cast<uint8_t*>(buf);
    for (size_t i = 0; i < len; ++i) p[i] = type_at(offset + i) == ExtentType::kData ? fill_ : 0;
  }
  Extent do_block_status(uint64_t offset, uint64_t len) const override {
    for (auto& e : ex_) {
      if (offset >= e.start && offset < e.start + e.length)
        return Extent{std::min(len, e.start + e.length - offset), e.type};
    }
    throw Error(ErrorKind::kCorrupt, "scripted", offset, "outside the script");
  }

 private:
  ExtentType type_at(uint64_t off) const {
    for (auto& e : ex_)
      if (off >= e.start && off < e.start + e.length) return e.type;
    return ExtentType::kUnallocated;
  }
  std::vector<MappedExtent> ex_;
  uint8_t fill_;
};

constexpr auto D = ExtentType::kData;
constexpr auto Z = ExtentType::kZero;
constexpr auto U = ExtentType::kUnallocated;

std::vector<uint8_t> read_all(const BlockDevice& dev) {
  std::vector<uint8_t> out(static_cast<size_t>(dev.size()));
  dev.read(0, out.data(), out.size());
  return out;
}

}  // namespace

TEST_CASE("layers: reads fall through where the child stores nothing, zero hides the parent",
          "[layers]") {
  auto parent =
      std::make_shared<ScriptedLayer>(std::vector<MappedExtent>{{0, 300, D}, {300, 100, U}}, 0xAA);
  auto child = std::make_shared<ScriptedLayer>(
      std::vector<MappedExtent>{{0, 100, U}, {100, 50, D}, {150, 50, Z}, {200, 200, U}}, 0xCC);
  LayeredDevice chain(child, parent, "parent.img");
  REQUIRE(chain.size() == 400);
  std::vector<uint8_t> got = read_all(chain);
  for (size_t i = 0; i < 400; ++i) {
    uint8_t want = i < 100 ? 0xAA : i < 150 ? 0xCC : i < 200 ? 0 : i < 300 ? 0xAA : 0;
    INFO("offset " << i);
    REQUIRE(got[i] == want);
  }
  // A read that starts and ends inside runs of different layers.
  std::vector<uint8_t> mid(120);
  chain.read(90, mid.data(), mid.size());
  CHECK(std::equal(mid.begin(), mid.end(), got.begin() + 90));

  std::vector<MappedExtent> m = map_extents(chain);
  REQUIRE(m.size() == 5);
  CHECK((m[0].type == D && m[0].depth == 1 && m[0].length == 100));
  CHECK((m[1].type == D && m[1].depth == 0 && m[1].length == 50));
  CHECK((m[2].type == Z && m[2].depth == 0));
  CHECK((m[3].type == D && m[3].depth == 1 && m[3].length == 100));
  CHECK((m[4].type == U && m[4].depth == 1 && m[4].length == 100));

  CHECK(chain.layers() == std::vector<const BlockDevice*>{child.get(), parent.get()});
  ImageInfo info = full_info(chain);
  CHECK(info.allocated_bytes == 50);  // the child's own data
  REQUIRE(info.chain.size() == 1);
  CHECK(info.parent == std::optional<std::string>("parent.img"));
  CHECK(info.chain[0].allocated_bytes == 300);
}

TEST_CASE("layers: a smaller parent reads as zeros past its end, a larger one is cut", "[layers]") {
  auto small = std::make_shared<ScriptedLayer>(std::vector<MappedExtent>{{0, 100, D}}, 0x11);
  auto child = std::make_shared<ScriptedLayer>(std::vector<MappedExtent>{{0, 300, U}}, 0x22);
  LayeredDevice grown(child, small, "small");
  std::vector<uint8_t> got = read_all(grown);
  CHECK(std::count(got.begin(), got.begin() + 100, 0x11) == 100);
  CHECK(std::count(got.begin() + 100, got.end(), 0) == 200);
  Extent past = grown.block_status(150, 150);
  CHECK((past.type == U && past.depth == 0 && past.length == 150));
  Extent inside = grown.block_status(0, 300);
  CHECK((inside.type == D && inside.depth == 1 && inside.length == 100));

  auto big = std::make_shared<ScriptedLayer>(std::vector<MappedExtent>{{0, 1000, D}}, 0x33);
  LayeredDevice cut(child, big, "big");
  CHECK(cut.size() == 300);
  got = read_all(cut);
  CHECK(std::count(got.begin(), got.end(), 0x33) == 300);
  CHECK_THROWS_AS(cut.read(299, got.data(), 2), Error);
}

TEST_CASE("layers: block status arguments are checked the same way for every device", "[layers]") {
  auto dev = std::make_shared<ScriptedLayer>(std::vector<MappedExtent>{{0, 100, D}}, 1);
  LayeredDevice chain(dev, dev, "self");
  for (const BlockDevice* d : std::vector<const BlockDevice*>{dev.get(), &chain}) {
    CHECK_THROWS_AS(d->block_status(100, 1), Error);  // at the end
    CHECK_THROWS_AS(d->block_status(~uint64_t{0}, 1), Error);
    CHECK_THROWS_AS(d->block_status(0, 0), Error);
    CHECK(d->block_status(90, ~uint64_t{0}).length == 10);  // clamped, never wraps
    uint8_t b;
    CHECK_THROWS_AS(d->read(100, &b, 1), Error);
    CHECK_THROWS_AS(d->read(~uint64_t{0}, &b, 2), Error);
    d->read(100, &b, 0);  // empty read at the end: nothing to do
  }
}

TEST_CASE("layers: a three-level VMDK chain maps like qemu-img map, layer by layer", "[layers]") {
  require_tool("qemu-img");
  require_tool("qemu-io");
  TempDir dir;
  auto q = [&](const std::string& args) { run_ok("cd " + sh_quote(dir.path()) + " && " + args); };
  q("qemu-img create -q -f vmdk base.vmdk 4M");
  q("qemu-io -f vmdk -c 'write -P 1 0 64k' -c 'write -P 5 2M 128k' base.vmdk");
  q("qemu-img create -q -f vmdk -b base.vmdk -F vmdk mid.vmdk");
  q("qemu-io -f vmdk -c 'write -P 2 1M 64k' -c 'write -P 6 2M 64k' mid.vmdk");
  // The top is larger than its parents: past their end nothing is stored.
  q("qemu-img create -q -f vmdk -b mid.vmdk -F vmdk top.vmdk 6M");
  q("qemu-io -f vmdk -c 'write -P 3 3M 64k' top.vmdk");

  for (const std::string name : {"top.vmdk", "mid.vmdk"}) {
    INFO(name);
    Json qm = Json::parse(run_ok("qemu-img map --output json " + sh_quote(dir / name)));
    Json vm =
        Json::parse(run_ok(std::string(VDISK_BIN) + " map --output json " + sh_quote(dir / name)));
    // qemu-img splits and merges differently; compare byte by byte as runs.
    struct Run {
      uint64_t start, length;
      std::string type;
      uint64_t depth;
    };
    auto runs = [](const Json& j, bool qemu) {
      std::vector<Run> out;
      for (const Json& e : j.as_array()) {
        std::string type;
        if (qemu) {
          bool present = e.find("present")->as_bool(), data = e.find("data")->as_bool();
          type = !present ? "unallocated" : data ? "data" : "zero";
        } else {
          type = e.find("type")->as_string();
        }
        Run r{e.find("start")->as_u64(), e.find("length")->as_u64(), type,
              e.find("depth")->as_u64()};
        if (!out.empty() && out.back().type == r.type && out.back().depth == r.depth)
          out.back().length += r.length;
        else
          out.push_back(r);
      }
      return out;
    };
    std::vector<Run> a = runs(qm, true), b = runs(vm, false);
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      INFO("run " << i << " at " << a[i].start);
      CHECK(a[i].start == b[i].start);
      CHECK(a[i].length == b[i].length);
      CHECK(a[i].type == b[i].type);
      CHECK(a[i].depth == b[i].depth);
    }
  }

  // info: each layer's own allocation is what qemu-img map puts at depth 0
  // when that layer is the top.
  auto own_data = [&](const std::string& name) {
    uint64_t n = 0;
    Json qm = Json::parse(run_ok("qemu-img map --output json " + sh_quote(dir / name)));
    for (const Json& e : qm.as_array())
      if (e.find("depth")->as_u64() == 0 && e.find("data")->as_bool())
        n += e.find("length")->as_u64();
    return n;
  };
  Json info = Json::parse(
      run_ok(std::string(VDISK_BIN) + " info --output json " + sh_quote(dir / "top.vmdk")));
  CHECK(info.find("allocated_bytes")->as_u64() == own_data("top.vmdk"));
  REQUIRE(info.find("chain")->as_array().size() == 2);
  CHECK(info.find("chain")->as_array()[0].find("allocated_bytes")->as_u64() ==
        own_data("mid.vmdk"));
  CHECK(info.find("chain")->as_array()[1].find("allocated_bytes")->as_u64() ==
        own_data("base.vmdk"));

  // The content, against qemu-img's own reading of the chain.
  q("qemu-img convert -f vmdk -O raw top.vmdk qemu.raw");
  CHECK(parse_tagged_digest(
            run_ok(std::string(VDISK_BIN) + " hash --algo sha256 " + sh_quote(dir / "top.vmdk")),
            "SHA256") == coreutils_digest("sha256sum", dir / "qemu.raw"));
}
