// The --hash-file report: one type, written and parsed by the same code
// (converters/report.h), and the error map's areas (views/ddrescue).
#include <catch2/catch.hpp>

#include "converters/report.h"
#include "formats/core/error.h"
#include "views/ddrescue/ddrescue_map.h"

using namespace vdisk;

namespace {

HashValue hv(HashAlgo a, char digit) {
  return {a, std::string(hash_hex_length(a), digit)};
}

// Every optional part present.
Report full_report() {
  Report r;
  r.command = "convert";
  r.start_time = "2026-11-21T00:38:17Z";
  r.end_time = "2026-11-21T00:39:02Z";
  r.source = {"/evidence/disk.img", "vmdk", "monolithicSparse", 64ull << 20, 5ull << 20};
  r.destination = ReportDestination{"/out/disk.vhdx",
                                    "vhdx",
                                    "subformat=dynamic,block_size=2M",
                                    (64ull << 20) + (1 << 20),
                                    3ull << 20,
                                    {"/out/disk.vhdx"},
                                    {hv(HashAlgo::kSha256, 'c')}};
  r.size_changed = ReportSizeChange{64ull << 20, (64ull << 20) + (1 << 20)};
  r.virtual_size = 64ull << 20;
  r.hash_scope = "no hash of the source as stored";
  r.hashes_zero_filled = {hv(HashAlgo::kMd5, 'a'), hv(HashAlgo::kSha256, 'b')};
  r.hashes_zero_filled_scope = "the source with its unrescued areas and read errors as zeros";
  r.mapfile = ReportMapfile{"/evidence/disk.map", {{4096, 512, '-'}, {1 << 20, 65536, '?'}}};
  r.read_errors = ReportReadErrors{{{8192, 4096}, {2 << 20, 8192}}, 12288};
  r.seconds = 45.125;
  return r;
}

}  // namespace

TEST_CASE("a report reads back equal to what was written", "[report]") {
  SECTION("every part present") {
    const Report r = full_report();
    const std::string text = r.to_json().dump(2);
    const Report back = Report::parse(text, "r.json");
    CHECK(back == r);
    CHECK(back.to_json().dump(2) == text);
  }
  SECTION("a hash report: no destination, mapfile or read errors") {
    Report r;
    r.command = "hash";
    r.start_time = r.end_time = "2026-11-21T00:38:17Z";
    r.source = {"-", "raw", "", 1 << 20, 1 << 20};
    r.virtual_size = 1 << 20;
    r.hash_scope = "guest content of the source, as stored";
    r.hashes = {hv(HashAlgo::kMd5, '0'), hv(HashAlgo::kSha1, '1'), hv(HashAlgo::kSha256, '2')};
    r.seconds = 0.25;
    const Report back = Report::parse(r.to_json().dump(), "r.json");
    CHECK(back == r);
    CHECK_FALSE(back.destination);
    CHECK_FALSE(back.mapfile);
    CHECK_FALSE(back.read_errors);
  }
  SECTION("the keys and their order are the documented ones") {
    const Json j = full_report().to_json();
    std::vector<std::string> keys;
    for (const auto& kv : j.as_object()) keys.push_back(kv.first);
    // "hashes" is absent: read errors leave no hash of the source as stored.
    const std::vector<std::string> want = {"vdisk_version",
                                           "command",
                                           "start_time",
                                           "end_time",
                                           "source",
                                           "destination",
                                           "size_changed",
                                           "virtual_size",
                                           "hash_scope",
                                           "hashes_zero_filled",
                                           "hashes_zero_filled_scope",
                                           "mapfile",
                                           "on_read_error",
                                           "read_errors",
                                           "read_error_count",
                                           "read_error_bytes",
                                           "seconds"};
    CHECK(keys == want);
    CHECK(j.find("read_error_count")->as_u64() == 2);
    CHECK(j.find("mapfile")->find("bad_bytes")->as_u64() == 512 + 65536);
    CHECK(j.find("mapfile")->find("bad_areas")->as_array()[0].find("status_name")->as_string() ==
          "bad-sector");
    CHECK(j.find("size_changed")->find("old")->as_u64() == 64ull << 20);
  }
}

TEST_CASE("a report that is not one is refused naming what is wrong", "[report]") {
  const Json good = full_report().to_json();
  auto without = [&](const std::string& key) {
    Json j = Json::object();
    for (const auto& [k, v] : good.as_object()) {
      if (k != key) j.set(k, v);
    }
    return j.dump();
  };
  struct Case {
    std::string text;
    std::string message;
  };
  Json bad_digest = good;
  Json zf = Json::object();
  zf.set("sha256", "1234");
  bad_digest.set("hashes_zero_filled", zf);
  Json bad_type = good;
  bad_type.set("virtual_size", "large");
  const std::vector<Case> cases = {
      {"{\"x\"", "not a vdisk report"},
      {"[1, 2]", "not a JSON object"},
      {without("source"), "no \"source\""},
      {without("seconds"), "no \"seconds\""},
      {bad_digest.dump(), "hashes_zero_filled"},
      {bad_type.dump(), "\"virtual_size\" is not a number"},
  };
  for (const Case& c : cases) {
    INFO(c.text.substr(0, 80));
    try {
      Report::parse(c.text, "/tmp/r.json");
      FAIL("accepted");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::kInvalidArgument);
      CHECK(e.file() == "/tmp/r.json");
      CHECK_THAT(e.message(), Catch::Contains(c.message));
    }
  }
  // Keys a reader does not know are ignored (a newer vdisk may add some).
  Json newer = good;
  newer.set("acquired_by", "someone");
  CHECK(Report::parse(newer.dump(), "r.json") == full_report());
}

TEST_CASE("hash lists: empty names and 'none' inside a list are refused", "[report]") {
  CHECK(parse_hash_algos("none").empty());
  CHECK(parse_hash_algos("SHA-256,md5").size() == 2);
  for (const char* bad : {"", ",,,", "md5,", "none,sha256", "sha512"})
    CHECK_THROWS_AS(parse_hash_algos(bad), Error);
  // The list of known names never offers what was just refused.
  for (const char* bad : {"none,sha256", "md5,none"}) {
    INFO(bad);
    try {
      parse_hash_algos(bad);
    } catch (const Error& e) {
      CHECK_THAT(e.message(), Catch::Contains("'none' cannot be combined"));
    }
  }
  try {
    parse_hash_algos("sha512");
  } catch (const Error& e) {
    CHECK_THAT(e.message(),
               Catch::Contains("known: md5, sha1, sha256") && !Catch::Contains("none"));
  }
  CHECK_THROWS_AS(parse_hash_value("sha1", "abc"), Error);
  CHECK(parse_hash_value("SHA1", std::string(40, 'A')).hex == std::string(40, 'a'));
}

namespace {

void check_areas(const std::vector<ddrescue::BadArea>& got,
                 const std::vector<ddrescue::BadArea>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO(i);
    CHECK(got[i].start == want[i].start);
    CHECK(got[i].length == want[i].length);
    CHECK(got[i].status == want[i].status);
  }
}

}  // namespace

TEST_CASE("error map: read errors join a mapfile's areas without hiding them", "[report]") {
  using ddrescue::BadArea;
  // The mapfile knew [1 MiB, +64 KiB) non-tried and a bad sector at
  // 0x510000; the copy failed at 0x210000, over 0x500000-0x520000 (around
  // the bad sector) and at two adjacent 4 KiB pieces.
  const std::vector<BadArea> known = {{0x100000, 0x10000, '?'}, {0x510000, 0x1000, '-'}};
  const std::vector<BadArea> found = {{0x210000, 0x1000, '*'},
                                      {0x500000, 0x20000, '*'},
                                      {0x600000, 0x1000, '*'},
                                      {0x601000, 0x1000, '*'}};
  const std::vector<BadArea> got = ddrescue::overlay_areas(known, found);
  const std::vector<BadArea> want = {{0x100000, 0x10000, '?'}, {0x210000, 0x1000, '*'},
                                     {0x500000, 0x10000, '*'}, {0x510000, 0x1000, '-'},
                                     {0x511000, 0xF000, '*'},  {0x600000, 0x2000, '*'}};
  check_areas(got, want);
  // What format_mapfile makes of it, parse_mapfile reads back with the same areas.
  const ddrescue::Mapfile map =
      ddrescue::parse_mapfile(ddrescue::format_mapfile(8 << 20, got, {"test"}), "m.map");
  const std::vector<BadArea> again = ddrescue::bad_areas(map, 8 << 20);
  REQUIRE(again.size() == got.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK(again[i].start == got[i].start);
}

TEST_CASE("error map: ranges painted over a mapfile take their status where they lie", "[report]") {
  using ddrescue::BadArea;
  // The mapfile: non-tried [0x1000, 0x3000), bad sector [0x8000, 0x9000).
  const ddrescue::Mapfile base = ddrescue::parse_mapfile(
      ddrescue::format_mapfile(0x10000, {{0x1000, 0x2000, '?'}, {0x8000, 0x1000, '-'}}, {}),
      "base.map");
  // Unsorted, overlapping ranges, one running past the disk's end.
  const std::vector<ByteRange> ranges = {
      {0xF000, 0x4000}, {0x2000, 0x2000}, {0x2800, 0x800}, {0x9000, 0x1000}};
  const ddrescue::Mapfile got =
      ddrescue::mapfile_with_bad_ranges(&base, 0x10000, ranges, '-', "painted");
  CHECK(got.path == "painted");
  const std::vector<BadArea> areas = ddrescue::bad_areas(got, 0x10000);
  const std::vector<BadArea> want = {
      {0x1000, 0x1000, '?'}, {0x2000, 0x2000, '-'}, {0x8000, 0x2000, '-'}, {0xF000, 0x1000, '-'}};
  check_areas(areas, want);
}
