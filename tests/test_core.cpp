// Unit tests of formats/core: endian helpers, errors, options, JSON, the
// in-memory Env, block device helpers and the path resolver.
#include <catch2/catch.hpp>
#include <cstring>

#include "formats/core/block_device.h"
#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/file.h"
#include "formats/core/json.h"
#include "formats/core/options.h"
#include "formats/registry.h"

using namespace vdisk;

TEST_CASE("endian helpers round-trip and read the right byte order", "[core]") {
  uint8_t b[8];
  store_le32(b, 0x11223344);
  CHECK(b[0] == 0x44);
  CHECK(b[3] == 0x11);
  CHECK(load_le32(b) == 0x11223344u);
  store_be32(b, 0x11223344);
  CHECK(b[0] == 0x11);
  CHECK(load_be32(b) == 0x11223344u);
  store_le64(b, 0x0102030405060708ull);
  CHECK(b[0] == 8);
  CHECK(load_le64(b) == 0x0102030405060708ull);
  store_be64(b, 0x0102030405060708ull);
  CHECK(b[0] == 1);
  CHECK(load_be64(b) == 0x0102030405060708ull);
  store_be16(b, 0xBEEF);
  CHECK(load_be16(b) == 0xBEEF);
  CHECK(load_le16(b) == 0xEFBE);
}

TEST_CASE("errors carry file, offset and message", "[core]") {
  Error e(ErrorKind::kCorrupt, "disk.vmdk", 512, "grain table 3 points past the end");
  CHECK(std::string(e.what()) == "disk.vmdk: at offset 512: grain table 3 points past the end");
  CHECK(e.kind() == ErrorKind::kCorrupt);
  Error n(ErrorKind::kNotFound, "x", std::nullopt, "no such file");
  CHECK(std::string(n.what()) == "x: no such file");
  CHECK_THROWS_AS(checked_mul(1ull << 40, 1ull << 30, "f", 0, "BAT size"), Error);
  CHECK(checked_mul(1 << 20, 1 << 10, "f", 0, "x") == (1ull << 30));
  CHECK_THROWS_AS(checked_add(UINT64_MAX, 1, "f", 0, "x"), Error);
}

TEST_CASE("options parse against their specs and reject the rest", "[core]") {
  std::vector<OptionSpec> specs = {
      {"subformat", OptionType::kEnum, "dynamic", "layout", {"dynamic", "fixed"}},
      {"block_size", OptionType::kSize, "2M", "block size", {}},
      {"static", OptionType::kBool, "off", "static image", {}},
      {"hwversion", OptionType::kInt, "4", "hardware version", {}},
  };
  Options o = parse_options("subformat=fixed,block_size=1M,static", specs, "vhd");
  CHECK(o.get_string("subformat") == "fixed");
  CHECK(o.get_size("block_size") == (1u << 20));
  CHECK(o.get_bool("static"));
  CHECK(o.get_int("hwversion") == 4);
  CHECK_FALSE(o.is_set("hwversion"));
  CHECK(o.is_set("subformat"));

  CHECK_THROWS_WITH(parse_options("nosuch=1", specs, "vhd"), Catch::Contains("no option 'nosuch'"));
  CHECK_THROWS_WITH(parse_options("subformat=weird", specs, "vhd"), Catch::Contains("not one of"));
  CHECK_THROWS_WITH(parse_options("block_size=12Q", specs, "vhd"), Catch::Contains("suffix"));
  CHECK_THROWS_WITH(parse_options("static=maybe", specs, "vhd"), Catch::Contains("on/off"));
  CHECK_THROWS_WITH(parse_options("hwversion=x4", specs, "vhd"), Catch::Contains("integer"));
  CHECK(parse_size("2G", "x") == (2ull << 30));
  CHECK(parse_size("3s", "x") == 1536);
  CHECK_THROWS(parse_size("99999999999999999999", "x"));
}

TEST_CASE("JSON keeps key order and round-trips", "[core]") {
  Json j = Json::object();
  j.set("b", 1);
  j.set("a", "x\"y");
  j["list"].push(true);
  j["list"].push(Json());
  j.set("big", uint64_t{18446744073709551615ull});
  std::string text = j.dump();
  CHECK(text == R"({"b": 1, "a": "x\"y", "list": [true, null], "big": 18446744073709551615})");
  Json back = Json::parse(text);
  CHECK(back.dump() == text);
  CHECK(back.find("big")->as_u64() == 18446744073709551615ull);
  CHECK_THROWS_AS(Json::parse("{\"a\": }"), Error);
  CHECK_THROWS_AS(Json::parse(std::string(1000, '[')), Error);
}

TEST_CASE("MemEnv outputs appear only on commit", "[core]") {
  MemEnv env;
  {
    auto out = env.create_output("img", false);
    out->write_at(10, "abc", 3);
    CHECK_FALSE(env.exists("img"));
    out->commit();
  }
  REQUIRE(env.exists("img"));
  CHECK(env.contents("img")->size() == 13);
  {
    auto out = env.create_output("other", false);
    out->write_at(0, "x", 1);
    // destroyed without commit
  }
  CHECK_FALSE(env.exists("other"));
  auto again = env.create_output("img", false);
  CHECK_THROWS_AS(again->commit(), Error);
}

TEST_CASE("is_zero finds the one non-zero byte anywhere", "[core]") {
  std::vector<uint8_t> buf(4096 + 13, 0);
  CHECK(is_zero(buf.data(), buf.size()));
  CHECK(is_zero(buf.data() + 3, buf.size() - 3));
  for (size_t pos : {size_t{0}, size_t{7}, size_t{64}, size_t{4095}, buf.size() - 1}) {
    buf[pos] = 1;
    CHECK_FALSE(is_zero(buf.data(), buf.size()));
    buf[pos] = 0;
  }
}

namespace {
// A device with a fixed extent list, for helper tests.
class ScriptedDevice final : public BlockDevice {
 public:
  explicit ScriptedDevice(std::vector<MappedExtent> ex) : ex_(std::move(ex)) {}
  uint64_t size() const override { return ex_.back().start + ex_.back().length; }
  ImageInfo info() const override { return ImageInfo{}; }

 protected:
  void do_read(uint64_t offset, void* buf, size_t len) const override {
    auto* p = static_cast<uint8_t*>(buf);
    for (size_t i = 0; i < len; ++i) p[i] = static_cast<uint8_t>(offset + i);
  }
  Extent do_block_status(uint64_t offset, uint64_t len) const override {
    for (auto& e : ex_) {
      if (offset >= e.start && offset < e.start + e.length) {
        return Extent{std::min(len, e.start + e.length - offset), e.type};
      }
    }
    return Extent{len, ExtentType::kUnallocated};
  }

 private:
  std::vector<MappedExtent> ex_;
};
}  // namespace

TEST_CASE("map_extents merges neighbours and SliceDevice windows a device", "[core]") {
  auto dev = std::make_shared<ScriptedDevice>(std::vector<MappedExtent>{
      {0, 100, ExtentType::kData},
      {100, 50, ExtentType::kData},
      {150, 50, ExtentType::kZero},
      {200, 1000, ExtentType::kUnallocated},
  });
  auto m = map_extents(*dev);
  REQUIRE(m.size() == 3);
  CHECK(m[0].length == 150);
  CHECK(m[1].type == ExtentType::kZero);
  CHECK(m[2].start == 200);
  CHECK(count_allocated_bytes(*dev) == 150);

  SliceDevice slice(dev, 120, 100, "p1");
  CHECK(slice.size() == 100);
  uint8_t b[4];
  slice.read(0, b, 4);
  CHECK(b[0] == 120);
  CHECK(slice.block_status(0, 100).length == 30);
  CHECK(slice.block_status(30, 70).type == ExtentType::kZero);
  CHECK_THROWS_AS(slice.read(98, b, 4), Error);
  CHECK_THROWS_AS(SliceDevice(dev, 1000, 500, "p9"), Error);
}

TEST_CASE("resolve_sibling refuses names that leave the image's folder", "[core]") {
  MemEnv env;
  env.add_file("dir/disk.vmdk", {});
  env.add_file("dir/disk-flat.vmdk", {});
  OpenOptions opts;
  opts.env = &env;
  CHECK(resolve_sibling(opts, "dir/disk.vmdk", "disk-flat.vmdk", "extent") == "dir/disk-flat.vmdk");
  CHECK_THROWS_WITH(resolve_sibling(opts, "dir/disk.vmdk", "/etc/passwd", "extent"),
                    Catch::Contains("absolute path"));
  CHECK_THROWS_WITH(resolve_sibling(opts, "dir/disk.vmdk", "../x.vmdk", "extent"),
                    Catch::Contains(".."));
  CHECK_THROWS_WITH(resolve_sibling(opts, "dir/disk.vmdk", "a/../../x", "parent"),
                    Catch::Contains(".."));
  opts.allow_outside_paths = true;
  CHECK(resolve_sibling(opts, "dir/disk.vmdk", "/etc/passwd", "extent") == "/etc/passwd");
  CHECK(windows_path_to_posix("C:\\VMs\\base.vhd") == "/VMs/base.vhd");
}

TEST_CASE("the registry finds formats by name and alias", "[core]") {
  CHECK(find_format("raw") != nullptr);
  CHECK(find_format("RAW") == find_format("raw"));
  CHECK(find_format("nonesuch") == nullptr);
  CHECK_THROWS_WITH(require_format("nonesuch"), Catch::Contains("unknown format"));
  for (const FormatDescriptor* f : builtin_formats()) {
    CHECK_FALSE(f->name.empty());
    CHECK(f->probe != nullptr);
  }
}
