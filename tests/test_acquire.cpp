// `vdisk acquire` (issue 22): the pass engine in-process over a scripted
// faulty device (bad sectors that always fail, sectors that fail only their
// first N reads, interruptions at chosen reads, a clock for --timeout), and
// the command against GNU ddrescue on the same faulty source: a FUSE mount
// (`vdisk mount --mapfile MAP --bad-areas eio`) whose reads fail with EIO at
// known sectors. Oracles: ddrescue and ddrescuelog (gddrescue), cmp,
// sha256sum, ewfverify and ewfinfo (ewf-tools).
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "converters/acquire.h"
#include "converters/convert.h"
#include "formats/core/error.h"
#include "formats/core/file.h"
#include "formats/core/json.h"
#include "tests/support/mount_support.h"
#include "tests/support/test_support.h"
#include "views/ddrescue/ddrescue_map.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

const uint64_t kKiB = 1024, kMiB = 1024 * 1024;

// A disk in memory whose reads fail (Error kIo) when they touch a bad
// sector: `always` ones every time, `flaky` ones for their first N reads
// (counted per sector). `cancel_after` sets *cancel at that many reads.
class ScriptedDisk final : public BlockDevice {
 public:
  explicit ScriptedDisk(std::vector<uint8_t> bytes) : bytes_(std::move(bytes)) {}
  std::set<uint64_t> always;      // sector numbers (512 bytes)
  std::map<uint64_t, int> flaky;  // sector -> failures left
  mutable uint64_t reads = 0;
  mutable uint64_t failed = 0;
  uint64_t cancel_after = 0;
  std::atomic<bool>* cancel = nullptr;

  uint64_t size() const override { return bytes_.size(); }
  ImageInfo info() const override {
    ImageInfo i;
    i.path = "scripted";
    i.format = "raw";
    i.virtual_size = size();
    return i;
  }

 protected:
  void do_read(uint64_t off, void* buf, size_t len) const override {
    ++reads;
    if (cancel && cancel_after && reads >= cancel_after) cancel->store(true);
    bool bad = false;
    for (uint64_t s = off / 512; s * 512 < off + len; ++s) {
      if (always.count(s)) bad = true;
      auto it = flaky_.find(s);
      if (it == flaky_.end() && flaky.count(s)) it = flaky_.emplace(s, flaky.at(s)).first;
      if (it != flaky_.end() && it->second > 0) {
        --it->second;
        bad = true;
      }
    }
    if (bad) {
      ++failed;
      throw Error(ErrorKind::kIo, "scripted", off, "read: Input/output error");
    }
    std::memcpy(buf, bytes_.data() + off, len);
  }
  Extent do_block_status(uint64_t, uint64_t len) const override {
    return Extent{len, ExtentType::kData, 0};
  }

 private:
  std::vector<uint8_t> bytes_;
  mutable std::map<uint64_t, int> flaky_;
};

class MemorySink final : public RescueSink {
 public:
  explicit MemorySink(uint64_t size) : bytes(size, 0) {}
  std::vector<uint8_t> bytes;
  int syncs = 0;
  void write_at(uint64_t off, const void* buf, size_t len) override {
    REQUIRE(off + len <= bytes.size());
    std::memcpy(bytes.data() + off, buf, len);
  }
  void sync() override { ++syncs; }
};

// The map as (start, end, status) runs.
std::vector<std::tuple<uint64_t, uint64_t, char>> runs_of(const ddrescue::RescueMap& m) {
  std::vector<std::tuple<uint64_t, uint64_t, char>> out;
  for (const auto& b : m.blocks()) out.emplace_back(b.pos, b.pos + b.size, b.status);
  return out;
}

// `content` with zeros at the given sectors.
std::vector<uint8_t> zeroed(std::vector<uint8_t> content, const std::set<uint64_t>& sectors) {
  for (uint64_t s : sectors)
    std::fill(content.begin() + s * 512, content.begin() + s * 512 + 512, 0);
  return content;
}

// The map a complete rescue must end with: the bad sectors '-', the rest '+'.
std::vector<std::tuple<uint64_t, uint64_t, char>> expected_runs(uint64_t size,
                                                                const std::set<uint64_t>& bad) {
  ddrescue::RescueMap m(size);
  m.set(0, size, '+');
  for (uint64_t s : bad) m.set(s * 512, 512, '-');
  return runs_of(m);
}

std::set<uint64_t> sample_bad_sectors() {
  std::set<uint64_t> bad = {3, 4, 5, 700};                     // a few near the start
  for (uint64_t s = 2048; s < 2048 + 300; ++s) bad.insert(s);  // a 150 KiB stretch
  bad.insert(6000);
  bad.insert(8191);  // the last sector
  return bad;
}

}  // namespace

TEST_CASE("RescueMap keeps blocks merged and counts bytes per status", "[acquire]") {
  ddrescue::RescueMap m(10000);
  CHECK(m.bytes('?') == 10000);
  m.set(100, 50, '+');
  m.set(150, 50, '+');
  m.set(9990, 100, '-');  // clipped to the disk
  CHECK(runs_of(m) == std::vector<std::tuple<uint64_t, uint64_t, char>>{
                          {0, 100, '?'}, {100, 200, '+'}, {200, 9990, '?'}, {9990, 10000, '-'}});
  CHECK(m.bytes('+') == 100);
  CHECK(m.bytes('-') == 10);
  CHECK(m.areas('?') == 2);
  m.set(0, 9990, '+');
  CHECK(runs_of(m) ==
        std::vector<std::tuple<uint64_t, uint64_t, char>>{{0, 9990, '+'}, {9990, 10000, '-'}});
  CHECK(m.next(0, "-")->pos == 9990);
  CHECK(m.prev(10000, "+")->size == 9990);
  CHECK(!m.next(0, "?"));
  // Text round trip through the parser, status line included.
  m.current_pos = 0x1234;
  m.current_status = '*';
  m.current_pass = 1;
  const std::string text = ddrescue::format_mapfile(m.to_mapfile("m"), {"test"});
  ddrescue::Mapfile back = ddrescue::parse_mapfile(text, "m");
  CHECK(back.current_pos == 0x1234);
  CHECK(back.current_status == '*');
  CHECK(runs_of(ddrescue::RescueMap::from_mapfile(back, 10000)) == runs_of(m));
  // A mapfile of a bigger disk is refused; a shorter one leaves the rest non-tried.
  CHECK_THROWS_AS(ddrescue::RescueMap::from_mapfile(back, 5000), Error);
  CHECK(ddrescue::RescueMap::from_mapfile(back, 20000).bytes('?') == 10000);
}

TEST_CASE("acquire engine: bad sectors end as '-', everything else rescued", "[acquire]") {
  const uint64_t size = 4 * kMiB;
  const std::vector<uint8_t> content = pattern_bytes(size, 22);
  const std::set<uint64_t> bad = sample_bad_sectors();
  for (bool reverse : {false, true}) {
    INFO("reverse " << reverse);
    ScriptedDisk disk(content);
    disk.always = bad;
    MemorySink sink(size);
    ddrescue::RescueMap map(size);
    AcquireOptions o;
    o.reverse = reverse;
    int saves = 0;
    o.save = [&](const ddrescue::RescueMap&) { ++saves; };
    AcquireResult r = acquire(disk, sink, map, o);
    CHECK(r.end == AcquireEnd::kFinished);
    CHECK(runs_of(map) == expected_runs(size, bad));
    CHECK(sink.bytes == zeroed(content, bad));
    CHECK(map.current_status == '+');
    CHECK(r.status.bad == bad.size() * 512);
    CHECK(r.status.bad_areas == 5);
    // Pass boundaries save the map, and the sink is synced before each save.
    CHECK(saves >= 5);
    CHECK(sink.syncs >= saves);
    // Each bad sector is read at most twice: once in a large read while
    // copying, once alone while trimming or scraping (ddrescue's promise).
    CHECK(disk.failed <= 2 * bad.size());
  }
}

TEST_CASE("acquire engine: sectors that fail only at first are recovered by retries", "[acquire]") {
  const uint64_t size = 1 * kMiB;
  const std::vector<uint8_t> content = pattern_bytes(size, 5);
  ScriptedDisk disk(content);
  disk.flaky = {{10, 2}, {11, 2}, {1000, 1}, {1500, 3}};
  disk.always = {1800};
  MemorySink sink(size);
  ddrescue::RescueMap map(size);
  AcquireOptions o;
  SECTION("no retries: the sectors failing twice stay bad") {
    acquire(disk, sink, map, o);
    CHECK(runs_of(map) == expected_runs(size, {10, 11, 1500, 1800}));
  }
  SECTION("-r 2: all but the dead sector read") {
    o.retry_passes = 2;
    acquire(disk, sink, map, o);
    CHECK(runs_of(map) == expected_runs(size, {1800}));
    CHECK(sink.bytes == zeroed(content, {1800}));
  }
}

namespace {

// Runs acquire() with an AcquireStream read by copy_device (SHA-256) on
// another thread, as the command does. Returns whether the stream was
// complete and the hash its reader computed ("" when it failed).
struct StreamRun {
  bool complete = false;
  std::string hash;
  bool consumer_failed = false;
};
StreamRun acquire_streamed(const BlockDevice& disk, MemorySink& sink, ddrescue::RescueMap& map,
                           AcquireOptions o) {
  AcquireStream stream(disk.size(), 512, "stream", nullptr);
  o.stream = &stream;
  StreamRun out;
  CopyResult cr;
  std::thread consumer([&] {
    try {
      CopyOptions c;
      c.algos = {HashAlgo::kSha256};
      c.readers = 1;
      cr = copy_device(stream, nullptr, c);
    } catch (const Error&) {
      out.consumer_failed = true;
      stream.drop();
    }
  });
  acquire(disk, sink, map, o);
  stream.drop();
  consumer.join();
  out.complete = stream.complete();
  if (!out.consumer_failed) out.hash = cr.hashes.at(0).hex;
  return out;
}

// sha256sum's digest of `bytes` (the oracle).
std::string sha256_hex(const std::vector<uint8_t>& bytes) {
  TempDir dir;
  write_file(dir / "b", bytes);
  return coreutils_digest("sha256sum", dir / "b");
}

}  // namespace

TEST_CASE("acquire engine: pass 1 of a healthy disk is streamed whole, in order", "[acquire]") {
  const uint64_t size = 3 * kMiB + 512;  // not a multiple of the cluster
  const std::vector<uint8_t> content = pattern_bytes(size, 31);
  ScriptedDisk disk(content);
  MemorySink sink(size);
  ddrescue::RescueMap map(size);
  int saves = 0;
  AcquireOptions o;
  o.save = [&](const ddrescue::RescueMap&) { ++saves; };
  StreamRun r = acquire_streamed(disk, sink, map, o);
  CHECK(r.complete);
  CHECK_FALSE(r.consumer_failed);
  CHECK(r.hash == sha256_hex(content));
  // The rescue sink and the map are kept as without the stream: a kill at
  // any moment resumes from them.
  CHECK(sink.bytes == content);
  CHECK(map.bytes('+') == size);
  CHECK(saves >= 1);
  // One read per cluster: nothing read twice.
  CHECK(disk.reads == (size + 64 * kKiB - 1) / (64 * kKiB));
}

TEST_CASE("acquire engine: the stream is dropped at the first failure, the passes go on",
          "[acquire]") {
  const uint64_t size = 2 * kMiB;
  const std::vector<uint8_t> content = pattern_bytes(size, 32);
  ScriptedDisk disk(content);
  MemorySink sink(size);
  ddrescue::RescueMap map(size);
  AcquireOptions o;
  SECTION("a sector that fails once, recovered by trimming") {
    disk.flaky = {{3000, 1}};
    StreamRun r = acquire_streamed(disk, sink, map, o);
    CHECK_FALSE(r.complete);
    CHECK(r.consumer_failed);
    CHECK(map.bytes('+') == size);
    CHECK(sink.bytes == content);
  }
  SECTION("a run resumed from a map with a finished area never streams") {
    map.set(0, 64 * kKiB, '+');
    map.current_status = '?';
    map.current_pass = 1;
    std::copy(content.begin(), content.begin() + 64 * kKiB, sink.bytes.begin());
    StreamRun r = acquire_streamed(disk, sink, map, o);
    CHECK_FALSE(r.complete);
    CHECK(r.consumer_failed);
    CHECK(sink.bytes == content);
  }
  SECTION("reverse passes never stream") {
    o.reverse = true;
    StreamRun r = acquire_streamed(disk, sink, map, o);
    CHECK_FALSE(r.complete);
    CHECK(sink.bytes == content);
  }
}

TEST_CASE("acquire engine: interrupted at any read, resumed from the saved mapfile", "[acquire]") {
  const uint64_t size = 4 * kMiB;
  const std::vector<uint8_t> content = pattern_bytes(size, 9);
  const std::set<uint64_t> bad = sample_bad_sectors();
  uint64_t full_reads = 0;
  {
    ScriptedDisk disk(content);
    disk.always = bad;
    MemorySink sink(size);
    ddrescue::RescueMap map(size);
    acquire(disk, sink, map, AcquireOptions{});
    full_reads = disk.reads;
  }
  std::mt19937 rng(22);
  for (int round = 0; round < 12; ++round) {
    const uint64_t stop_at = 1 + rng() % 900;
    INFO("interrupted at read " << stop_at);
    std::atomic<bool> cancel{false};
    ScriptedDisk disk(content);
    disk.always = bad;
    disk.cancel = &cancel;
    disk.cancel_after = stop_at;
    MemorySink sink(size);
    std::string saved;
    AcquireOptions o;
    o.cancel = &cancel;
    o.save = [&](const ddrescue::RescueMap& m) {
      saved = ddrescue::format_mapfile(m.to_mapfile("m"), {});
    };
    ddrescue::RescueMap map(size);
    AcquireResult r = acquire(disk, sink, map, o);
    if (r.end != AcquireEnd::kInterrupted) {
      CHECK(runs_of(map) == expected_runs(size, bad));  // finished before the stop
      continue;
    }
    // The saved text is all a new run has (as after a kill).
    ddrescue::RescueMap resumed =
        ddrescue::RescueMap::from_mapfile(ddrescue::parse_mapfile(saved, "m"), size);
    CHECK(resumed.bytes('+') == map.bytes('+'));
    cancel = false;
    disk.cancel = nullptr;
    AcquireResult r2 = acquire(disk, sink, resumed, o);
    CHECK(r2.end == AcquireEnd::kFinished);
    CHECK(runs_of(resumed) == expected_runs(size, bad));
    CHECK(sink.bytes == zeroed(content, bad));
    // Finished areas were not read again: the two runs together read about
    // what one run reads (the resumed run starts with a fresh skip size, so a
    // few clusters may be read in another order).
    CHECK(disk.reads <= full_reads + 16);
  }
}

TEST_CASE("acquire engine: --timeout gives up without a successful read", "[acquire]") {
  const uint64_t size = 1 * kMiB;
  ScriptedDisk disk(pattern_bytes(size, 1));
  for (uint64_t s = 0; s < size / 512; ++s) disk.always.insert(s);  // dead disk
  MemorySink sink(size);
  ddrescue::RescueMap map(size);
  double clock = 0;
  AcquireOptions o;
  o.now = [&] { return clock += 0.5; };  // every read takes half a second
  o.timeout = 30;
  AcquireResult r = acquire(disk, sink, map, o);
  CHECK(r.end == AcquireEnd::kTimedOut);
  CHECK(disk.reads < 80);
  CHECK(map.bytes('+') == 0);
}

TEST_CASE("acquire engine: a slow area is skipped in the first passes and read later",
          "[acquire]") {
  const uint64_t size = 2 * kMiB;
  const std::vector<uint8_t> content = pattern_bytes(size, 3);
  ScriptedDisk disk(content);
  MemorySink sink(size);
  ddrescue::RescueMap map(size);
  double clock = 0;
  AcquireOptions o;
  // Reads below 1 MiB take 1 s (64 KiB/s), the rest are instant.
  o.now = [&] { return clock; };
  o.min_read_rate = 1 << 20;
  std::vector<uint64_t> order;
  struct SlowDisk final : BlockDevice {
    const BlockDevice& base;
    double& clock;
    std::vector<uint64_t>& order;
    SlowDisk(const BlockDevice& b, double& c, std::vector<uint64_t>& o)
        : base(b), clock(c), order(o) {}
    uint64_t size() const override { return base.size(); }
    ImageInfo info() const override { return base.info(); }
    void do_read(uint64_t off, void* buf, size_t len) const override {
      order.push_back(off);
      if (off < 1 * kMiB) clock += 1;
      base.read(off, buf, len);
    }
    Extent do_block_status(uint64_t, uint64_t len) const override {
      return Extent{len, ExtentType::kData, 0};
    }
  } slow(disk, clock, order);
  acquire(slow, sink, map, o);
  CHECK(map.bytes('+') == size);
  CHECK(sink.bytes == content);
  // Pass 1 left the slow first MiB after its first read and went on.
  REQUIRE(order.size() > 2);
  CHECK(order[0] == 0);
  CHECK(order[1] >= 64 * kKiB + 64 * kKiB);
}

// ----------------------------------------------------------------------------
// The command, against GNU ddrescue.

namespace {

// A ddrescue mapfile with `bad` as '-' areas, '+' elsewhere (for the mount).
std::string bad_map_text(uint64_t size, const std::vector<std::pair<uint64_t, uint64_t>>& bad) {
  ddrescue::RescueMap m(size);
  m.set(0, size, '+');
  for (auto [s, e] : bad) m.set(s, e - s, '-');
  m.current_status = '+';
  return ddrescue::format_mapfile(m.to_mapfile("bad.map"), {});
}

// The bad areas a faulty source serves: 4 KiB aligned (the page cache of the
// FUSE file reads whole pages), one lone page, a 192 KiB stretch, the last
// page.
std::vector<std::pair<uint64_t, uint64_t>> fuse_bad(uint64_t size) {
  return {{1 * kMiB + 8 * kKiB, 1 * kMiB + 12 * kKiB},
          {3 * kMiB, 3 * kMiB + 192 * kKiB},
          {size - 4 * kKiB, size}};
}

// The '-' and '+' blocks of a mapfile as ddrescuelog lists them (sector
// numbers), an oracle reading of our mapfiles.
std::string ddrescuelog_list(const std::string& map, const char* types) {
  return run_ok("ddrescuelog -l" + std::string(types) + " " + sh_quote(map));
}

// GNU ddrescue (with `options`) from `disk` into `img` and `map`. It leaves
// its outfile short when the disk's tail was not rescued (the manual:
// unrescued areas read as zeros); extended to the disk's size it reads the
// same.
void ddrescue_run(const std::string& disk, const std::string& img, const std::string& map,
                  uint64_t size, const std::string& options = "") {
  run("ddrescue -q " + options + " " + sh_quote(disk) + " " + sh_quote(img) + " " + sh_quote(map));
  run_ok("truncate -s " + std::to_string(size) + " " + sh_quote(img));
}

// vdisk's rescue (`img`, `map`) is GNU ddrescue's (`ref_img`, `ref_map`):
// the same bytes (cmp) and the same map (ddrescuelog -p).
void check_same_rescue(const std::string& ref_img, const std::string& ref_map,
                       const std::string& img, const std::string& map) {
  run_ok("cmp " + sh_quote(ref_img) + " " + sh_quote(img));
  CHECK(run("ddrescuelog -p " + sh_quote(ref_map) + " " + sh_quote(map)).exit_code == 0);
}

struct FaultySource {
  TempDir dir;
  std::string img, map, mp, disk;
  std::vector<uint8_t> content;
  std::unique_ptr<MountGuard> guard;
};

// Mounts a faulty copy of random content; false (SKIPPED printed) without FUSE.
bool mount_faulty(FaultySource& f, uint64_t size) {
  f.img = f.dir / "img.raw";
  f.map = f.dir / "bad.map";
  f.mp = f.dir / "mnt";
  f.content = pattern_bytes(size, 77);
  write_file(f.img, f.content);
  const std::string m = bad_map_text(size, fuse_bad(size));
  write_file(f.map, std::vector<uint8_t>(m.begin(), m.end()));
  std::filesystem::create_directory(f.mp);
  f.guard = std::make_unique<MountGuard>(f.mp);
  RunResult mr = run_vdisk("mount --mode block --mapfile " + sh_quote(f.map) + " --bad-areas eio " +
                           sh_quote(f.img) + " " + sh_quote(f.mp));
  INFO(mr.err);
  REQUIRE(mr.exit_code == 0);
  f.disk = f.mp + "/disk.raw";
  return true;
}

}  // namespace

TEST_CASE("acquire a healthy file: raw equals the source, ddrescuelog says done, report hashes",
          "[acquire][cli]") {
  require_tool("ddrescuelog");
  TempDir dir;
  const std::string src = dir / "src.raw", dst = dir / "dst.raw", map = dir / "m.map",
                    rep = dir / "r.json";
  write_file(src, pattern_bytes(3 * kMiB + 512, 4));
  RunResult r = run_vdisk("acquire --hash md5,sha256 --hash-file " + sh_quote(rep) + " --mapfile " +
                          sh_quote(map) + " " + sh_quote(src) + " " + sh_quote(dst));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  run_ok("cmp " + sh_quote(src) + " " + sh_quote(dst));
  CHECK(run("ddrescuelog -D " + sh_quote(map)).exit_code == 0);
  Json j = Json::parse(std::string(run_ok("cat " + sh_quote(rep))));
  CHECK(j.find("command")->as_string() == "acquire");
  CHECK(j.find("hashes")->find("sha256")->as_string() == coreutils_digest("sha256sum", src));
  CHECK(j.find("hashes")->find("md5")->as_string() == coreutils_digest("md5sum", src));
  CHECK(parse_tagged_digest(r.out, "MD5") == coreutils_digest("md5sum", src));
  // A second run resumes a finished map: nothing to read, same result.
  RunResult again = run_vdisk("acquire --hash none --mapfile " + sh_quote(map) + " " +
                              sh_quote(src) + " " + sh_quote(dst));
  INFO(again.err);
  CHECK(again.exit_code == 0);
  CHECK_THAT(again.err, Catch::Contains("resuming"));
  // A rescue file without its mapfile is refused, not overwritten.
  RunResult orphan = run_vdisk("acquire --mapfile " + sh_quote(dir / "other.map") + " " +
                               sh_quote(src) + " " + sh_quote(dst));
  CHECK(orphan.exit_code == 2);
  CHECK_THAT(orphan.err, Catch::Contains("does not"));
}

TEST_CASE("acquire vs GNU ddrescue on a faulty FUSE source: same bytes, same map",
          "[acquire][cli][mount]") {
  VDISK_REQUIRE_FUSE_OR_SKIP();
  require_tool("ddrescue");
  require_tool("ddrescuelog");
  const uint64_t size = 6 * kMiB;
  FaultySource f;
  mount_faulty(f, size);
  const std::string dd_img = f.dir / "dd.img", dd_map = f.dir / "dd.map";
  const std::string vd_img = f.dir / "vd.img", vd_map = f.dir / "vd.map";
  ddrescue_run(f.disk, dd_img, dd_map, size);
  RunResult r = run_vdisk("acquire --hash sha256 --mapfile " + sh_quote(vd_map) + " " +
                          sh_quote(f.disk) + " " + sh_quote(vd_img));
  INFO(r.err);
  CHECK(r.exit_code == 3);
  check_same_rescue(dd_img, dd_map, vd_img, vd_map);
  CHECK(ddrescuelog_list(vd_map, "-") == ddrescuelog_list(dd_map, "-"));
  CHECK(ddrescuelog_list(vd_map, "?*/") == "");
  // The bad sectors are exactly the served bad areas (512-byte sectors).
  std::string expect;
  for (auto [s, e] : fuse_bad(size))
    for (uint64_t x = s / 512; x < e / 512; ++x) expect += std::to_string(x) + "\n";
  CHECK(ddrescuelog_list(vd_map, "-") == expect);
  // The zero-filled media hash is the rescued file's.
  CHECK(parse_tagged_digest(r.out, "SHA256") != "");
  CHECK_THAT(r.out, Catch::Contains(coreutils_digest("sha256sum", vd_img)));
}

TEST_CASE("acquire and GNU ddrescue continue each other's runs", "[acquire][cli][mount]") {
  VDISK_REQUIRE_FUSE_OR_SKIP();
  require_tool("ddrescue");
  require_tool("ddrescuelog");
  const uint64_t size = 6 * kMiB;
  FaultySource f;
  mount_faulty(f, size);
  const std::string ref_img = f.dir / "ref.img", ref_map = f.dir / "ref.map";
  ddrescue_run(f.disk, ref_img, ref_map, size);

  SECTION("ddrescue starts (copying pass 1 only), vdisk finishes") {
    const std::string img = f.dir / "a.img", map = f.dir / "a.map";
    run("ddrescue -q --cpass=1 -N -n " + sh_quote(f.disk) + " " + sh_quote(img) + " " +
        sh_quote(map));
    REQUIRE(ddrescuelog_list(map, "*") != "");  // unfinished work left
    RunResult r = run_vdisk("acquire --hash none --mapfile " + sh_quote(map) + " " +
                            sh_quote(f.disk) + " " + sh_quote(img));
    INFO(r.err);
    CHECK(r.exit_code == 3);
    check_same_rescue(ref_img, ref_map, img, map);
  }
  SECTION("vdisk starts (copying pass 1 only), ddrescue finishes") {
    const std::string img = f.dir / "b.img", map = f.dir / "b.map";
    RunResult r = run_vdisk("acquire --hash none --cpass 1 -N -n --mapfile " + sh_quote(map) + " " +
                            sh_quote(f.disk) + " " + sh_quote(img));
    INFO(r.err);
    CHECK(r.exit_code == 3);
    REQUIRE(ddrescuelog_list(map, "*?") != "");
    ddrescue_run(f.disk, img, map, size);
    check_same_rescue(ref_img, ref_map, img, map);
  }
}

TEST_CASE("acquire killed with SIGKILL at random points resumes to ddrescue's result",
          "[acquire][cli][mount]") {
  VDISK_REQUIRE_FUSE_OR_SKIP();
  require_tool("ddrescue");
  require_tool("ddrescuelog");
  const uint64_t size = 6 * kMiB;
  FaultySource f;
  mount_faulty(f, size);
  const std::string ref_img = f.dir / "ref.img", ref_map = f.dir / "ref.map";
  ddrescue_run(f.disk, ref_img, ref_map, size);
  std::mt19937 rng(2022);
  for (int round = 0; round < 3; ++round) {
    const std::string img = f.dir / ("k" + std::to_string(round) + ".img");
    const std::string map = f.dir / ("k" + std::to_string(round) + ".map");
    const std::string cmd = "acquire --hash none --mapfile-interval 0 --mapfile " + sh_quote(map) +
                            " " + sh_quote(f.disk) + " " + sh_quote(img);
    int kills = 0;
    for (int attempt = 0; attempt < 4; ++attempt) {
      const pid_t pid = fork();
      REQUIRE(pid >= 0);
      if (pid == 0) {
        const std::string line = std::string(VDISK_BIN) + " " + cmd + " >/dev/null 2>&1";
        execl("/bin/sh", "sh", "-c", ("exec " + line).c_str(), (char*)nullptr);
        _exit(127);
      }
      usleep(static_cast<useconds_t>(20000 + rng() % 200000));
      ::kill(pid, SIGKILL);
      int st = 0;
      waitpid(pid, &st, 0);
      if (WIFSIGNALED(st)) ++kills;
      if (WIFEXITED(st)) break;  // it finished before the kill
    }
    INFO("round " << round << ", killed " << kills << " times");
    RunResult r = run_vdisk(cmd);
    INFO(r.err);
    CHECK(r.exit_code == 3);
    check_same_rescue(ref_img, ref_map, img, map);
  }
}

TEST_CASE("acquire -O e01: ewfverify passes, error2 lists the bad sectors",
          "[acquire][cli][mount][e01]") {
  VDISK_REQUIRE_FUSE_OR_SKIP();
  require_tool("ewfverify");
  require_tool("ewfinfo");
  const uint64_t size = 6 * kMiB;
  FaultySource f;
  mount_faulty(f, size);
  const std::string out = f.dir / "case.E01", map = f.dir / "e.map", rep = f.dir / "e.json";
  RunResult r =
      run_vdisk("acquire -O e01 --hash md5,sha1 --hash-file " + sh_quote(rep) + " --mapfile " +
                sh_quote(map) + " " + sh_quote(f.disk) + " " + sh_quote(out));
  INFO(r.err);
  CHECK(r.exit_code == 3);
  CHECK_THAT(r.err, Catch::Contains(out + ".vdisk-work"));
  RunResult v = run("ewfverify -q " + sh_quote(out));
  INFO(v.out << v.err);
  CHECK(v.exit_code == 0);
  RunResult info = run("ewfinfo " + sh_quote(out));
  INFO(info.out);
  // ewfinfo lists acquiry read errors as "at sector(s): FIRST - LAST number: N".
  REQUIRE_THAT(info.out, Catch::Contains("Read errors during acquiry"));
  for (auto [s, e] : fuse_bad(size)) {
    CHECK_THAT(info.out, Catch::Contains("at sector(s): " + std::to_string(s / 512) + " - " +
                                         std::to_string(e / 512 - 1) +
                                         " number: " + std::to_string((e - s) / 512)));
  }
  // The report's media hashes: md5 and sha1 of the source with zeros in the
  // bad areas, as md5sum computes it over the rescued bytes.
  std::vector<uint8_t> zf = f.content;
  for (auto [s, e] : fuse_bad(size)) std::fill(zf.begin() + s, zf.begin() + e, 0);
  write_file(f.dir / "zf.raw", zf);
  Json j = Json::parse(std::string(run_ok("cat " + sh_quote(rep))));
  CHECK(j.find("hashes_zero_filled")->find("md5")->as_string() ==
        coreutils_digest("md5sum", f.dir / "zf.raw"));
  CHECK(j.find("mapfile") != nullptr);
  // The working raw is kept (unrescued areas remain) beside the mapfile.
  CHECK(file_exists(out + ".vdisk-work"));
}

// ----------------------------------------------------------------------------
// Flaky and slow sources: tests/tools/faulty_fuse.cpp serves disk.raw with
// ranges that fail only their first N reads (per sector) or read slowly.

namespace {

struct FlakySource {
  TempDir dir;
  std::string img, mp, disk;
  std::vector<uint8_t> content;
  std::unique_ptr<MountGuard> guard;
};

// Mounts `content` (written once to img.raw) with `faults`
// ("START:END:FAILS[:DELAY_MS]") at a new mount point named `name`.
void mount_flaky(FlakySource& f, const std::string& name, const std::vector<std::string>& faults) {
  if (f.img.empty()) {
    f.img = f.dir / "img.raw";
    write_file(f.img, f.content);
  }
  f.guard.reset();
  f.mp = f.dir / name;
  std::filesystem::create_directory(f.mp);
  f.guard = std::make_unique<MountGuard>(f.mp);
  // Built beside vdisk (tests/CMakeLists.txt).
  std::string cmd = sh_quote(path_dirname(VDISK_BIN) + "/vdisk_faulty_fuse") + " mount " +
                    sh_quote(f.img) + " " + sh_quote(f.mp);
  for (const std::string& x : faults) cmd += " " + x;
  RunResult mr = run(cmd);
  INFO(mr.err);
  REQUIRE(mr.exit_code == 0);
  REQUIRE(wait_mounted(f.mp, true, 10));
  f.disk = f.mp + "/disk.raw";
}

std::string range_arg(uint64_t start, uint64_t end, int fails, int delay_ms = 0) {
  return std::to_string(start) + ":" + std::to_string(end) + ":" + std::to_string(fails) +
         (delay_ms ? ":" + std::to_string(delay_ms) : "");
}

// Flaky stretches (2 failures each: the copying read and one more), one
// that fails 3 times, a dead sector, and a slow area.
std::vector<std::string> flaky_faults() {
  return {range_arg(100 * 512, 104 * 512, 2), range_arg(1 * kMiB, 1 * kMiB + 64 * kKiB, 2),
          range_arg(2 * kMiB + 512, 2 * kMiB + 1024, 3), range_arg(3 * kMiB, 3 * kMiB + 512, -1),
          range_arg(4 * kMiB, 4 * kMiB + 256 * kKiB, 0, 2)};
}

}  // namespace

TEST_CASE("acquire vs GNU ddrescue on a flaky FUSE source: retries and trimming recover it",
          "[acquire][cli][mount]") {
  VDISK_REQUIRE_FUSE_OR_SKIP();
  require_tool("ddrescue");
  require_tool("ddrescuelog");
  const uint64_t size = 5 * kMiB;
  FlakySource f;
  f.content = pattern_bytes(size, 91);
  const std::string dd_img = f.dir / "dd.img", dd_map = f.dir / "dd.map";
  const std::string vd_img = f.dir / "vd.img", vd_map = f.dir / "vd.map";
  // Each run on a fresh mount: the failure counters start over.
  mount_flaky(f, "m1", flaky_faults());
  ddrescue_run(f.disk, dd_img, dd_map, size, "-r 3");
  mount_flaky(f, "m2", flaky_faults());
  RunResult r = run_vdisk("acquire -r 3 --hash sha256 --mapfile " + sh_quote(vd_map) + " " +
                          sh_quote(f.disk) + " " + sh_quote(vd_img));
  INFO(r.err);
  CHECK(r.exit_code == 3);
  // Only the dead sector stays bad, in both; everything else is the source.
  const std::string dead = std::to_string(3 * kMiB / 512) + "\n";
  CHECK(ddrescuelog_list(vd_map, "-") == dead);
  CHECK(ddrescuelog_list(dd_map, "-") == dead);
  CHECK(ddrescuelog_list(vd_map, "?*/") == "");
  check_same_rescue(dd_img, dd_map, vd_img, vd_map);
  std::vector<uint8_t> expect = f.content;
  std::fill(expect.begin() + 3 * kMiB, expect.begin() + 3 * kMiB + 512, 0);
  CHECK(read_file(vd_img) == expect);

  SECTION("-O e01: the stream is dropped at the first error, the working raw converted") {
    require_tool("ewfverify");
    mount_flaky(f, "m3", flaky_faults());
    const std::string out = f.dir / "case.E01", map = f.dir / "e.map", rep = f.dir / "e.json";
    RunResult e =
        run_vdisk("acquire -O e01 -r 3 --hash md5 --hash-file " + sh_quote(rep) + " --mapfile " +
                  sh_quote(map) + " " + sh_quote(f.disk) + " " + sh_quote(out));
    INFO(e.err);
    CHECK(e.exit_code == 3);
    CHECK_THAT(e.out, Catch::Contains("converted"));
    RunResult v = run("ewfverify -q " + sh_quote(out));
    INFO(v.out << v.err);
    CHECK(v.exit_code == 0);
    write_file(f.dir / "expect.raw", expect);
    Json j = Json::parse(std::string(run_ok("cat " + sh_quote(rep))));
    CHECK(j.find("hashes_zero_filled")->find("md5")->as_string() ==
          coreutils_digest("md5sum", f.dir / "expect.raw"));
  }
  SECTION("fewer retries than failures: the sector failing 3 times stays bad in both") {
    mount_flaky(f, "m4", flaky_faults());
    const std::string img1 = f.dir / "dd1.img", map1 = f.dir / "dd1.map";
    ddrescue_run(f.disk, img1, map1, size, "-r 1");
    mount_flaky(f, "m5", flaky_faults());
    const std::string img2 = f.dir / "vd1.img", map2 = f.dir / "vd1.map";
    RunResult r1 = run_vdisk("acquire -r 1 --hash none --mapfile " + sh_quote(map2) + " " +
                             sh_quote(f.disk) + " " + sh_quote(img2));
    INFO(r1.err);
    CHECK(r1.exit_code == 3);
    CHECK(ddrescuelog_list(map2, "-") == ddrescuelog_list(map1, "-"));
    CHECK(ddrescuelog_list(map2, "-") != dead);
    run_ok("cmp " + sh_quote(img1) + " " + sh_quote(img2));
  }
}

TEST_CASE("acquire -O e01 of a healthy source: one pass, ewfverify and md5sum agree",
          "[acquire][cli][e01]") {
  require_tool("ewfverify");
  TempDir dir;
  const std::string src = dir / "src.raw", out = dir / "h.E01", map = dir / "h.map";
  std::vector<uint8_t> content = pattern_bytes(5 * kMiB + 4096, 12);
  std::fill(content.begin() + kMiB, content.begin() + 2 * kMiB, 0);  // a zero stretch
  write_file(src, content);
  RunResult r = run_vdisk("acquire -O e01 --hash md5,sha1 --mapfile " + sh_quote(map) + " " +
                          sh_quote(src) + " " + sh_quote(out));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  // Written from pass 1's reads; the working raw is gone.
  CHECK_THAT(r.out, Catch::Contains("streamed"));
  CHECK_FALSE(file_exists(out + ".vdisk-work"));
  CHECK(parse_tagged_digest(r.out, "MD5") == coreutils_digest("md5sum", src));
  CHECK(parse_tagged_digest(r.out, "SHA1") == coreutils_digest("sha1sum", src));
  RunResult v = run("ewfverify -q -d sha1 " + sh_quote(out));
  INFO(v.out << v.err);
  CHECK(v.exit_code == 0);
  run_ok("ddrescuelog -D " + sh_quote(map));
  // The E01 holds the source (read back by vdisk and compared by cmp).
  run_ok(std::string(VDISK_BIN) + " convert --hash none -O raw " + sh_quote(out) + " " +
         sh_quote(dir / "back.raw"));
  run_ok("cmp " + sh_quote(src) + " " + sh_quote(dir / "back.raw"));
}

TEST_CASE("acquire interrupted by SIGINT saves its mapfile, exits 130 and resumes",
          "[acquire][cli][mount]") {
  VDISK_REQUIRE_FUSE_OR_SKIP();
  require_tool("ddrescuelog");
  require_tool("ewfverify");
  const uint64_t size = 4 * kMiB;
  FlakySource f;
  f.content = pattern_bytes(size, 57);
  // Slow everywhere: 64 reads of 64 KiB at 30 ms, about 2 s in all.
  mount_flaky(f, "m", {range_arg(0, size, 0, 30)});
  for (const std::string fmt : {"raw", "e01"}) {
    INFO("-O " << fmt);
    const std::string out = f.dir / ("i." + fmt), map = f.dir / ("i-" + fmt + ".map");
    const std::string cmd = std::string(VDISK_BIN) + " acquire -O " + fmt +
                            " --hash md5 --mapfile " + sh_quote(map) + " " + sh_quote(f.disk) +
                            " " + sh_quote(out);
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      execl("/bin/sh", "sh", "-c", ("exec " + cmd + " >/dev/null 2>&1").c_str(), (char*)nullptr);
      _exit(127);
    }
    // Signalled once the rescue file holds data: past start-up (the handler
    // is installed) and well before the end (about 2 s of slow reads).
    const std::string rescue = fmt == "raw" ? out : out + ".vdisk-work";
    for (int i = 0; i < 2000; ++i) {
      struct stat st;
      if (::stat(rescue.c_str(), &st) == 0 && st.st_blocks > 0) break;
      usleep(10000);
    }
    ::kill(pid, SIGINT);
    int st = 0;
    waitpid(pid, &st, 0);
    REQUIRE(WIFEXITED(st));
    CHECK(WEXITSTATUS(st) == 130);
    // The map parses and holds what was read before the signal (the first
    // save after the start is the interrupt's: --mapfile-interval is 30 s).
    CHECK(run("ddrescuelog -t " + sh_quote(map)).exit_code == 0);
    const std::string done = ddrescuelog_list(map, "+");
    CHECK(done != "");
    CHECK(ddrescuelog_list(map, "?") != "");
    if (fmt == "e01") CHECK_FALSE(file_exists(out));
    RunResult r = run(cmd);
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.err, Catch::Contains("resuming"));
    CHECK(parse_tagged_digest(r.out, "MD5") == coreutils_digest("md5sum", f.img));
    CHECK(run("ddrescuelog -D " + sh_quote(map)).exit_code == 0);
    if (fmt == "raw") {
      run_ok("cmp " + sh_quote(f.img) + " " + sh_quote(out));
    } else {
      RunResult v = run("ewfverify -q " + sh_quote(out));
      INFO(v.out << v.err);
      CHECK(v.exit_code == 0);
    }
  }
}

TEST_CASE("acquire -O qcow2 / vhdx / vmdk of a healthy source: streamed, qemu-img compare agrees",
          "[acquire][cli]") {
  require_tool("qemu-img");
  TempDir dir;
  const std::string src = dir / "src.raw";
  std::vector<uint8_t> content = pattern_bytes(3 * kMiB, 14);
  std::fill(content.begin() + kMiB, content.begin() + 2 * kMiB, 0);
  write_file(src, content);
  for (const std::string fmt : {"qcow2", "vhdx", "vmdk"}) {
    INFO("-O " << fmt);
    const std::string out = dir / ("o." + fmt), map = dir / (fmt + ".map");
    RunResult r = run_vdisk("acquire -O " + fmt + " --hash sha256 --mapfile " + sh_quote(map) +
                            " " + sh_quote(src) + " " + sh_quote(out));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("streamed"));
    CHECK_FALSE(file_exists(out + ".vdisk-work"));
    CHECK(parse_tagged_digest(r.out, "SHA256") == coreutils_digest("sha256sum", src));
    run_ok("qemu-img compare -f raw -F " + fmt + " " + sh_quote(src) + " " + sh_quote(out));
  }
}
