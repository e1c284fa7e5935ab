// The raw format: host holes as block status, split sets, the writer.
#include <catch2/catch.hpp>

#include "formats/core/error.h"
#include "formats/registry.h"
#include "formats/raw/raw_reader.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

TEST_CASE("raw block status reports host holes as unallocated", "[raw]") {
  TempDir dir;
  std::string img = dir / "sparse.img";
  run_ok("truncate -s 16M " + sh_quote(img));
  write_at(img, 4 << 20, pattern_bytes(64 * 1024, 9));
  BlockDevicePtr dev = open_image(img, "", OpenOptions{});
  CHECK(dev->size() == (16u << 20));
  auto map = map_extents(*dev);
  // Exactly one data extent covering the written 64 KiB (host granularity may
  // round it out to the file system block size).
  uint64_t data = 0;
  for (auto& e : map) {
    if (e.type == ExtentType::kData) {
      data += e.length;
      CHECK(e.start <= (4u << 20));
      CHECK(e.start + e.length >= (4u << 20) + 64 * 1024);
    }
  }
  CHECK(data >= 64 * 1024);
  CHECK(data <= 1 << 20);
  std::vector<uint8_t> buf(64 * 1024);
  dev->read(4 << 20, buf.data(), buf.size());
  CHECK(buf == pattern_bytes(64 * 1024, 9));
  CHECK_THROWS_AS(dev->read((16 << 20) - 10, buf.data(), 20), Error);
}

TEST_CASE("split raw sets are found from the first part", "[raw]") {
  TempDir dir;
  MemEnv env;
  env.add_file("d/image.001", {1});
  env.add_file("d/image.002", {2});
  env.add_file("d/image.003", {3});
  env.add_file("d/x00", {1});
  env.add_file("d/x01", {1});
  env.add_file("d/xaa", {1});
  env.add_file("d/xab", {1});
  env.add_file("d/disk2024", {1});
  env.add_file("d/disk2025", {1});
  CHECK(raw::find_split_parts(env, "d/image.001") ==
        std::vector<std::string>{"d/image.002", "d/image.003"});
  CHECK(raw::find_split_parts(env, "d/x00") == std::vector<std::string>{"d/x01"});
  CHECK(raw::find_split_parts(env, "d/xaa") == std::vector<std::string>{"d/xab"});
  // Not a first part: read alone.
  CHECK(raw::find_split_parts(env, "d/image.002").empty());
  CHECK(raw::find_split_parts(env, "d/disk2024").empty());
}

TEST_CASE("a split set reads as one disk across part boundaries", "[raw]") {
  TempDir dir;
  auto whole = pattern_bytes(3 * 100000 + 1234, 4);
  write_file(dir / "whole.bin", whole);
  run_ok("cd " + sh_quote(dir.path()) +
         " && split -b 100000 -d -a 3 --numeric-suffixes=1 whole.bin img.");
  REQUIRE(file_exists(dir / "img.004"));
  BlockDevicePtr dev = open_image(dir / "img.001", "", OpenOptions{});
  REQUIRE(dev->size() == whole.size());
  std::vector<uint8_t> buf(150000);
  dev->read(50000, buf.data(), buf.size());
  CHECK(std::equal(buf.begin(), buf.end(), whole.begin() + 50000));
  CHECK(dev->info().subformat == "split");
}

TEST_CASE("raw writer keeps holes, sets the exact size and appears only when finished", "[raw]") {
  TempDir dir;
  std::string out = dir / "out.img";
  CreateRequest req;
  req.path = out;
  req.virtual_size = 10 * 1024 * 1024 + 3;  // not a whole number of sectors
  req.env = &Env::posix();
  req.options = parse_options("", require_format("raw").create_options, "raw");
  auto w = require_format("raw").create(req);
  auto data = pattern_bytes(4096, 5);
  w->write(1 << 20, data.data(), data.size());
  CHECK_FALSE(file_exists(out));
  w->finish();
  REQUIRE(file_exists(out));
  CHECK(file_size(out) == 10 * 1024 * 1024 + 3);
  CHECK(allocated_bytes_on_host(out) <= 64 * 1024);

  // abort() leaves nothing behind, not even the temporary file.
  req.path = dir / "aborted.img";
  auto w2 = require_format("raw").create(req);
  w2->write(0, data.data(), data.size());
  w2->abort();
  CHECK_FALSE(file_exists(dir / "aborted.img"));
  CHECK(run_ok("ls -A " + sh_quote(dir.path())) == "out.img\n");
}
