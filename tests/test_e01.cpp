// E01 (Expert Witness): images made by ewfacquire in every format it writes
// read as ewfexport exports them; vdisk's own output accepted by ewfverify,
// described by ewfinfo and exported bit-exact by ewfexport; zero chunks,
// error2 ranges, damaged and incomplete sets, and the mount.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/json.h"
#include "formats/e01/e01_header.h"
#include "formats/e01/e01_layout.h"
#include "formats/e01/e01_reader.h"
#include "formats/registry.h"
#include "tests/support/mount_support.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

constexpr uint64_t MiB = 1024 * 1024;

void require_ewf_tools() {
  for (const char* t : {"ewfacquire", "ewfinfo", "ewfverify", "ewfexport"}) require_tool(t);
}

// ewfacquire SRC into TARGET.E01 (TARGET without extension), unattended.
void ewfacquire(const std::string& src, const std::string& target, const std::string& args) {
  run_ok("ewfacquire -u -q -t " + sh_quote(target) + " " + args + " " + sh_quote(src) +
         " >/dev/null");
}

// The SHA-256 of what ewfexport exports from `image` as raw.
std::string ewfexport_sha256(const std::string& image, const std::string& scratch) {
  run_ok("rm -f " + sh_quote(scratch) + ".raw* && ewfexport -u -q -f raw -t " + sh_quote(scratch) +
         " " + sh_quote(image) + " >/dev/null");
  std::string sha = coreutils_digest("sha256sum", scratch + ".raw");
  run_ok("rm -f " + sh_quote(scratch) + ".raw*");
  return sha;
}

std::string vdisk_sha256(const std::string& image) {
  RunResult r = run_vdisk("hash " + sh_quote(image));
  INFO(image << ": " << r.err);
  REQUIRE(r.exit_code == 0);
  return parse_tagged_digest(r.out, "SHA256");
}

Json info_json(const std::string& image) {
  RunResult r = run_vdisk("info --output json " + sh_quote(image));
  INFO(image << ": " << r.err);
  REQUIRE(r.exit_code == 0);
  return Json::parse(r.out);
}

const Json& detail(const Json& info, const std::string& key) {
  const Json* d = info.find("details");
  REQUIRE(d);
  const Json* v = d->find(key);
  INFO("details." << key << " in " << info.dump());
  REQUIRE(v);
  return *v;
}

// The value ewfinfo prints after "KEY:" (tabs trimmed), or "".
std::string ewfinfo_value(const std::string& text, const std::string& key) {
  size_t p = text.find("\t" + key + ":");
  if (p == std::string::npos) return "";
  p = text.find_first_not_of('\t', p + key.size() + 2);
  size_t e = text.find('\n', p);
  return text.substr(p, e - p);
}

// A disk with zeros, random data, text and a partition table, a whole
// number of sectors (ewfacquire stores a partial last sector's bytes but
// counts whole sectors only, so its MD5 would not match the media).
std::string make_source(const TempDir& dir, uint64_t size) {
  std::string src = dir / "src.raw";
  make_sample_disk(src, size);
  std::string text;
  while (text.size() < 200000) text += "The quick brown fox jumps over the lazy dog. ";
  write_at(src, size / 4, std::vector<uint8_t>(text.begin(), text.end()));
  return src;
}

std::vector<uint8_t> file_bytes(const std::string& p) {
  return read_file(p);
}

}  // namespace

TEST_CASE("segment names count from .E01 past .E99 to .EAA and on to .ZZZ", "[e01]") {
  using e01::segment_extension;
  CHECK(segment_extension('E', 1) == "E01");
  CHECK(segment_extension('E', 99) == "E99");
  CHECK(segment_extension('E', 100) == "EAA");
  CHECK(segment_extension('E', 101) == "EAB");
  CHECK(segment_extension('E', 125) == "EAZ");
  CHECK(segment_extension('E', 126) == "EBA");
  CHECK(segment_extension('E', 99 + 676) == "EZZ");
  CHECK(segment_extension('E', 100 + 676) == "FAA");
  CHECK(segment_extension('E', e01::max_segment_number('E')) == "ZZZ");
  CHECK_FALSE(segment_extension('E', e01::max_segment_number('E') + 1));
  CHECK(segment_extension('s', 100) == "saa");
  CHECK(segment_extension('e', 2) == "e02");
  CHECK(e01::format_header_date("1142163845") == "2006-03-12T11:44:05Z");
  CHECK(e01::format_header_date("2002 3 4 10 19 59") == "2002-03-04T10:19:59");
  CHECK(e01::format_header_date("yesterday") == "yesterday");
}

TEST_CASE("E01 images ewfacquire writes in each of its formats read as ewfexport exports them",
          "[e01]") {
  require_ewf_tools();
  TempDir dir;
  const std::string src = make_source(dir, 16 * MiB);
  const std::string want = coreutils_digest("sha256sum", src);
  const std::string md5 = coreutils_digest("md5sum", src);
  for (const char* fmt : {"ewf", "smart", "ftk", "encase2", "encase3", "encase4", "encase5",
                          "encase6", "encase7", "linen5", "linen6", "linen7", "ewfx"}) {
    INFO("ewfacquire -f " << fmt);
    const std::string t = dir / (std::string("f-") + fmt);
    ewfacquire(src, t, std::string("-f ") + fmt + " -c best -d sha1");
    const std::string image =
        t + (std::string(fmt) == "smart"                               ? ".s01"
             : std::string(fmt) == "ewf" || std::string(fmt) == "ewfx" ? ".e01"
                                                                       : ".E01");
    REQUIRE(file_exists(image));
    CHECK(ewfexport_sha256(image, dir / "x") == want);
    CHECK(vdisk_sha256(image) == want);
    Json info = info_json(image);
    CHECK(info.find("format")->as_string() == "e01");
    CHECK(info.find("virtual_size")->as_u64() == 16 * MiB);
    CHECK(detail(info, "stored_hashes").find("md5")->as_string() == md5);
  }
}

TEST_CASE("ewfacquire's compression levels, chunk sizes and segment sizes read bit-exact",
          "[e01]") {
  require_ewf_tools();
  TempDir dir;
  const std::string src = make_source(dir, 16 * MiB);
  const std::string want = coreutils_digest("sha256sum", src);
  struct Variant {
    std::string name, args;
  };
  const std::vector<Variant> variants = {
      {"none", "-c none"},
      {"empty-block", "-c empty-block"},
      {"fast", "-c fast"},
      {"best", "-c best"},
      {"b16", "-c fast -b 16"},
      {"b128", "-c best -b 128"},
      {"b1024", "-c fast -b 1024"},
      {"b32768", "-c fast -b 32768"},
      {"seg-none", "-c none -S 1MiB"},
      {"seg-fast", "-c fast -b 256 -S 1MiB"},
  };
  for (const Variant& v : variants) {
    INFO("ewfacquire " << v.args);
    const std::string t = dir / v.name;
    ewfacquire(src, t, v.args);
    CHECK(ewfexport_sha256(t + ".E01", dir / "x") == want);
    CHECK(vdisk_sha256(t + ".E01") == want);
  }
  // The segmented sets are several files, all listed by info.
  Json info = info_json(dir / "seg-none.E01");
  CHECK(detail(info, "segments").as_array().size() >= 8);
  CHECK(detail(info, "segments").as_array()[1].find("path")->as_string() == dir / "seg-none.E02");
  // Converting to raw gives the exact bytes too.
  run_ok(std::string(VDISK_BIN) + " convert --hash none -O raw " + sh_quote(dir / "seg-fast.E01") +
         " " + sh_quote(dir / "out.raw"));
  CHECK(coreutils_digest("sha256sum", dir / "out.raw") == want);
}

TEST_CASE(
    "vdisk's E01 passes ewfverify, ewfinfo shows its metadata and hashes, ewfexport returns "
    "the source",
    "[e01]") {
  require_ewf_tools();
  TempDir dir;
  const std::string src = make_source(dir, 16 * MiB);
  const std::string want = coreutils_digest("sha256sum", src);
  const std::string md5 = coreutils_digest("md5sum", src);
  const std::string sha1 = coreutils_digest("sha1sum", src);
  for (const char* comp : {"none", "fast", "best"}) {
    for (const char* seg : {"", ",segment_size=1M"}) {
      INFO("compression=" << comp << seg);
      const std::string out = dir / (std::string("o-") + comp + (*seg ? "-seg" : "") + ".E01");
      RunResult r =
          run_vdisk("convert --hash none -O e01 -o compression=" + std::string(comp) + seg +
                    ",case_number=CASE-7,evidence_number=EV-42,examiner='Ana Núñez',"
                    "description='laptop disk',notes='seized 2026'" +
                    " " + sh_quote(src) + " " + sh_quote(out));
      INFO(r.err);
      REQUIRE(r.exit_code == 0);
      RunResult v = run("ewfverify -q " + sh_quote(out));
      INFO(v.out << v.err);
      CHECK(v.exit_code == 0);
      CHECK_THAT(v.out, Catch::Contains("ewfverify: SUCCESS"));
      const std::string text = run_ok("ewfinfo " + sh_quote(out));
      CHECK(ewfinfo_value(text, "Case number") == "CASE-7");
      CHECK(ewfinfo_value(text, "Evidence number") == "EV-42");
      CHECK(ewfinfo_value(text, "Examiner name") == "Ana Núñez");
      CHECK(ewfinfo_value(text, "Description") == "laptop disk");
      CHECK(ewfinfo_value(text, "Notes") == "seized 2026");
      CHECK(ewfinfo_value(text, "MD5") == md5);
      CHECK(ewfinfo_value(text, "SHA1") == sha1);
      CHECK(ewfinfo_value(text, "Number of sectors") == std::to_string(16 * MiB / 512));
      CHECK(ewfexport_sha256(out, dir / "x") == want);
      // And vdisk reads back what it wrote, metadata included.
      CHECK(vdisk_sha256(out) == want);
      Json info = info_json(out);
      CHECK(detail(info, "case").find("examiner")->as_string() == "Ana Núñez");
      CHECK(detail(info, "stored_hashes").find("sha1")->as_string() == sha1);
      if (*seg) {
        CHECK(file_exists(dir / (std::string("o-") + comp + "-seg.E02")));
        CHECK(detail(info, "segments").as_array().size() > 1);
      }
      // ewfinfo and vdisk name the same set identifier.
      CHECK(ewfinfo_value(text, "Set identifier") == detail(info, "set_identifier").as_string());
    }
  }
  // No temporary file was left behind.
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    CHECK(e.path().filename().string().find("vdisk-partial") == std::string::npos);
  }
}

TEST_CASE("more than 99 segments: names past .E99 are read and written as ewfacquire does",
          "[e01]") {
  require_ewf_tools();
  TempDir dir;
  // 104 MiB of random data, 1 MiB segments, stored uncompressed: over 100
  // segments, .E01 ... .E99, .EAA, .EAB, ...
  const std::string src = dir / "big.raw";
  write_file(src, pattern_bytes(104 * MiB, 7));
  const std::string want = coreutils_digest("sha256sum", src);
  ewfacquire(src, dir / "theirs", "-c none -S 1MiB");
  REQUIRE(file_exists(dir / "theirs.EAA"));
  CHECK(vdisk_sha256(dir / "theirs.E01") == want);
  RunResult r = run_vdisk("convert --hash none -O e01 -o compression=none,segment_size=1M " +
                          sh_quote(src) + " " + sh_quote(dir / "ours.E01"));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(file_exists(dir / "ours.E99"));
  CHECK(file_exists(dir / "ours.EAA"));
  RunResult v = run("ewfverify -q " + sh_quote(dir / "ours.E01"));
  INFO(v.out << v.err);
  CHECK(v.exit_code == 0);
  CHECK(ewfexport_sha256(dir / "ours.E01", dir / "x") == want);
}

TEST_CASE("zero chunks are reported as zero without inflating them; conversions leave holes",
          "[e01]") {
  require_ewf_tools();
  TempDir dir;
  // 4 MiB zeros, 4 MiB random, 4 MiB zeros.
  const std::string src = dir / "z.raw";
  std::vector<uint8_t> bytes(12 * MiB, 0);
  auto rnd = pattern_bytes(4 * MiB, 3);
  std::copy(rnd.begin(), rnd.end(), bytes.begin() + 4 * MiB);
  write_file(src, bytes);
  for (const char* c : {"fast", "best", "empty-block"}) {
    INFO("ewfacquire -c " << c);
    ewfacquire(src, dir / c, std::string("-c ") + c);
    auto dev = open_image(dir / (std::string(c) + ".E01"), "", OpenOptions{});
    const uint64_t before = e01::chunks_inflated();
    std::vector<MappedExtent> map = map_extents(*dev);
    // Recognised by their bytes (zlib's encodings of a zero chunk).
    CHECK(e01::chunks_inflated() == before);
    REQUIRE(map.size() == 3);
    CHECK((map[0].type == ExtentType::kZero && map[0].length == 4 * MiB));
    CHECK((map[1].type == ExtentType::kData && map[1].length == 4 * MiB));
    CHECK((map[2].type == ExtentType::kZero && map[2].length == 4 * MiB));
  }
  // Stored (uncompressed) zero chunks are data: the converter's own zero
  // scan finds them. Either way the raw output is sparse.
  ewfacquire(src, dir / "none", "-c none");
  RunResult r = run_vdisk("convert --hash none -O raw " + sh_quote(dir / "none.E01") + " " +
                          sh_quote(dir / "none.raw"));
  REQUIRE(r.exit_code == 0);
  CHECK(allocated_bytes_on_host(dir / "none.raw") <= 5 * MiB);
  CHECK(coreutils_digest("sha256sum", dir / "none.raw") == coreutils_digest("sha256sum", src));
  // vdisk's own zero chunks (a 52-byte stream for 32 KiB) too.
  run_ok(std::string(VDISK_BIN) + " convert --hash none -O e01 -o compression=none " +
         sh_quote(src) + " " + sh_quote(dir / "ours.E01"));
  CHECK(file_size(dir / "ours.E01") < 4 * MiB + 64 * 1024);
  auto ours = open_image(dir / "ours.E01", "", OpenOptions{});
  std::vector<MappedExtent> m2 = map_extents(*ours);
  REQUIRE(m2.size() == 3);
  CHECK(m2[0].type == ExtentType::kZero);
}

TEST_CASE("concurrent unaligned reads of an E01 return the source's bytes", "[e01]") {
  require_ewf_tools();
  TempDir dir;
  const std::string src = make_source(dir, 16 * MiB);
  ewfacquire(src, dir / "c", "-c fast -b 128");
  const std::vector<uint8_t> want = read_file(src);
  auto dev = open_image(dir / "c.E01", "", OpenOptions{});
  REQUIRE(dev->size() == want.size());
  std::atomic<int> bad{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; ++t) {
    ts.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      std::vector<uint8_t> buf(300000);
      for (int i = 0; i < 300; ++i) {
        uint64_t len = 1 + rng() % buf.size();
        uint64_t off = rng() % (want.size() - len);
        dev->read(off, buf.data(), len);
        if (std::memcmp(buf.data(), want.data() + off, len) != 0) ++bad;
      }
    });
  }
  for (auto& t : ts) t.join();
  CHECK(bad == 0);
}

TEST_CASE(
    "error2: ranges ewfacquire could not read are listed; ranges vdisk could not read are "
    "recorded",
    "[e01]") {
  require_ewf_tools();
  TempDir dir;
  const std::string src = dir / "r.raw", map = dir / "r.map";
  write_file(src, pattern_bytes(8 * MiB, 5));
  std::string m =
      "# Mapfile. Created by GNU ddrescue version 1.27\n"
      "0x00800000     +               1\n"
      "0x00000000  0x00200000  +\n"
      "0x00200000  0x00010000  -\n"
      "0x00210000  0x001F0000  +\n"
      "0x00400000  0x00001000  -\n"
      "0x00401000  0x003FF000  +\n";
  write_file(map, std::vector<uint8_t>(m.begin(), m.end()));
  // vdisk writes the mapfile's unrescued areas as error2 (in sectors).
  RunResult r = run_vdisk("convert --hash none --mapfile " + sh_quote(map) + " -O e01 " +
                          sh_quote(src) + " " + sh_quote(dir / "m.E01"));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const std::string text = run_ok("ewfinfo " + sh_quote(dir / "m.E01"));
  CHECK_THAT(text, Catch::Contains("at sector(s): 4096 - 4223 number: 128"));
  CHECK_THAT(text, Catch::Contains("at sector(s): 8192 - 8199 number: 8"));
  CHECK(run("ewfverify -q " + sh_quote(dir / "m.E01")).exit_code == 0);
  // vdisk lists them back.
  Json info = info_json(dir / "m.E01");
  const Json& e = detail(info, "acquisition_errors");
  CHECK(e.find("count")->as_u64() == 2);
  CHECK(e.find("bytes")->as_u64() == 0x10000 + 0x1000);
  auto dev = open_image(dir / "m.E01", "", OpenOptions{});
  std::vector<ByteRange> bad = dev->unreadable_ranges();
  REQUIRE(bad.size() == 2);
  CHECK((bad[0].start == 0x200000 && bad[0].length == 0x10000));
  CHECK((bad[1].start == 0x400000 && bad[1].length == 0x1000));
}

TEST_CASE("error2 from ewfacquire reading a device with unreadable sectors", "[e01][mount]") {
  require_ewf_tools();
  VDISK_REQUIRE_FUSE_OR_SKIP();
  if (::access("/dev/loop-control", R_OK | W_OK) != 0) {
    std::printf("SKIPPED: /dev/loop-control is not accessible (ewfacquire needs a block device)\n");
    return;
  }
  TempDir dir;
  const std::string src = dir / "r.raw", map = dir / "r.map", mp = dir / "mnt";
  write_file(src, pattern_bytes(8 * MiB, 6));
  std::string m =
      "0x00800000     +               1\n"
      "0x00000000  0x00200000  +\n"
      "0x00200000  0x00010000  -\n"
      "0x00210000  0x005F0000  +\n";
  write_file(map, std::vector<uint8_t>(m.begin(), m.end()));
  std::filesystem::create_directory(mp);
  std::string loop;
  {
    MountGuard guard(mp);
    RunResult mr = run_vdisk("mount --mode block --mapfile " + sh_quote(map) + " --bad-areas eio " +
                             sh_quote(src) + " " + sh_quote(mp));
    REQUIRE(mr.exit_code == 0);
    RunResult lr = run("losetup -f --show -r " + sh_quote(mp + "/disk.raw"));
    if (lr.exit_code != 0) {
      std::printf("SKIPPED: losetup failed: %s\n", lr.err.c_str());
      return;
    }
    loop = lr.out.substr(0, lr.out.find('\n'));
    RunResult a = run("ewfacquire -u -q -w -r 0 -g 8 -c fast -t " + sh_quote(dir / "dev") + " " +
                      loop + " >/dev/null");
    run("losetup -d " + loop);
    REQUIRE(a.exit_code == 0);
  }
  const std::string text = run_ok("ewfinfo " + sh_quote(dir / "dev.E01"));
  REQUIRE_THAT(text, Catch::Contains("Read errors during acquiry"));
  Json info = info_json(dir / "dev.E01");
  const Json& e = detail(info, "acquisition_errors");
  REQUIRE(e.find("count")->as_u64() >= 1);
  // The first range as ewfinfo prints it: "at sector(s): A - B number: N".
  const Json& first = e.find("ranges")->as_array()[0];
  const uint64_t a = first.find("first_sector")->as_u64(), n = first.find("sectors")->as_u64();
  CHECK_THAT(text, Catch::Contains("at sector(s): " + std::to_string(a) + " - " +
                                   std::to_string(a + n - 1) + " number: " + std::to_string(n)));
  CHECK(a <= 4096);
  CHECK(a + n >= 4096 + 128);
}

TEST_CASE(
    "damaged and incomplete E01 sets are refused naming the file; table2 stands in for a "
    "damaged table",
    "[e01]") {
  require_ewf_tools();
  TempDir dir;
  const std::string src = make_source(dir, 16 * MiB);
  const std::string want = coreutils_digest("sha256sum", src);
  ewfacquire(src, dir / "s", "-c none -S 1MiB");
  REQUIRE(file_exists(dir / "s.E03"));

  // A missing segment is named.
  run_ok("mv " + sh_quote(dir / "s.E03") + " " + sh_quote(dir / "keep.E03"));
  RunResult r = run_vdisk("hash " + sh_quote(dir / "s.E01"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains(dir / "s.E03"));
  CHECK_THAT(r.err, Catch::Contains("missing"));
  // A segment under another number's name.
  run_ok("cp " + sh_quote(dir / "s.E04") + " " + sh_quote(dir / "s.E03"));
  r = run_vdisk("hash " + sh_quote(dir / "s.E01"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("segment number 4, expected 3"));
  // A segment of another image (another size, so another data section).
  const std::string other = dir / "other.raw";
  write_file(other, pattern_bytes(6 * MiB, 9));
  ewfacquire(other, dir / "o", "-c none -S 1MiB");
  run_ok("cp " + sh_quote(dir / "o.E03") + " " + sh_quote(dir / "s.E03"));
  r = run_vdisk("hash " + sh_quote(dir / "s.E01"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("belongs to another image"));
  run_ok("mv " + sh_quote(dir / "keep.E03") + " " + sh_quote(dir / "s.E03"));
  CHECK(vdisk_sha256(dir / "s.E01") == want);
  // Opening a later segment says which one to open.
  r = run_vdisk("info " + sh_quote(dir / "s.E02"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("open its first segment"));

  // A damaged table: its table2 copy is used, with a warning.
  ewfacquire(src, dir / "t", "-c fast");
  std::vector<uint8_t> img = file_bytes(dir / "t.E01");
  auto find = [&](const char* type) {
    for (size_t off = e01::kFileHeaderSize;;) {
      std::string t(reinterpret_cast<const char*>(&img[off]));
      if (t == type) return off;
      off = static_cast<size_t>(load_le64(&img[off + 16]));
      REQUIRE(off < img.size());
    }
  };
  const size_t table = find("table");
  const size_t entries = table + 76 + 24;
  std::vector<uint8_t> damaged = img;
  damaged[entries + 4 * 5 + 1] ^= 0x40;  // entry 5
  write_file(dir / "t.E01", damaged);
  r = run_vdisk("hash " + sh_quote(dir / "t.E01"));
  CHECK(r.exit_code == 0);
  CHECK(parse_tagged_digest(r.out, "SHA256") == want);
  CHECK_THAT(r.err, Catch::Contains("using its table2 copy"));
  // Both copies damaged: refused, naming both.
  const size_t table2 = find("table2");
  damaged[table2 + 76 + 24 + 4 * 5 + 1] ^= 0x40;
  write_file(dir / "t.E01", damaged);
  r = run_vdisk("hash " + sh_quote(dir / "t.E01"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("table2 copy"));
  CHECK_THAT(r.err, Catch::Contains(dir / "t.E01"));

  // A damaged compressed chunk (text at 4 MiB: chunk 129) fails the read,
  // naming the chunk.
  damaged = img;
  const uint32_t entry = load_le32(&img[entries + 4 * 129]);
  REQUIRE((entry & 0x80000000u) != 0);  // compressed
  const uint64_t base = load_le64(&img[table + 76 + 8]);
  damaged[base + (entry & 0x7fffffff) + 20] ^= 0xff;
  write_file(dir / "t.E01", damaged);
  r = run_vdisk("hash " + sh_quote(dir / "t.E01"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("chunk 129"));
  // A stored chunk whose Adler-32 does not match.
  ewfacquire(src, dir / "u", "-c none");
  img = file_bytes(dir / "u.E01");
  const size_t ut = find("table");
  const uint64_t ubase = load_le64(&img[ut + 76 + 8]);
  const uint32_t rel = load_le32(&img[ut + 76 + 24 + 4 * 7]);
  img[ubase + rel + 100] ^= 1;
  write_file(dir / "u.E01", img);
  r = run_vdisk("hash " + sh_quote(dir / "u.E01"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("chunk 7"));
  CHECK_THAT(r.err, Catch::Contains("Adler-32"));
}

TEST_CASE("an E01 mounts as disk.raw with its partitions, and ls sees the file systems inside",
          "[e01][mount]") {
  require_ewf_tools();
  require_tool("sfdisk");
  require_tool("mkfs.vfat");
  require_tool("mcopy");
  TempDir dir;
  const std::string disk = dir / "d.raw";
  run_ok("truncate -s 24M " + sh_quote(disk));
  run_ok("printf 'label: dos\\nstart=2048, size=30720, type=6\\n' | sfdisk -q " + sh_quote(disk));
  run_ok("mkfs.vfat -C -F 16 " + sh_quote(dir / "p1.fat") + " 15360 >/dev/null");
  run_ok("echo 'hello from e01' > " + sh_quote(dir / "hello.txt"));
  write_file(dir / "blob.bin", pattern_bytes(200000, 4));
  run_ok("MTOOLS_SKIP_CHECK=1 mcopy -i " + sh_quote(dir / "p1.fat") + " " +
         sh_quote(dir / "hello.txt") + " " + sh_quote(dir / "blob.bin") + " ::/");
  run_ok("dd if=" + sh_quote(dir / "p1.fat") + " of=" + sh_quote(disk) +
         " bs=512 seek=2048 conv=notrunc status=none");
  ewfacquire(disk, dir / "d", "-c fast");
  const std::string image = dir / "d.E01";
  // ls and cat through the E01 (no FUSE needed).
  RunResult ls = run_vdisk("ls " + sh_quote(image + "@p1"));
  INFO(ls.err);
  REQUIRE(ls.exit_code == 0);
  CHECK_THAT(ls.out, Catch::Contains("hello.txt"));
  CHECK_THAT(ls.out, Catch::Contains("blob.bin"));
  CHECK(run_ok(std::string(VDISK_BIN) + " cat " + sh_quote(image + "@p1:/blob.bin") +
               " | sha256sum") == run_ok("sha256sum < " + sh_quote(dir / "blob.bin")));

  VDISK_REQUIRE_FUSE_OR_SKIP();
  const std::string mp = dir / "mnt";
  std::filesystem::create_directory(mp);
  MountGuard guard(mp);
  RunResult m = run_vdisk("mount --mode block " + sh_quote(image) + " " + sh_quote(mp));
  INFO(m.err);
  REQUIRE(m.exit_code == 0);
  CHECK(coreutils_digest("sha256sum", mp + "/disk.raw") == coreutils_digest("sha256sum", disk));
  REQUIRE(file_exists(mp + "/p1"));
  CHECK(file_size(mp + "/p1") == 30720 * 512);
  CHECK(coreutils_digest("sha256sum", mp + "/p1") == coreutils_digest("sha256sum", dir / "p1.fat"));
  CHECK(run_vdisk("unmount " + sh_quote(mp)).exit_code == 0);
}

TEST_CASE("E01 writer refuses bad names, bad options and out-of-limit case metadata up front",
          "[e01]") {
  TempDir dir;
  const std::string src = dir / "s.raw";
  write_file(src, pattern_bytes(1 * MiB, 1));
  auto refused = [&](const std::string& args, const std::string& out, const std::string& what) {
    RunResult r =
        run_vdisk("convert --hash none -O e01 " + args + " " + sh_quote(src) + " " + sh_quote(out));
    INFO(args << " -> " << out);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(what));
    CHECK_FALSE(file_exists(out));
  };
  refused("", dir / "x.img", "*.E01");
  refused("-o segment_size=4K", dir / "a.E01", "segment_size");
  refused("-o sectors_per_chunk=100", dir / "b.E01", "sectors_per_chunk");
  refused("-o case_number=" + std::string(3000, 'x'), dir / "c.E01", "at most 2999");
  refused("-o notes=\"$(printf 'a\\tb')\"", dir / "d.E01", "tabs");
  // A size that is not whole sectors needs --allow-resize.
  write_file(dir / "odd.raw", pattern_bytes(1000, 2));
  RunResult r = run_vdisk("convert --hash none -O e01 " + sh_quote(dir / "odd.raw") + " " +
                          sh_quote(dir / "odd.E01"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("--allow-resize"));
  CHECK_FALSE(file_exists(dir / "odd.E01"));
}

TEST_CASE("verify without --expect checks the hashes an E01 stores and every chunk's checksum",
          "[e01][verify]") {
  require_ewf_tools();
  TempDir dir;
  const std::string src = make_source(dir, 16 * MiB);
  ewfacquire(src, dir / "a", "-c fast -d sha1");
  // As ewfverify says: a good image verifies (exit 0).
  RunResult theirs = run("ewfverify -q " + sh_quote(dir / "a.E01"));
  REQUIRE(theirs.exit_code == 0);
  RunResult r = run_vdisk("verify " + sh_quote(dir / "a.E01"));
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("matches the hashes stored in the image"));
  CHECK_THAT(r.out, Catch::Contains(coreutils_digest("md5sum", src)));
  CHECK_THAT(r.out, Catch::Contains(coreutils_digest("sha1sum", src)));
  // --expect still works on top.
  r = run_vdisk("verify --expect sha256:" + coreutils_digest("sha256sum", src) + " " +
                sh_quote(dir / "a.E01"));
  CHECK(r.exit_code == 0);

  // A stored MD5 that does not match the media: ewfverify and vdisk fail
  // (exit 1), vdisk naming the hash.
  std::vector<uint8_t> img = read_file(dir / "a.E01");
  size_t hash = 0;
  for (size_t off = e01::kFileHeaderSize;;) {
    std::string t(reinterpret_cast<const char*>(&img[off]));
    if (t == "hash") {
      hash = off + 76;
      break;
    }
    off = static_cast<size_t>(load_le64(&img[off + 16]));
    REQUIRE(off < img.size());
  }
  std::vector<uint8_t> bad = img;
  bad[hash] ^= 1;
  store_le32(&bad[hash + 32], static_cast<uint32_t>(::adler32(1, &bad[hash], 32)));
  // The digest section holds the MD5 too (and is preferred); poke both.
  for (size_t off = e01::kFileHeaderSize;;) {
    std::string t(reinterpret_cast<const char*>(&bad[off]));
    if (t == "digest") {
      bad[off + 76] ^= 1;
      store_le32(&bad[off + 76 + 76], static_cast<uint32_t>(::adler32(1, &bad[off + 76], 76)));
      break;
    }
    if (t == "done") break;
    off = static_cast<size_t>(load_le64(&bad[off + 16]));
  }
  write_file(dir / "a.E01", bad);
  CHECK(run("ewfverify -q " + sh_quote(dir / "a.E01")).exit_code == 1);
  r = run_vdisk("verify " + sh_quote(dir / "a.E01"));
  INFO(r.out << r.err);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.out, Catch::Contains("FAILED"));
  CHECK_THAT(r.out, Catch::Contains("md5"));

  // A damaged chunk: listed with its media offset, exit 1, after a full pass.
  bad = img;
  size_t table = 0;
  for (size_t off = e01::kFileHeaderSize;;) {
    std::string t(reinterpret_cast<const char*>(&bad[off]));
    if (t == "table") {
      table = off + 76;
      break;
    }
    off = static_cast<size_t>(load_le64(&bad[off + 16]));
  }
  const uint64_t base = load_le64(&bad[table + 8]);
  for (uint32_t chunk : {129u, 200u}) {
    const uint32_t entry = load_le32(&bad[table + 24 + 4 * chunk]);
    bad[base + (entry & 0x7fffffff) + 30] ^= 0x55;
  }
  write_file(dir / "a.E01", bad);
  CHECK(run("ewfverify -q " + sh_quote(dir / "a.E01")).exit_code == 1);
  r = run_vdisk("verify " + sh_quote(dir / "a.E01"));
  INFO(r.out << r.err);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.out, Catch::Contains("2 damaged chunks"));
  CHECK_THAT(r.out, Catch::Contains("media offset 0x408000"));  // chunk 129
  CHECK_THAT(r.out, Catch::Contains("media offset 0x640000"));  // chunk 200

  // A damaged container (a section descriptor): exit 2.
  bad = img;
  bad[e01::kFileHeaderSize + 72] ^= 1;
  write_file(dir / "a.E01", bad);
  r = run_vdisk("verify " + sh_quote(dir / "a.E01"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("section descriptor checksum"));
  // An image that stores no hashes needs --expect.
  r = run_vdisk("verify " + sh_quote(src));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("stores no hashes"));
}

TEST_CASE(
    "error2 ranges are treated like unrescued mapfile areas: kept out, hashed as zeros, EIO "
    "on request",
    "[e01][mount]") {
  require_ewf_tools();
  TempDir dir;
  const std::string src = dir / "r.raw", map = dir / "r.map";
  const std::vector<uint8_t> content = pattern_bytes(8 * MiB, 5);
  write_file(src, content);
  std::string m =
      "0x00800000     +               1\n"
      "0x00000000  0x00200000  +\n"
      "0x00200000  0x00010000  -\n"
      "0x00210000  0x005F0000  +\n";
  write_file(map, std::vector<uint8_t>(m.begin(), m.end()));
  RunResult r = run_vdisk("convert --hash none --mapfile " + sh_quote(map) + " -O e01 " +
                          sh_quote(src) + " " + sh_quote(dir / "m.E01"));
  REQUIRE(r.exit_code == 0);
  // The zero-filled source, made with dd.
  const std::string zf = dir / "zf.raw";
  run_ok("cp " + sh_quote(src) + " " + sh_quote(zf) + " && dd if=/dev/zero of=" + sh_quote(zf) +
         " bs=64K seek=32 count=1 conv=notrunc status=none");
  // hash: the second set counts the unread ranges as zeros (here, as stored).
  r = run_vdisk("hash " + sh_quote(dir / "m.E01"));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.err, Catch::Contains("1 unrescued area"));
  CHECK(parse_tagged_digest(r.out, "SHA256") == coreutils_digest("sha256sum", zf));
  // convert keeps them out of the output (a hole in a raw file).
  r = run_vdisk("convert --hash none -O raw " + sh_quote(dir / "m.E01") + " " +
                sh_quote(dir / "out.raw"));
  REQUIRE(r.exit_code == 0);
  CHECK(coreutils_digest("sha256sum", dir / "out.raw") == coreutils_digest("sha256sum", zf));
  // And an E01 made from it records them again.
  r = run_vdisk("convert --hash none -O e01 " + sh_quote(dir / "m.E01") + " " +
                sh_quote(dir / "again.E01"));
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(run_ok("ewfinfo " + sh_quote(dir / "again.E01")),
             Catch::Contains("at sector(s): 4096 - 4223 number: 128"));
  // map marks them.
  r = run_vdisk("map --output json " + sh_quote(dir / "m.E01"));
  REQUIRE(r.exit_code == 0);
  bool marked = false;
  const Json rows = Json::parse(r.out);
  for (const Json& e : rows.as_array()) {
    if (e.find("start")->as_u64() == 0x200000) {
      marked = e.find("length")->as_u64() == 0x10000 && !e.find("rescued")->as_bool() &&
               e.find("ddrescue_status")->as_string() == "-";
    }
  }
  CHECK(marked);

  VDISK_REQUIRE_FUSE_OR_SKIP();
  const std::string mp = dir / "mnt";
  std::filesystem::create_directory(mp);
  MountGuard guard(mp);
  r = run_vdisk("mount --mode block --bad-areas eio " + sh_quote(dir / "m.E01") + " " +
                sh_quote(mp));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  int fd = ::open((mp + "/disk.raw").c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  std::vector<uint8_t> buf(4096);
  CHECK(::pread(fd, buf.data(), buf.size(), 0) == 4096);
  CHECK(std::equal(buf.begin(), buf.end(), content.begin()));
  errno = 0;
  CHECK(::pread(fd, buf.data(), buf.size(), 0x200000 + 8192) == -1);
  CHECK(errno == EIO);
  CHECK(::pread(fd, buf.data(), buf.size(), 0x210000) == 4096);
  ::close(fd);
  CHECK(run_vdisk("unmount " + sh_quote(mp)).exit_code == 0);
}
