// ISO 9660 images crafted to exhaust memory or time (issue #16 items 10-11)
// and plain ISO 9660 names (issue #17 item 7). The crafted images come from
// tests/support/iso_craft (record by record, per ECMA-119 and SUSP); plain
// images from genisoimage, judged by xorriso's -ecma119_map lowercase (the
// names Linux's isofs shows by default).
#include <catch2/catch.hpp>
#include <chrono>
#include <regex>

#include "tests/support/iso_craft.h"
#include "tests/support/memory_bound.h"
#include "tests/support/mount_support.h"
#include "tests/support/test_support.h"

using namespace vdisk::test;

namespace {

// Peak resident memory (KiB) of `vdisk ARGS`, measured by GNU time.
struct Measured {
  RunResult r;
  uint64_t peak_kib = 0;
  double seconds = 0;
};

Measured measure_vdisk(const std::string& args, const std::string& dir) {
  require_tool("/usr/bin/time");
  std::string tf = dir + "/time.txt";
  auto t0 = std::chrono::steady_clock::now();
  Measured m;
  m.r = run("/usr/bin/time -f %M -o " + sh_quote(tf) + " " + std::string(VDISK_BIN) + " " + args);
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string t = run_ok("tail -n 1 " + sh_quote(tf));
  m.peak_kib = std::stoull(t);
  return m;
}

size_t lines(const std::string& s) {
  return static_cast<size_t>(std::count(s.begin(), s.end(), '\n'));
}

}  // namespace

TEST_CASE("a Rock Ridge name bomb costs neither memory nor time", "[iso][hostile]") {
  TempDir dir;
  // 28 000 entries whose NM continues through 64 CE areas of 64 KiB: each
  // name would be 4 MiB (what drove `vdisk ls` to 3.9 GB). And a chain of
  // small areas, which the reader must stop following once a name passes
  // 255 bytes.
  struct Layout {
    uint32_t areas, area_bytes;
    const char* why;
  };
  for (const Layout& lay :
       {Layout{64, 65536, "more than 32768 bytes"}, Layout{64, 2048, "255 bytes"}}) {
    const uint32_t areas = lay.areas, area_bytes = lay.area_bytes;
    INFO(areas << " areas of " << area_bytes);
    std::string iso = dir / "bomb.iso";
    write_file(iso, isocraft::name_bomb(28000, areas, area_bytes));
    Measured m = measure_vdisk("ls " + sh_quote(iso), dir.path());
    INFO(m.r.err.substr(0, 2000));
    CHECK(m.r.exit_code == 3);  // finished, entries left out
    CHECK(m.r.out == "ok.txt\n");
    CHECK_THAT(m.r.err, Catch::Contains("28000 entries skipped"));
    CHECK_THAT(m.r.err, Catch::Contains(lay.why));
    CHECK(lines(m.r.err) < 30);  // the first few, not 28 000 lines
    CHECK(m.peak_kib < rss_bound_kib(200 * 1024));
    run("rm -f " + sh_quote(iso));
  }
}

TEST_CASE("a directory DAG is walked once, and extract stops at shared data", "[iso][hostile]") {
  TempDir dir;
  std::string iso = dir / "dag.iso";
  write_file(iso, isocraft::dag(24));  // 2^24 paths to one file
  Measured ls = measure_vdisk("ls -R " + sh_quote(iso), dir.path());
  INFO(ls.r.err.substr(0, 2000));
  CHECK(ls.r.exit_code == 3);
  CHECK(lines(ls.r.out) == 25);  // A, A/A, ... 24 directories and the file
  CHECK_THAT(ls.r.out, Catch::Contains("/leaf.txt"));
  CHECK_THAT(ls.r.err, Catch::Contains("another record already names"));
  CHECK(ls.seconds < 30);

  RunResult x = run_vdisk("extract " + sh_quote(iso) + " -C " + sh_quote(dir / "out"));
  CHECK(x.exit_code == 3);
  CHECK(run_ok("find " + sh_quote(dir / "out") + " -type f | wc -l") == "1\n");

  // Files sharing one extent: 200 files x 1 MiB from a 1.2 MiB image.
  std::string ov = dir / "overlap.iso";
  write_file(ov, isocraft::overlap(200, 1 << 20));
  RunResult o = run_vdisk("extract -q " + sh_quote(ov) + " -C " + sh_quote(dir / "o1"));
  CHECK(o.exit_code == 2);
  CHECK_THAT(o.err, Catch::Contains("--allow-overlap"));
  uint64_t written = std::stoull(run_ok("du -sk " + sh_quote(dir / "o1") + " | cut -f1"));
  CHECK(written < 100 * 1024);  // stopped at 16 x 1.2 MiB + 64 MiB
  run_ok("rm -rf " + sh_quote(dir / "o1"));
  // Asked for, it is written in full (what xorriso extracts too).
  write_file(ov, isocraft::overlap(20, 1 << 20));
  CHECK(run_vdisk("extract -q --allow-overlap " + sh_quote(ov) + " -C " + sh_quote(dir / "o2"))
            .exit_code == 0);
  CHECK(run_ok("find " + sh_quote(dir / "o2") + " -type f -size 1048576c | wc -l") == "20\n");
}

TEST_CASE("a mounted directory DAG ends find quickly", "[iso][hostile][mount]") {
  VDISK_REQUIRE_FUSE_OR_SKIP();
  TempDir dir;
  std::string iso = dir / "dag.iso";
  write_file(iso, isocraft::dag(24));
  run_ok("mkdir " + sh_quote(dir / "mnt"));
  MountGuard guard(dir / "mnt");
  RunResult m = run_vdisk("mount " + sh_quote(iso) + " " + sh_quote(dir / "mnt"));
  INFO(m.err);
  REQUIRE(m.exit_code == 0);
  RunResult f = run("timeout 60 find " + sh_quote(dir / "mnt") + " | wc -l");
  CHECK(f.out == "26\n");  // the mount point, 24 directories, the file
  run_vdisk("unmount " + sh_quote(dir / "mnt"));

  // The name bomb through the mount: the daemon's peak memory stays small
  // (it was 3.7 GB, kept after the listing).
  std::string bomb = dir / "bomb.iso";
  write_file(bomb, isocraft::name_bomb(28000, 64, 2048));
  m = run_vdisk("mount " + sh_quote(bomb) + " " + sh_quote(dir / "mnt"));
  INFO(m.err);
  REQUIRE(m.exit_code == 0);
  CHECK(run("ls " + sh_quote(dir / "mnt")).out == "ok.txt\n");
  std::vector<pid_t> pids = mount_daemons(dir / "mnt");
  REQUIRE(pids.size() == 1);
  std::string hwm = run_ok("grep VmHWM /proc/" + std::to_string(pids[0]) + "/status | tr -dc 0-9");
  CHECK(std::stoull(hwm) < rss_bound_kib(200 * 1024));  // KiB
}

TEST_CASE("plain ISO 9660 names: shown and matched as Linux does", "[iso]") {
  require_tool("genisoimage");
  require_tool("xorriso");
  TempDir dir;
  run_ok("mkdir -p " + sh_quote(dir / "t/docs") + " && echo hello > " +
         sh_quote(dir / "t/docs/f1.txt") + " && echo n > " + sh_quote(dir / "t/noext") +
         " && echo r > " + sh_quote(dir / "t/Read.Me"));
  std::string iso = dir / "plain.iso";
  run_ok("genisoimage -quiet -o " + sh_quote(iso) + " " + sh_quote(dir / "t"));
  // The oracle: xorriso with the mapping Linux's isofs applies by default.
  std::string oracle = run_ok("xorriso -ecma119_map lowercase -indev " + sh_quote(iso) +
                              " -find / -type f 2>/dev/null | tr -d \"'\" | sed 's|^/||' | "
                              "LC_ALL=C sort");
  RunResult ls = run_vdisk("ls -R " + sh_quote(iso));
  REQUIRE(ls.exit_code == 0);
  std::string files;
  for (const char* f : {"docs/f1.txt", "noext", "read.me"}) {
    CHECK_THAT(ls.out, Catch::Contains(std::string(f) + "\n"));
    files += std::string(f) + "\n";
  }
  CHECK(oracle == files);
  // Any case, with or without the version.
  for (const char* p : {"/docs/f1.txt", "DOCS/F1.TXT;1", "Docs/F1.TXT", "/docs/f1.txt;1"}) {
    INFO(p);
    RunResult c = run_vdisk("cat " + sh_quote(iso) + " " + sh_quote(p));
    CHECK(c.exit_code == 0);
    CHECK(c.out == "hello\n");
  }
  CHECK(run_vdisk("cat " + sh_quote(iso) + " noext.").out == "n\n");
  // As recorded, on request (isoinfo -l is the oracle).
  RunResult raw = run_vdisk("ls --raw-names " + sh_quote(iso));
  CHECK(raw.out == "DOCS\nNOEXT.;1\nREAD.ME;1\n");
  std::string isoinfo = run_ok("isoinfo -l -i " + sh_quote(iso));
  CHECK_THAT(isoinfo, Catch::Contains("NOEXT.;1"));
  CHECK_THAT(isoinfo, Catch::Contains("READ.ME;1"));
  // The crafted level-1 image too.
  std::string c = dir / "crafted.iso";
  write_file(c, isocraft::plain());
  CHECK(run_vdisk("ls " + sh_quote(c)).out == "docs\nnoext\nreadme.txt\n");
  CHECK(run_vdisk("cat " + sh_quote(c) + " /DOCS/F1.TXT").out == "hello\n");
}
