// Read errors in the source (issue 10, "Faults and data safety"): by default
// a failed read stops the command naming the offset (engine: test_safety.cpp;
// CLI: the FUSE case below); with
// `--on-read-error continue` the bad ranges are isolated, left unallocated in
// the output, hashed as zeros and listed. Faults come from a fault-injecting
// Env (engine level) and from `vdisk mount --mapfile MAP --bad-areas eio`, a
// real file whose reads fail with EIO at known offsets (CLI level).
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <mutex>

#include "converters/convert.h"
#include "formats/core/error.h"
#include "formats/core/json.h"
#include "formats/registry.h"
#include "formats/core/writer.h"
#include "tests/support/fault_support.h"
#include "tests/support/mount_support.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

const uint64_t kKiB = 1024, kMiB = 1024 * 1024;

// The 4 KiB-aligned guest ranges that cover `faults`, merged: where the
// engine's finest retry (4 KiB pieces aligned to guest offsets) must put the
// bad ranges when guest and file offsets coincide (raw).
std::vector<Range> page_cover(const std::vector<Range>& faults) {
  std::vector<Range> out;
  for (const Range& f : faults) {
    Range r{f.start / 4096 * 4096, (f.end + 4095) / 4096 * 4096};
    if (!out.empty() && out.back().end >= r.start)
      out.back().end = std::max(out.back().end, r.end);
    else
      out.push_back(r);
  }
  return out;
}

std::vector<Range> ranges_of(const CopyResult& r) {
  std::vector<Range> out;
  for (const ByteRange& b : r.read_errors) out.push_back({b.start, b.start + b.length});
  return out;
}

// `content` with zeros at `bad`, written to `path`: the independently built
// "source with its bad ranges as zeros".
void write_zero_filled(const std::string& path, std::vector<uint8_t> content,
                       const std::vector<Range>& bad) {
  for (const Range& r : bad) std::fill(content.begin() + r.start, content.begin() + r.end, 0);
  write_file(path, content);
}

std::unique_ptr<ImageWriter> make_writer(const std::string& fmt, const std::string& path,
                                         uint64_t size) {
  const FormatDescriptor& f = require_format(fmt);
  CreateRequest req;
  req.path = path;
  req.virtual_size = size;
  req.options = parse_options("", f.create_options, f.name);
  req.env = &Env::posix();
  return f.create(req);
}

// Guest ranges qemu-img map reports as data.
std::vector<Range> qemu_data_ranges(const std::string& path, const std::string& fmt) {
  Json j = Json::parse(run_ok("qemu-img map --output=json -f " + fmt + " " + sh_quote(path)));
  std::vector<Range> out;
  for (auto& e : j.as_array()) {
    if (!e.find("data")->as_bool()) continue;
    uint64_t s = e.find("start")->as_u64(), end = s + e.find("length")->as_u64();
    if (!out.empty() && out.back().end == s)
      out.back().end = end;
    else
      out.push_back({s, end});
  }
  return out;
}

bool overlaps_any(const Range& r, const std::vector<Range>& set) {
  for (const Range& s : set) {
    if (r.start < s.end && s.start < r.end) return true;
  }
  return false;
}

// SHA-256, continuing past read errors.
CopyOptions continue_options() {
  CopyOptions o;
  o.algos = {HashAlgo::kSha256};
  o.on_read_error = OnReadError::kContinue;
  return o;
}

std::string read_text(const std::string& path) {
  auto b = read_file(path);
  return std::string(b.begin(), b.end());
}

}  // namespace

TEST_CASE("read errors: continue isolates 4 KiB ranges of a raw source, writes holes there",
          "[read_errors]") {
  require_tool("qemu-img");
  TempDir dir;
  std::string src = dir / "src.img", out = dir / "out.img", expect = dir / "expect.img";
  const std::vector<uint8_t> content = pattern_bytes(8 * kMiB, 32);
  write_file(src, content);
  // One byte (its page is lost), one page, a 100 KiB stretch over two
  // 64 KiB pieces, and two faults in neighbouring pages (merged into one).
  const std::vector<Range> faults = {{1 * kMiB + 100, 1 * kMiB + 101},
                                     {5 * kMiB + 4096, 5 * kMiB + 8192},
                                     {3 * kMiB + 40 * kKiB, 3 * kMiB + 140 * kKiB},
                                     {6 * kMiB + 4000, 6 * kMiB + 4100},
                                     {6 * kMiB + 8191, 6 * kMiB + 8192}};
  std::vector<Range> sorted = faults;
  std::sort(sorted.begin(), sorted.end(), [](auto& a, auto& b) { return a.start < b.start; });
  const std::vector<Range> expected = page_cover(sorted);
  REQUIRE(expected.size() == 4);  // the two 6 MiB faults: pages 0x600000 and 0x601000, merged
  FaultyEnv env(faults, ErrorKind::kIo, false);
  BlockDevicePtr dev = open_faulty(src, "raw", env);
  for (size_t readers : {1, 2}) {
    INFO("readers " << readers);
    ::unlink(out.c_str());
    auto w = make_writer("raw", out, content.size());
    CopyOptions copts;
    copts.algos = {HashAlgo::kSha256, HashAlgo::kMd5};
    copts.readers = readers;
    copts.on_read_error = OnReadError::kContinue;
    CopyResult r = copy_device(*dev, w.get(), copts);
    w->finish();
    CHECK(ranges_of(r) == expected);
    uint64_t lost = 0;
    for (const Range& e : expected) lost += e.end - e.start;
    CHECK(r.read_error_bytes == lost);
    // No hash of the source as stored exists; the zero-filled one is
    // sha256sum of the source with zeros there, and so is the output's.
    CHECK(r.hashes.empty());
    write_zero_filled(expect, content, expected);
    REQUIRE(r.hashes_zero_filled.size() == 2);
    CHECK(r.hashes_zero_filled[0].hex == coreutils_digest("sha256sum", expect));
    CHECK(r.hashes_zero_filled[1].hex == coreutils_digest("md5sum", expect));
    CHECK(r.output_hashes[0].hex == coreutils_digest("sha256sum", expect));
    run_ok("cmp " + sh_quote(out) + " " + sh_quote(expect));
    // Never written: holes in the raw output (qemu-img sees no data there).
    std::vector<Range> data = qemu_data_ranges(out, "raw");
    for (const Range& e : expected) {
      INFO("bad range " << e);
      CHECK_FALSE(overlaps_any(e, data));
    }
  }
}

TEST_CASE("read errors: with mapfile areas too, both are zeros in the hash and the output",
          "[read_errors]") {
  TempDir dir;
  std::string src = dir / "src.img", out = dir / "out.img", expect = dir / "expect.img";
  const std::vector<uint8_t> content = pattern_bytes(8 * kMiB, 38);
  write_file(src, content);
  // A read error inside an unrescued area (read only for the as-stored hash)
  // and one outside.
  FaultyEnv env({{1 * kMiB + 8 * kKiB, 1 * kMiB + 8 * kKiB + 1}, {3 * kMiB, 3 * kMiB + 4 * kKiB}},
                ErrorKind::kIo, false);
  BlockDevicePtr dev = open_faulty(src, "raw", env);
  auto w = make_writer("raw", out, content.size());
  CopyOptions copts = continue_options();
  copts.unreadable = {{1 * kMiB, 64 * kKiB}};
  CopyResult r = copy_device(*dev, w.get(), copts);
  w->finish();
  CHECK(ranges_of(r) == std::vector<Range>{{1 * kMiB + 8 * kKiB, 1 * kMiB + 12 * kKiB},
                                           {3 * kMiB, 3 * kMiB + 4 * kKiB}});
  CHECK(r.unreadable_bytes == 64 * kKiB);
  CHECK(r.hashes.empty());
  write_zero_filled(expect, content,
                    {{1 * kMiB, 1 * kMiB + 64 * kKiB}, {3 * kMiB, 3 * kMiB + 4 * kKiB}});
  CHECK(r.hashes_zero_filled.at(0).hex == coreutils_digest("sha256sum", expect));
  CHECK(r.output_hashes.at(0).hex == coreutils_digest("sha256sum", expect));
  run_ok("cmp " + sh_quote(out) + " " + sh_quote(expect));
}

TEST_CASE("read errors: a sparse VMDK whose data file fails at one grain", "[read_errors]") {
  require_tool("qemu-img");
  TempDir dir;
  std::string raw = dir / "src.raw", src = dir / "src.vmdk", out = dir / "out.vmdk";
  std::string back = dir / "back.raw", expect = dir / "expect.raw";
  const std::vector<uint8_t> content = pattern_bytes(8 * kMiB, 33);
  write_file(raw, content);
  run_ok("qemu-img convert -f raw -O vmdk " + sh_quote(raw) + " " + sh_quote(src));
  // Where qemu-img stores guest grain [g, g + 64 KiB) in the file: the fault
  // covers exactly that grain's bytes, so the whole grain is lost.
  const uint64_t g = 3 * kMiB + 128 * kKiB;
  uint64_t file_off = 0;
  bool found = false;
  Json map = Json::parse(run_ok("qemu-img map --output=json -f vmdk " + sh_quote(src)));
  for (auto& e : map.as_array()) {
    uint64_t s = e.find("start")->as_u64(), len = e.find("length")->as_u64();
    if (s <= g && g + 64 * kKiB <= s + len && e.find("offset")) {
      file_off = e.find("offset")->as_u64() + (g - s);
      found = true;
    }
  }
  REQUIRE(found);
  FaultyEnv env({{file_off, file_off + 64 * kKiB}}, ErrorKind::kIo, false);
  BlockDevicePtr dev = open_faulty(src, "vmdk", env);

  CopyOptions stop;
  stop.algos = {HashAlgo::kSha256};
  CHECK_THROWS_AS(copy_device(*dev, nullptr, stop), Error);

  auto w = make_writer("vmdk", out, content.size());
  CopyOptions copts = continue_options();
  CopyResult r = copy_device(*dev, w.get(), copts);
  w->finish();
  const std::vector<Range> expected = {{g, g + 64 * kKiB}};
  CHECK(ranges_of(r) == expected);
  write_zero_filled(expect, content, expected);
  REQUIRE(r.hashes_zero_filled.size() == 1);
  CHECK(r.hashes_zero_filled[0].hex == coreutils_digest("sha256sum", expect));
  run_ok("qemu-img check " + sh_quote(out));
  run_ok("qemu-img convert -f vmdk -O raw " + sh_quote(out) + " " + sh_quote(back));
  run_ok("cmp " + sh_quote(back) + " " + sh_quote(expect));
  // The lost grain is not allocated in the output; its neighbours are.
  std::vector<Range> data = qemu_data_ranges(out, "vmdk");
  CHECK_FALSE(overlaps_any(expected[0], data));
  CHECK(overlaps_any({g - 4096, g}, data));
  CHECK(overlaps_any({g + 64 * kKiB, g + 64 * kKiB + 4096}, data));
}

TEST_CASE("read errors: a fully unreadable source finishes quickly as one range", "[read_errors]") {
  TempDir dir;
  std::string src = dir / "dead.img", zeros = dir / "zeros.img";
  const uint64_t size = 16 * kMiB;
  write_file(src, pattern_bytes(size, 34));
  FaultyEnv env({{0, size}}, ErrorKind::kIo, false);
  BlockDevicePtr dev = open_faulty(src, "raw", env);
  CopyOptions copts = continue_options();
  auto t0 = std::chrono::steady_clock::now();
  CopyResult r = copy_device(*dev, nullptr, copts);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(ranges_of(r) == std::vector<Range>{{0, size}});
  // Isolating every 4 KiB would be 4096 + 256 + 4 reads. The bound: 4 KiB
  // splitting stops after 32 failures in a row (then one read per 64 KiB
  // piece: at most 1 + 32 + 64 for a chunk); two reader threads may each do
  // that to one chunk before the source is presumed dead (64 failures in a
  // row), then 3 reads for each of the other two 4 MiB chunks.
  INFO("reads " << env.reads());
  CHECK(env.reads() <= 2 * (1 + 32 + 64) + 2 * 3);
  CHECK(secs < 5);
  run_ok("truncate -s 16M " + sh_quote(zeros));
  CHECK(r.hashes_zero_filled.at(0).hex == coreutils_digest("sha256sum", zeros));
}

TEST_CASE("read errors: a source that shrinks under us loses its vanished tail", "[read_errors]") {
  TempDir dir;
  std::string src = dir / "src.img", expect = dir / "expect.img";
  const std::vector<uint8_t> content = pattern_bytes(8 * kMiB, 35);
  write_file(src, content);
  BlockDevicePtr dev = open_image(src, "raw", OpenOptions{});
  const uint64_t cut = 3 * kMiB + 1000;
  REQUIRE(::truncate(src.c_str(), static_cast<off_t>(cut)) == 0);
  CopyOptions copts = continue_options();
  CopyResult r = copy_device(*dev, nullptr, copts);
  // The page holding the cut is short, so it is lost whole.
  const std::vector<Range> expected = {{3 * kMiB, 8 * kMiB}};
  CHECK(ranges_of(r) == expected);
  write_zero_filled(expect, content, expected);
  CHECK(r.hashes_zero_filled.at(0).hex == coreutils_digest("sha256sum", expect));
}

TEST_CASE("read errors: continue never skips corrupt data, an interruption or a write error",
          "[read_errors]") {
  TempDir dir;
  std::string src = dir / "src.img";
  write_file(src, pattern_bytes(8 * kMiB, 36));
  CopyOptions copts = continue_options();
  {
    // A format's "this is corrupt" surfacing during the copy.
    FaultyEnv env({{2 * kMiB, 2 * kMiB + 1}}, ErrorKind::kCorrupt, false);
    BlockDevicePtr dev = open_faulty(src, "raw", env);
    try {
      copy_device(*dev, nullptr, copts);
      FAIL("corruption was skipped");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::kCorrupt);
      CHECK(e.offset() == 2 * kMiB);
    }
  }
  {
    // A real one: a streamOptimized VMDK with a compressed grain overwritten.
    require_tool("qemu-img");
    std::string vmdk = dir / "stream.vmdk";
    run_ok("qemu-img convert -f raw -O vmdk -o subformat=streamOptimized " + sh_quote(src) + " " +
           sh_quote(vmdk));
    // Grain data begins after the header, descriptor and first tables; the
    // middle of the file is compressed grain bytes.
    const uint64_t mid = file_size(vmdk) / 2;
    write_at(vmdk, mid, std::vector<uint8_t>(4096, 0xA5));
    BlockDevicePtr dev = open_image(vmdk, "vmdk", OpenOptions{});
    try {
      copy_device(*dev, nullptr, copts);
      FAIL("a corrupt compressed grain was skipped");
    } catch (const Error& e) {
      CHECK(e.kind() != ErrorKind::kIo);
    }
  }
  {
    std::atomic<bool> cancel{true};
    BlockDevicePtr dev = open_image(src, "raw", OpenOptions{});
    CopyOptions c = copts;
    c.cancel = &cancel;
    try {
      copy_device(*dev, nullptr, c);
      FAIL("the interruption was ignored");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::kInterrupted);
    }
  }
  {
    // The writer's own I/O failure (a full disk) is not a source read error.
    class FailingWriter final : public ImageWriter {
     public:
      void write(uint64_t off, const void*, size_t) override {
        throw_errno("out.img", off, "write failed", ENOSPC);
      }
      void write_zeroes(uint64_t, uint64_t) override {}
      void finish() override {}
      void abort() override {}
      uint64_t virtual_size() const override { return 8 * kMiB; }
      std::vector<std::string> output_files() const override { return {}; }
    } w;
    BlockDevicePtr dev = open_image(src, "raw", OpenOptions{});
    try {
      copy_device(*dev, &w, copts);
      FAIL("the write error was ignored");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::kIo);
      CHECK_THAT(std::string(e.what()), Catch::Contains("No space left"));
    }
  }
}

namespace {

// The bad areas of the CLI test: 2 isolated pages' worth of regions plus 21
// single pages (more than the 20 the CLI lists one by one).
std::vector<Range> cli_bad_areas() {
  std::vector<Range> v = {{2 * kMiB + 64 * kKiB, 2 * kMiB + 68 * kKiB},
                          {5 * kMiB, 5 * kMiB + 192 * kKiB}};
  for (uint64_t i = 0; i < 21; ++i) {
    uint64_t s = 6 * kMiB + i * 64 * kKiB + 8 * kKiB;
    v.push_back({s, s + 4096});
  }
  return v;
}

// A GNU ddrescue mapfile with `bad` as '-' areas, '+' elsewhere.
std::string mapfile_text(uint64_t size, const std::vector<Range>& bad) {
  char line[128];
  std::string m = "# current_pos  current_status  current_pass\n0x00000000     +               1\n";
  uint64_t pos = 0;
  auto add = [&](uint64_t s, uint64_t e, char st) {
    std::snprintf(line, sizeof line, "0x%08llX  0x%08llX  %c\n", static_cast<unsigned long long>(s),
                  static_cast<unsigned long long>(e - s), st);
    m += line;
  };
  for (const Range& r : bad) {
    if (r.start > pos) add(pos, r.start, '+');
    add(r.start, r.end, '-');
    pos = r.end;
  }
  if (pos < size) add(pos, size, '+');
  return m;
}

std::vector<Range> report_ranges(const Json& list) {
  std::vector<Range> out;
  for (auto& e : list.as_array()) {
    uint64_t s = e.find("offset")->as_u64();
    out.push_back({s, s + e.find("length")->as_u64()});
  }
  return out;
}

}  // namespace

TEST_CASE("read errors: convert and hash on a file that fails with EIO (FUSE)",
          "[read_errors][mount]") {
  VDISK_REQUIRE_FUSE_OR_SKIP();
  require_tool("qemu-img");
  TempDir dir;
  const uint64_t size = 8 * kMiB;
  std::string img = dir / "img.raw", map = dir / "img.map", mp = dir / "mnt";
  std::string out = dir / "out.vmdk", report = dir / "report.json", emap = dir / "errors.map";
  std::string expect = dir / "expect.raw", back = dir / "back.raw";
  const std::vector<uint8_t> content = pattern_bytes(size, 37);
  write_file(img, content);
  const std::vector<Range> bad = cli_bad_areas();
  std::string m = mapfile_text(size, bad);
  write_file(map, std::vector<uint8_t>(m.begin(), m.end()));
  // The zero-filled source, built with dd independently of vdisk.
  run_ok("cp " + sh_quote(img) + " " + sh_quote(expect));
  for (const Range& r : bad) {
    run_ok("dd if=/dev/zero of=" + sh_quote(expect) +
           " bs=4096 seek=" + std::to_string(r.start / 4096) +
           " count=" + std::to_string((r.end - r.start) / 4096) + " conv=notrunc status=none");
  }
  const std::string expect_sha = coreutils_digest("sha256sum", expect);
  std::filesystem::create_directory(mp);
  MountGuard guard(mp);
  RunResult mr = run_vdisk("mount --mode block --mapfile " + sh_quote(map) + " --bad-areas eio " +
                           sh_quote(img) + " " + sh_quote(mp));
  INFO(mr.err);
  REQUIRE(mr.exit_code == 0);
  REQUIRE(is_mounted(mp));
  const std::string failing = mp + "/disk.raw";

  // Default: stop with exit 2, naming an offset inside a bad area.
  RunResult stop = run_vdisk("convert -O vmdk " + sh_quote(failing) + " " + sh_quote(out));
  INFO(stop.err);
  CHECK(stop.exit_code == 2);
  CHECK_THAT(stop.err, Catch::Contains("Input/output error"));
  CHECK_THAT(stop.err, Catch::Contains("--on-read-error continue"));
  CHECK_FALSE(file_exists(out));

  // Continue: exit 3, every range listed, the output as the source with
  // zeros there, the report and the error map saying so.
  RunResult r =
      run_vdisk("convert --on-read-error continue --error-map " + sh_quote(emap) + " --hash-file " +
                sh_quote(report) + " -O vmdk " + sh_quote(failing) + " " + sh_quote(out));
  INFO(r.err);
  CHECK(r.exit_code == 3);
  CHECK_THAT(r.err, Catch::Contains("read error at offset 0x210000 (2162688), 4096 bytes left "
                                    "unallocated"));
  CHECK_THAT(r.err, Catch::Contains("read error at offset 0x500000 (5242880), 196608 bytes"));
  CHECK_THAT(r.err, Catch::Contains("... and 3 more read errors"));
  CHECK_THAT(r.err, Catch::Contains("23 unreadable ranges"));
  Json rep = Json::parse(read_text(report));
  CHECK(report_ranges(*rep.find("read_errors")) == bad);
  CHECK(rep.find("read_error_bytes")->as_u64() == (4 + 192 + 21 * 4) * kKiB);
  CHECK(rep.find("hashes") == nullptr);
  CHECK(rep.find("hashes_zero_filled")->find("sha256")->as_string() == expect_sha);
  CHECK(rep.find("destination")->find("hashes")->find("sha256")->as_string() == expect_sha);
  run_ok("qemu-img check " + sh_quote(out));
  run_ok("qemu-img convert -f vmdk -O raw " + sh_quote(out) + " " + sh_quote(back));
  run_ok("cmp " + sh_quote(back) + " " + sh_quote(expect));
  // Three whole 64 KiB grains lost at 5 MiB: unallocated in the output.
  CHECK_FALSE(overlaps_any(bad[1], qemu_data_ranges(out, "vmdk")));
  // The error map is a ddrescue mapfile that --mapfile reads back: the same
  // zero-filled content from the intact image.
  RunResult h = run_vdisk("hash --mapfile " + sh_quote(emap) + " " + sh_quote(img));
  INFO(h.err);
  CHECK(h.exit_code == 0);
  CHECK(parse_tagged_digest(h.out, "SHA256") == coreutils_digest("sha256sum", img));
  CHECK_THAT(h.out, Catch::Contains(expect_sha));
  CHECK_THAT(h.err, Catch::Contains("23 unrescued areas"));
  // vdisk verify of the output against the report: its destination matches.
  CHECK(run_vdisk("verify " + sh_quote(out) + " --hash-file " + sh_quote(report)).exit_code == 0);

  // hash --output json on the failing file lists the same ranges.
  RunResult hj = run_vdisk("hash --on-read-error continue --output json " + sh_quote(failing));
  INFO(hj.err);
  CHECK(hj.exit_code == 3);
  Json j = Json::parse(hj.out);
  CHECK(report_ranges(*j.find("read_errors")) == bad);
  CHECK(j.find("hashes_zero_filled")->find("sha256")->as_string() == expect_sha);
  CHECK(j.find("hashes")->as_object().empty());
  // verify of the failing file: it matches the report's zero-filled content,
  // and still exits 3.
  RunResult v = run_vdisk("verify --on-read-error continue " + sh_quote(failing) + " --hash-file " +
                          sh_quote(report));
  INFO(v.out << v.err);
  CHECK(v.exit_code == 3);
  CHECK_THAT(v.out, Catch::Contains("verify: OK"));
  // With a mapfile of the failing file too: its unrescued areas keep their
  // status in the error map, read errors outside them become '*', inside
  // them they add nothing. [1 MiB, +64 KiB) is non-tried; the bad sector at
  // 5 MiB + 64 KiB lies inside the read error at 5 MiB.
  const std::string map2 = dir / "known.map", emap2 = dir / "errors2.map";
  const std::string m2 =
      "0x0 + 1\n0x0 0x100000 +\n0x100000 0x10000 ?\n0x110000 0x400000 +\n"
      "0x510000 0x1000 -\n0x511000 0x2EF000 +\n";
  write_file(map2, std::vector<uint8_t>(m2.begin(), m2.end()));
  RunResult hm =
      run_vdisk("hash --mapfile " + sh_quote(map2) + " --on-read-error continue --error-map " +
                sh_quote(emap2) + " " + sh_quote(failing));
  INFO(hm.err);
  CHECK(hm.exit_code == 3);
  std::string want =
      "0x0  0x100000  +\n0x100000  0x10000  ?\n0x110000  0x100000  +\n"
      "0x210000  0x1000  *\n0x211000  0x2EF000  +\n0x500000  0x10000  *\n"
      "0x510000  0x1000  -\n0x511000  0x1F000  *\n";
  uint64_t pos = 0x530000;
  for (size_t i = 2; i < bad.size(); ++i) {
    char line[80];
    std::snprintf(line, sizeof line, "0x%llX  0x%llX  +\n0x%llX  0x1000  *\n",
                  static_cast<unsigned long long>(pos),
                  static_cast<unsigned long long>(bad[i].start - pos),
                  static_cast<unsigned long long>(bad[i].start));
    want += line;
    pos = bad[i].end;
  }
  char tail[64];
  std::snprintf(tail, sizeof tail, "0x%llX  0x%llX  +\n", static_cast<unsigned long long>(pos),
                static_cast<unsigned long long>(size - pos));
  want += tail;
  std::string got = read_text(emap2);
  CHECK(got.substr(got.find("#      pos") +
                   std::string("#      pos        size  status\n").size()) == want);
  // Usage errors.
  CHECK(run_vdisk("hash --on-read-error maybe " + sh_quote(img)).exit_code == 2);
  CHECK(run_vdisk("hash --error-map x.map " + sh_quote(img)).exit_code == 2);
  CHECK(run_vdisk("hash --on-read-error continue --size 4096 -").exit_code == 2);
  RunResult um = run_vdisk("unmount " + sh_quote(mp));
  CHECK(um.exit_code == 0);
}
