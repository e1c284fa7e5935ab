// VHD read and write, checked against qemu-img (images it makes, and its
// reading of ours) and sha256sum. Differencing disks, which qemu-img cannot
// create, are built here byte by byte from the spec.
#include <catch2/catch.hpp>
#include <cstring>
#include <map>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/file.h"
#include "formats/core/json.h"
#include "formats/registry.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

constexpr uint64_t kMiB = 1 << 20;

std::string sha_of_vhd_via_qemu(const TempDir& dir, const std::string& vhd) {
  std::string raw = vhd + ".qemu.raw";
  run_ok("qemu-img convert -f vpc -O raw " + sh_quote(vhd) + " " + sh_quote(raw));
  return coreutils_digest("sha256sum", raw);
}

uint64_t qemu_virtual_size(const std::string& image, const std::string& fmt) {
  std::string out = run_ok("qemu-img info -f " + fmt + " --output json " + sh_quote(image));
  return Json::parse(out).find("virtual-size")->as_u64();
}

std::string vdisk_sha(const std::string& args) {
  RunResult r = run_vdisk("hash " + args);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  return parse_tagged_digest(r.out, "SHA256");
}

Json vdisk_info(const std::string& args) {
  RunResult r = run_vdisk("info --output json " + args);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  return Json::parse(r.out);
}

// Data ranges [start, end), adjacent ones merged, from `qemu-img map` or
// `vdisk map` JSON.
std::vector<std::pair<uint64_t, uint64_t>> data_ranges(const Json& map, bool qemu) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (auto& e : map.as_array()) {
    bool data = qemu ? e.find("data")->as_bool() : e.find("type")->as_string() == "data";
    if (!data) continue;
    uint64_t start = e.find("start")->as_u64(), end = start + e.find("length")->as_u64();
    if (!out.empty() && out.back().second == start) {
      out.back().second = end;
    } else {
      out.emplace_back(start, end);
    }
  }
  return out;
}

// Spec "Checksum": one's complement of the byte sum, the field itself skipped.
uint32_t ones_complement_sum(const uint8_t* p, size_t len, size_t skip) {
  uint32_t s = 0;
  for (size_t i = 0; i < len; ++i) {
    if (i < skip || i >= skip + 4) s += p[i];
  }
  return ~s;
}

void fix_checksum(std::vector<uint8_t>& bytes, size_t start, size_t len, size_t field) {
  store_be32(bytes.data() + start + field, ones_complement_sum(bytes.data() + start, len, field));
}

std::vector<uint8_t> utf16(const std::string& ascii, bool big_endian) {
  std::vector<uint8_t> out;
  for (char c : ascii) {
    if (big_endian) out.push_back(0);
    out.push_back(static_cast<uint8_t>(c));
    if (!big_endian) out.push_back(0);
  }
  return out;
}

struct Locator {
  uint32_t code;
  std::vector<uint8_t> data;
};

// A sector-level description of a child block: bitmap bytes (repeated to fill
// the bitmap) and the block's data.
struct ChildBlock {
  uint8_t bitmap_byte;
  std::vector<uint8_t> data;  // block_size bytes
};

constexpr uint32_t kBlock = 2 * kMiB;

// Writes a differencing VHD per the spec: footer copy, dynamic header, BAT,
// locator data, blocks, footer.
void build_child(const std::string& path, uint64_t size, const uint8_t* parent_id,
                 const std::string& parent_name, const std::vector<Locator>& locators,
                 const std::map<uint32_t, ChildBlock>& blocks) {
  const uint32_t entries = static_cast<uint32_t>((size + kBlock - 1) / kBlock);
  const uint64_t bat_off = 1536;
  uint64_t pos = bat_off + (entries * 4 + 511) / 512 * 512;
  std::vector<uint8_t> file(pos, 0);
  // Footer (spec "Hard Disk Footer Format").
  std::vector<uint8_t> footer(512, 0);
  std::memcpy(footer.data(), "conectix", 8);
  store_be32(footer.data() + 8, 2);
  store_be32(footer.data() + 12, 0x00010000);
  store_be64(footer.data() + 16, 512);
  store_be32(footer.data() + 24, 700000000);
  std::memcpy(footer.data() + 28, "test", 4);
  store_be32(footer.data() + 32, 0x00010000);
  std::memcpy(footer.data() + 36, "Wi2k", 4);
  store_be64(footer.data() + 40, size);
  store_be64(footer.data() + 48, size);
  store_be32(footer.data() + 56, 0x00F00411);
  store_be32(footer.data() + 60, 4);  // differencing
  for (int i = 0; i < 16; ++i) footer[68 + i] = static_cast<uint8_t>(0xA0 + i);
  fix_checksum(footer, 0, 512, 64);
  std::memcpy(file.data(), footer.data(), 512);
  // Dynamic header (spec "Dynamic Disk Header Format").
  uint8_t* h = file.data() + 512;
  std::memcpy(h, "cxsparse", 8);
  store_be64(h + 8, ~uint64_t{0});
  store_be64(h + 16, bat_off);
  store_be32(h + 24, 0x00010000);
  store_be32(h + 28, entries);
  store_be32(h + 32, kBlock);
  std::memcpy(h + 40, parent_id, 16);
  store_be32(h + 56, 699999999);
  std::vector<uint8_t> name = utf16(parent_name, true);
  if (!name.empty()) std::memcpy(h + 64, name.data(), name.size());
  for (size_t i = 0; i < locators.size(); ++i) {
    file.resize(pos + 512, 0);  // may move the bytes: address the header afresh
    uint8_t* e = file.data() + 512 + 576 + 24 * i;
    store_be32(e, locators[i].code);
    store_be32(e + 4, 1);  // sectors reserved
    store_be32(e + 8, static_cast<uint32_t>(locators[i].data.size()));
    store_be64(e + 16, pos);
    std::memcpy(file.data() + pos, locators[i].data.data(), locators[i].data.size());
    pos += 512;
  }
  // BAT: unused entries are all ones.
  for (uint32_t b = 0; b < entries; ++b) store_be32(file.data() + bat_off + 4 * b, 0xFFFFFFFF);
  for (auto& [b, blk] : blocks) {
    store_be32(file.data() + bat_off + 4 * b, static_cast<uint32_t>(pos / 512));
    file.resize(pos + 512 + kBlock, 0);
    std::memset(file.data() + pos, blk.bitmap_byte, 512);  // 4096 sectors: 512 bitmap bytes
    std::memcpy(file.data() + pos + 512, blk.data.data(), kBlock);
    pos += 512 + kBlock;
  }
  std::vector<uint8_t> header(file.begin() + 512, file.begin() + 1536);
  fix_checksum(header, 0, 1024, 36);
  std::memcpy(file.data() + 512, header.data(), 1024);
  file.insert(file.end(), footer.begin(), footer.end());
  write_file(path, file);
}

// The guest content a child shows: the parent's bytes, with the child's
// sectors whose bit is set laid over them (bit 7 of each byte first).
std::vector<uint8_t> overlay(std::vector<uint8_t> parent,
                             const std::map<uint32_t, ChildBlock>& blocks) {
  for (auto& [b, blk] : blocks) {
    for (uint32_t s = 0; s < kBlock / 512; ++s) {
      if ((blk.bitmap_byte >> (7 - s % 8)) & 1) {
        std::memcpy(parent.data() + uint64_t{b} * kBlock + s * 512, blk.data.data() + s * 512, 512);
      }
    }
  }
  return parent;
}

}  // namespace

TEST_CASE("qemu-img-made VHDs read bit-exact and are detected without -f", "[vhd]") {
  require_tool("qemu-img");
  TempDir dir;
  // Odd sizes on purpose: not a whole MiB, not a CHS product, not a block multiple.
  for (uint64_t size : {uint64_t{9999872}, 5 * kMiB + 512 * 3, uint64_t{4096 * 1000 + 512}}) {
    std::string raw = dir / "src.raw";
    run_ok("rm -f " + sh_quote(raw) + " && truncate -s " + std::to_string(size) + " " +
           sh_quote(raw));
    write_at(raw, 0, pattern_bytes(700 * 1024 + 512, 7));
    write_at(raw, size - 5 * 512, pattern_bytes(5 * 512, 8));
    write_at(raw, size / 2, pattern_bytes(3000, 9));
    for (std::string opts : {"subformat=dynamic", "subformat=dynamic,force_size=on",
                             "subformat=fixed,force_size=on", "subformat=fixed"}) {
      INFO("size " << size << " " << opts);
      std::string vhd = dir / ("q-" + opts + "-" + std::to_string(size) + ".img");
      run_ok("qemu-img convert -f raw -O vpc -o " + opts + " " + sh_quote(raw) + " " +
             sh_quote(vhd));
      // No -f and a .img name: the footer decides.
      Json info = vdisk_info(sh_quote(vhd));
      CHECK(info.find("format")->as_string() == "vhd");
      CHECK(info.find("virtual_size")->as_u64() == qemu_virtual_size(vhd, "vpc"));
      CHECK(vdisk_sha(sh_quote(vhd)) == sha_of_vhd_via_qemu(dir, vhd));
      // Block status: the same data ranges qemu-img map reports.
      RunResult m = run_vdisk("map --output json " + sh_quote(vhd));
      REQUIRE(m.exit_code == 0);
      if (opts.find("dynamic") != std::string::npos) {
        CHECK(data_ranges(Json::parse(m.out), false) ==
              data_ranges(Json::parse(run_ok("qemu-img map -f vpc --output json " + sh_quote(vhd))),
                          true));
      }
    }
  }
}

TEST_CASE("a pre-2004 511-byte footer is found", "[vhd]") {
  require_tool("qemu-img");
  TempDir dir;
  std::string raw = dir / "src.raw", vhd = dir / "old.vhd";
  write_file(raw, pattern_bytes(2 * kMiB, 11));
  run_ok("qemu-img convert -f raw -O vpc -o subformat=fixed,force_size=on " + sh_quote(raw) + " " +
         sh_quote(vhd));
  // The footer's last byte is reserved (zero): dropping it leaves the same
  // checksum and the 511-byte layout.
  run_ok("truncate -s -1 " + sh_quote(vhd));
  Json info = vdisk_info(sh_quote(vhd));
  CHECK(info.find("format")->as_string() == "vhd");
  CHECK(info.find("virtual_size")->as_u64() == 2 * kMiB);
  CHECK(vdisk_sha(sh_quote(vhd)) == coreutils_digest("sha256sum", raw));
}

TEST_CASE("our dynamic and fixed VHDs pass qemu-img compare and keep the exact size", "[vhd]") {
  require_tool("qemu-img");
  TempDir dir;
  const uint64_t size = 24 * kMiB + 512 * 3;  // not a CHS product, not a block multiple
  std::string src = dir / "src.img";
  make_sample_disk(src, size);
  const std::string src_sha = coreutils_digest("sha256sum", src);
  for (std::string opts :
       {"subformat=dynamic", "subformat=fixed", "subformat=dynamic,block_size=512K"}) {
    INFO(opts);
    std::string dst = dir / "out.vhd";
    run_ok("rm -f " + sh_quote(dst));
    RunResult r =
        run_vdisk("convert -O vpc -o " + opts + " " + sh_quote(src) + " " + sh_quote(dst));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    run_ok("qemu-img compare -f raw -F vpc " + sh_quote(src) + " " + sh_quote(dst));
    CHECK(qemu_virtual_size(dst, "vpc") == size);
    CHECK(sha_of_vhd_via_qemu(dir, dst) == src_sha);
    Json info = vdisk_info(sh_quote(dst));
    CHECK(info.find("virtual_size")->as_u64() == size);
    CHECK(vdisk_sha(sh_quote(dst)) == src_sha);
    // raw -> VHD -> raw keeps size and content.
    std::string back = dir / "back.raw";
    run_ok("rm -f " + sh_quote(back));
    REQUIRE(run_vdisk("convert -O raw " + sh_quote(dst) + " " + sh_quote(back)).exit_code == 0);
    CHECK(file_size(back) == size);
    CHECK(coreutils_digest("sha256sum", back) == src_sha);
    std::vector<uint8_t> bytes = read_file(dst);
    const uint8_t* foot = bytes.data() + bytes.size() - 512;
    CHECK(std::memcmp(foot, "conectix", 8) == 0);
    CHECK(load_be64(foot + 48) == size);
    CHECK(load_be32(foot + 64) == ones_complement_sum(foot, 512, 64));
    if (opts.find("dynamic") != std::string::npos) {
      // Footer copy at offset 0; only blocks that hold data are stored: qemu
      // sees holes where the source has them.
      CHECK(std::memcmp(bytes.data(), foot, 512) == 0);
      CHECK(bytes.size() < size / 2);
      Json map = Json::parse(run_ok("qemu-img map -f vpc --output json " + sh_quote(dst)));
      uint64_t qemu_data = 0;
      for (auto& e : map.as_array()) {
        if (e.find("data")->as_bool()) qemu_data += e.find("length")->as_u64();
      }
      CHECK(qemu_data > 0);
      CHECK(qemu_data < size / 2);
    } else {
      CHECK(bytes.size() == size + 512);
      CHECK(load_be32(foot + 60) == 2);
    }
  }
}

TEST_CASE("the CHS geometry field follows the spec's algorithm like qemu-img's", "[vhd]") {
  require_tool("qemu-img");
  TempDir dir;
  // qemu-img create (without force_size) computes the geometry with the same
  // appendix algorithm and rounds the size to it; for sizes it need not round,
  // our geometry bytes must equal its.
  for (uint64_t size : {uint64_t{30} * kMiB, uint64_t{200} * kMiB, uint64_t{1024} * kMiB,
                        uint64_t{40} * 1024 * kMiB}) {
    INFO(size);
    std::string q = dir / "q.vhd", raw = dir / "z.raw", ours = dir / "ours.vhd";
    run_ok("rm -f " + sh_quote(q) + " " + sh_quote(raw) + " " + sh_quote(ours));
    run_ok("qemu-img create -q -f vpc " + sh_quote(q) + " " + std::to_string(size));
    uint64_t qsize = qemu_virtual_size(q, "vpc");
    run_ok("truncate -s " + std::to_string(qsize) + " " + sh_quote(raw));
    REQUIRE(
        run_vdisk("convert --hash none -O vhd " + sh_quote(raw) + " " + sh_quote(ours)).exit_code ==
        0);
    std::vector<uint8_t> a = read_file(q), b = read_file(ours);
    CHECK(load_be32(a.data() + 56) == load_be32(b.data() + 56));
    Json g = *vdisk_info(sh_quote(ours)).find("details")->find("geometry");
    CHECK(g.find("cylinders")->as_u64() == load_be16(a.data() + 56));
    CHECK(g.find("heads")->as_u64() == a[58]);
    CHECK(g.find("sectors_per_track")->as_u64() == a[59]);
  }
}

TEST_CASE("sizes VHD cannot hold are refused unless rounding is allowed", "[vhd]") {
  require_tool("qemu-img");
  TempDir dir;
  std::string src = dir / "odd.raw", dst = dir / "odd.vhd";
  write_file(src, pattern_bytes(kMiB + 100, 5));
  RunResult r = run_vdisk("convert -O vhd " + sh_quote(src) + " " + sh_quote(dst));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("512") && Catch::Contains("--allow-resize") &&
                        Catch::Contains(std::to_string(kMiB + 512)));
  CHECK_FALSE(file_exists(dst));
  r = run_vdisk("convert --allow-resize -O vhd " + sh_quote(src) + " " + sh_quote(dst));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.err, Catch::Contains("rounded up"));
  CHECK(qemu_virtual_size(dst, "vpc") == kMiB + 512);
  run_ok("qemu-img compare -f raw -F vpc " + sh_quote(src) + " " + sh_quote(dst));
}

TEST_CASE("target=azure writes a fixed whole-MiB VHD and says why it refuses", "[vhd]") {
  require_tool("qemu-img");
  TempDir dir;
  std::string src = dir / "src.raw", dst = dir / "azure.vhd";
  const uint64_t size = 21 * kMiB - 512 * 5;
  make_sample_disk(src, size);
  RunResult r = run_vdisk("convert -O vhd -o target=azure " + sh_quote(src) + " " + sh_quote(dst));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.err, Catch::Contains("padded") && Catch::Contains(std::to_string(21 * kMiB)));
  CHECK(file_size(dst) == 21 * kMiB + 512);  // N MiB + footer, as Azure uploads want
  std::vector<uint8_t> foot(512);
  std::vector<uint8_t> all = read_file(dst);
  std::memcpy(foot.data(), all.data() + all.size() - 512, 512);
  CHECK(load_be32(foot.data() + 60) == 2);  // fixed
  CHECK(std::string(foot.begin() + 28, foot.begin() + 32) != std::string(4, '\0'));
  CHECK(std::string(foot.begin() + 36, foot.begin() + 40) == "Wi2k");
  CHECK(qemu_virtual_size(dst, "vpc") == 21 * kMiB);
  run_ok("qemu-img compare -f raw -F vpc " + sh_quote(src) + " " + sh_quote(dst));

  r = run_vdisk("convert -O vhd -o target=azure,subformat=dynamic " + sh_quote(src) + " " +
                sh_quote(dir / "no.vhd"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("fixed"));
  write_file(dir / "small.raw", pattern_bytes(kMiB, 1));
  r = run_vdisk("convert -O vhd -o target=azure " + sh_quote(dir / "small.raw") + " " +
                sh_quote(dir / "no.vhd"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("20 MiB"));
  CHECK_FALSE(file_exists(dir / "no.vhd"));
}

TEST_CASE("info shows type, creator, sizes, geometry, block size and timestamps", "[vhd]") {
  require_tool("qemu-img");
  TempDir dir;
  std::string src = dir / "src.raw";
  make_sample_disk(src, 16 * kMiB);
  std::string q = dir / "q.vhd";
  run_ok("qemu-img convert -f raw -O vpc -o subformat=dynamic " + sh_quote(src) + " " +
         sh_quote(q));
  std::vector<uint8_t> bytes = read_file(q);
  const uint8_t* foot = bytes.data() + bytes.size() - 512;
  Json j = vdisk_info(sh_quote(q));
  CHECK(j.find("subformat")->as_string() == "dynamic");
  const Json& d = *j.find("details");
  CHECK(d.find("disk_type")->as_string() == "dynamic");
  CHECK(d.find("creator_application")->as_string() == std::string(foot + 28, foot + 32));
  CHECK(d.find("creator_host_os")->as_string() == "Wi2k");
  CHECK(d.find("current_size")->as_u64() == load_be64(foot + 48));
  CHECK(d.find("geometry")->find("cylinders")->as_u64() == load_be16(foot + 56));
  CHECK(d.find("block_size")->as_u64() == 2 * kMiB);
  CHECK(d.find("unique_id")->as_string().size() == 36);
  CHECK(d.find("timestamp")->as_string().rfind("20", 0) == 0);
  RunResult human = run_vdisk("info " + sh_quote(q));
  CHECK_THAT(human.out,
             Catch::Contains("cylinders") && Catch::Contains("creator_application: qemu"));

  std::string ours = dir / "ours.vhd";
  REQUIRE(run_vdisk("convert -O vhd -o subformat=fixed " + sh_quote(src) + " " + sh_quote(ours))
              .exit_code == 0);
  Json o = vdisk_info(sh_quote(ours));
  CHECK(o.find("details")->find("disk_type")->as_string() == "fixed");
  CHECK(o.find("details")->find("creator_application")->as_string() == "win ");
}

TEST_CASE("a differencing VHD reads through its parent and names the paths it tried", "[vhd]") {
  require_tool("qemu-img");
  TempDir dir;
  const uint64_t size = 8 * kMiB;
  // Parent: data in blocks 0-2, block 3 never written (a hole all the way down).
  std::vector<uint8_t> parent_raw = pattern_bytes(6 * kMiB, 21);
  parent_raw.resize(size, 0);
  write_file(dir / "parent.raw", parent_raw);
  run_ok("qemu-img convert -f raw -O vpc -o subformat=dynamic,force_size=on " +
         sh_quote(dir / "parent.raw") + " " + sh_quote(dir / "parent.vhd"));
  std::vector<uint8_t> pbytes = read_file(dir / "parent.vhd");
  const uint8_t* parent_id = pbytes.data() + pbytes.size() - 512 + 68;

  std::map<uint32_t, ChildBlock> blocks;
  blocks[1] = {0xFF, pattern_bytes(kBlock, 31)};  // bitmap all set: whole block from the child
  blocks[3] = {0xF0, pattern_bytes(kBlock, 32)};  // 4 sectors child, 4 sectors parent (hole), ...
  std::map<uint32_t, ChildBlock> partial = blocks;
  partial[1].bitmap_byte = 0x80;  // 1 sector of 8 from the child
  std::vector<uint8_t> expect = overlay(parent_raw, partial);
  write_file(dir / "expect.raw", expect);
  const std::string expect_sha = coreutils_digest("sha256sum", dir / "expect.raw");

  std::vector<Locator> locs = {{0x57326B75, utf16("C:\\VMs\\parent.vhd", false)},  // W2ku
                               {0x57327275, utf16(".\\parent.vhd", false)}};       // W2ru
  std::string child = dir / "child.vhd";
  build_child(child, size, parent_id, "parent.vhd", locs, partial);

  CHECK(vdisk_sha(sh_quote(child)) == expect_sha);
  RunResult conv = run_vdisk("convert " + sh_quote(child) + " " + sh_quote(dir / "flat.raw"));
  REQUIRE(conv.exit_code == 0);
  CHECK(coreutils_digest("sha256sum", dir / "flat.raw") == expect_sha);
  Json info = vdisk_info(sh_quote(child));
  CHECK(info.find("subformat")->as_string() == "differencing");
  CHECK(info.find("parent")->as_string() == dir / "parent.vhd");
  CHECK(info.find("details")->find("parent_name")->as_string() == "parent.vhd");
  CHECK(info.find("details")->find("parent_locators")->as_array().size() == 2);
  // Each layer counts what it stores itself. The child: one sector in eight
  // of block 1 (bitmap bytes 0x80) and half of block 3 (0xF0). The parent
  // (qemu-img): blocks 0-2.
  CHECK(info.find("allocated_bytes")->as_u64() == kBlock / 8 + kBlock / 2);
  REQUIRE(info.find("chain")->as_array().size() == 1);
  CHECK(info.find("chain")->as_array()[0].find("allocated_bytes")->as_u64() == 6 * kMiB);

  // Only an absolute Windows locator, or only a MacX URL: the base name is
  // looked for in the child's folder.
  build_child(dir / "abs.vhd", size, parent_id, "",
              {{0x57326B75, utf16("D:\\x\\parent.vhd", false)}}, partial);
  CHECK(vdisk_sha(sh_quote(dir / "abs.vhd")) == expect_sha);
  std::string url = "file://localhost/Users/me/parent.vhd";
  build_child(dir / "mac.vhd", size, parent_id, "", {{0x4D616358, {url.begin(), url.end()}}},
              partial);
  CHECK(vdisk_sha(sh_quote(dir / "mac.vhd")) == expect_sha);

  // Parent moved away: exit 2, every path tried named.
  run_ok("mkdir " + sh_quote(dir / "elsewhere") + " && mv " + sh_quote(dir / "parent.vhd") + " " +
         sh_quote(dir / "elsewhere/parent.vhd"));
  RunResult r = run_vdisk("info " + sh_quote(child));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("not found") && Catch::Contains(dir / "parent.vhd") &&
                        Catch::Contains("W2ru") && Catch::Contains("W2ku") &&
                        Catch::Contains("--parent"));
  // Never read as a standalone disk, even with -f.
  CHECK(run_vdisk("hash -f vhd " + sh_quote(child)).exit_code == 2);
  // --parent names it explicitly.
  CHECK(vdisk_sha("--parent " + sh_quote(dir / "elsewhere/parent.vhd") + " " + sh_quote(child)) ==
        expect_sha);

  // A file with the parent's name but another unique ID is not the parent.
  run_ok("qemu-img convert -f raw -O vpc -o subformat=dynamic,force_size=on " +
         sh_quote(dir / "parent.raw") + " " + sh_quote(dir / "parent.vhd"));
  r = run_vdisk("info " + sh_quote(child));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("unique ID"));

  // A locator that climbs out of the folder is refused unless allowed.
  build_child(dir / "sub.vhd", size, parent_id, "",
              {{0x57327275, utf16("..\\elsewhere\\parent.vhd", false)}}, partial);
  run_ok("mkdir " + sh_quote(dir / "kids") + " && mv " + sh_quote(dir / "sub.vhd") + " " +
         sh_quote(dir / "kids/sub.vhd"));
  r = run_vdisk("info " + sh_quote(dir / "kids/sub.vhd"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains(".."));
  CHECK(vdisk_sha("--allow-outside-paths " + sh_quote(dir / "kids/sub.vhd")) == expect_sha);
  // A child naming itself as parent (with its own unique ID) is a loop, not a hang.
  std::vector<uint8_t> own_id(16);
  for (int i = 0; i < 16; ++i) own_id[i] = static_cast<uint8_t>(0xA0 + i);  // build_child's ID
  build_child(dir / "self.vhd", size, own_id.data(), "",
              {{0x57327275, utf16(".\\self.vhd", false)}}, partial);
  r = run_vdisk("info " + sh_quote(dir / "self.vhd"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("loops"));
  (void)blocks;
}

TEST_CASE("damaged VHDs give exit 2 with a clear message", "[vhd][errors]") {
  require_tool("qemu-img");
  TempDir dir;
  std::string raw = dir / "src.raw";
  make_sample_disk(raw, 16 * kMiB);
  std::string dyn = dir / "dyn.vhd", fix = dir / "fix.vhd";
  run_ok("qemu-img convert -f raw -O vpc -o subformat=dynamic,force_size=on " + sh_quote(raw) +
         " " + sh_quote(dyn));
  run_ok("qemu-img convert -f raw -O vpc -o subformat=fixed,force_size=on " + sh_quote(raw) + " " +
         sh_quote(fix));
  const std::vector<uint8_t> d = read_file(dyn), f = read_file(fix);
  const std::string sha = coreutils_digest("sha256sum", raw);

  // A damaged last footer of a dynamic disk: the copy at offset 0 is used, with a warning.
  {
    std::vector<uint8_t> b = d;
    b[b.size() - 512 + 50] ^= 0x55;
    write_file(dir / "badtail.vhd", b);
    RunResult r = run_vdisk("hash " + sh_quote(dir / "badtail.vhd"));
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.err, Catch::Contains("warning") && Catch::Contains("offset 0"));
    CHECK(parse_tagged_digest(r.out, "SHA256") == sha);
  }

  struct Case {
    std::string name;
    std::vector<uint8_t> bytes;
    std::string message;
  };
  std::vector<Case> cases;
  auto patched = [](std::vector<uint8_t> b, size_t off, std::vector<uint8_t> with) {
    std::memcpy(b.data() + off, with.data(), with.size());
    return b;
  };
  // Fixed: footer checksum wrong.
  cases.push_back({"fixsum.vhd", patched(f, f.size() - 512 + 64, {1, 2, 3, 4}), "checksum"});
  // Fixed, truncated: 1 MiB of data cut out before the footer.
  {
    std::vector<uint8_t> b(f.begin(), f.end() - 512 - kMiB);
    b.insert(b.end(), f.end() - 512, f.end());
    cases.push_back({"fixtrunc.vhd", b, "truncated"});
  }
  // Dynamic: header checksum wrong.
  cases.push_back({"hdrsum.vhd", patched(d, 512 + 36, {0, 0, 0, 0}), "dynamic header checksum"});
  // Dynamic: block size 3 (checksum fixed so the field itself is what fails).
  {
    std::vector<uint8_t> b = patched(d, 512 + 32, {0, 0, 0, 3});
    fix_checksum(b, 512, 1024, 36);
    cases.push_back({"bs.vhd", b, "block size"});
  }
  // Dynamic: BAT entry 0 far past the end of the file.
  {
    uint64_t bat = load_be64(d.data() + 512 + 16);
    cases.push_back({"bat.vhd", patched(d, bat, {0x7F, 0, 0, 0}), "past the end"});
  }
  // Dynamic: BAT offset past the end of the file.
  {
    std::vector<uint8_t> b = patched(d, 512 + 16, {0, 0, 0, 0x10, 0, 0, 0, 0});
    fix_checksum(b, 512, 1024, 36);
    cases.push_back({"batoff.vhd", b, "BAT"});
  }
  // Dynamic, truncated in the middle (last footer gone too).
  cases.push_back(
      {"dyntrunc.vhd", std::vector<uint8_t>(d.begin(), d.begin() + d.size() / 2), "past the end"});
  // Garbage ending in a footer cookie with a bad checksum.
  {
    std::vector<uint8_t> b = pattern_bytes(64 * 1024, 99);
    std::memcpy(b.data() + b.size() - 512, "conectix", 8);
    cases.push_back({"garbage.vhd", b, "checksum"});
  }
  // Unknown disk type.
  {
    std::vector<uint8_t> b = patched(f, f.size() - 512 + 60, {0, 0, 0, 9});
    fix_checksum(b, b.size() - 512, 512, 64);
    cases.push_back({"type.vhd", b, "disk type"});
  }
  for (auto& c : cases) {
    INFO(c.name);
    write_file(dir / c.name, c.bytes);
    for (std::string fmt : {"", "-f vhd "}) {
      RunResult r = run_vdisk("hash " + fmt + sh_quote(dir / c.name));
      CHECK(r.exit_code == 2);
      CHECK_THAT(r.err, Catch::Contains(c.message) && Catch::Contains(c.name));
      CHECK(r.err.rfind("vdisk", 0) == 0);
    }
  }
  // Garbage without any cookie, forced as VHD: "not a VHD".
  write_file(dir / "noise.bin", pattern_bytes(100 * 1024, 3));
  RunResult r = run_vdisk("info -f vpc " + sh_quote(dir / "noise.bin"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("conectix"));
}

TEST_CASE("corrupted VHD metadata never crashes the reader", "[vhd][errors]") {
  require_tool("qemu-img");
  TempDir dir;
  std::string raw = dir / "src.raw", dyn = dir / "dyn.vhd";
  std::vector<uint8_t> content = pattern_bytes(3 * kMiB, 41);
  content.resize(5 * kMiB, 0);
  write_file(raw, content);
  run_ok("qemu-img convert -f raw -O vpc -o subformat=dynamic,force_size=on " + sh_quote(raw) +
         " " + sh_quote(dyn));
  const std::vector<uint8_t> good = read_file(dyn);
  const uint64_t bat = load_be64(good.data() + 512 + 16);
  // Bytes worth damaging: footer copy, dynamic header, BAT, the first bitmap, the last footer.
  std::vector<std::pair<uint64_t, uint64_t>> regions = {
      {0, 512},
      {512, 1024},
      {bat, 64},
      {load_be32(good.data() + bat) * 512ull, 512},
      {good.size() - 512, 512}};
  uint64_t x = 12345;
  auto next = [&]() {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  int opened = 0, refused = 0;
  std::vector<uint8_t> buf(5 * kMiB);
  for (int iter = 0; iter < 300; ++iter) {
    std::vector<uint8_t> b = good;
    for (int k = 0; k < 1 + static_cast<int>(next() % 4); ++k) {
      auto& r = regions[next() % regions.size()];
      b[r.first + next() % r.second] = static_cast<uint8_t>(next());
    }
    // Half the time the checksums are made right so the fields themselves are tested.
    if (iter % 2 == 0) {
      fix_checksum(b, 0, 512, 64);
      fix_checksum(b, 512, 1024, 36);
      fix_checksum(b, b.size() - 512, 512, 64);
    }
    MemEnv env;
    env.add_file("fuzz.vhd", b);
    OpenOptions opts;
    opts.env = &env;
    opts.warn = [](const std::string&) {};
    try {
      BlockDevicePtr dev = open_image("fuzz.vhd", "vhd", opts);
      ++opened;
      // Whatever the size field says, reads stay bounded by the file.
      uint64_t n = std::min<uint64_t>(dev->size(), buf.size());
      dev->read(0, buf.data(), static_cast<size_t>(n));
      if (dev->size() > 0) map_extents(*dev);
      dev->info();
    } catch (const Error& e) {
      ++refused;
      CHECK_FALSE(e.message().empty());
    }
  }
  CHECK(opened + refused == 300);
  CHECK(refused > 0);
}
