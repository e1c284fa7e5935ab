// ISO 9660: reading what xorriso and genisoimage write, and writing what
// xorriso, 7z and isoinfo read. Oracles: xorriso's own extraction and -find
// check, 7z, find(1) + sha256sum manifests, dd on the image at the LBAs
// xorriso reports. Damaged images are built here per ECMA-119 / SUSP.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <regex>
#include <thread>

#include "formats/core/block_device.h"
#include "formats/core/endian.h"
#include "formats/core/file.h"
#include "formats/core/file_tree.h"
#include "formats/core/json.h"
#include "formats/iso9660/iso_writer.h"
#include "formats/registry.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

// One line per entry: path, type, [mode,] size, sha256 or link target — all
// from find(1) and sha256sum, never from vdisk.
std::string manifest(const std::string& dir, bool modes) {
  // With `modes`, also the mtime of files and directories (symlink times are
  // not restored by xorriso).
  std::string fmt = modes ? "%P\\t%y\\t%m\\t" : "%P\\t%y\\t";
  std::string t = modes ? "\\( -type l -o -printf '%T@\\t' \\) -a " : "";
  return run_ok(
      "cd " + sh_quote(dir) + " && find . -mindepth 1 -printf '" + fmt + "' -a " + t +
      "\\( -type f -printf '%s\\t' -exec sh -c 'sha256sum < \"$1\" | cut -c1-64' _ {} \\; "
      "-o -type l -printf '%s\\t%l\\n' -o -printf '-\\t-\\n' \\) | LC_ALL=C sort");
}

// The test tree: deep directories (12 levels), symlinks (relative, absolute,
// upward), a long name, non-ASCII names, empty files, varied modes.
// `for_7z`: no symlinks, names up to 64 characters (7z reads Joliet).
// `long_link`: a 528-byte symlink target (genisoimage truncates those).
void make_tree(const std::string& root, bool for_7z, bool long_link = true) {
  std::string q = sh_quote(root);
  std::string cmd =
      "set -e; mkdir -p " + q + " && cd " + q +
      " && mkdir -p d1/d2/d3/d4/d5/d6/d7/d8/d9/d10/d11/d12 && echo deep > "
      "d1/d2/d3/d4/d5/d6/d7/d8/d9/d10/d11/d12/f.txt && echo nine > d1/d2/d3/d4/d5/d6/d7/d8/d9/n.txt"
      " && echo hello > a.txt && : > empty && : > 'Mixed Case Dir.empty'"
      " && head -c 300000 /dev/urandom > rand.bin && mkdir 'Mixed Case Dir'"
      " && echo m > 'Mixed Case Dir/file.with.dots.tar.gz' && echo u > 'ünïcødé ñame.txt'"
      " && echo g > 'Ελληνικά.txt' && chmod 0750 d1 && chmod 0600 a.txt && chmod 0755 rand.bin"
      " && for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 "
      "30"
      " 31 32 33 34 35 36 37 38 39 40; do echo $i > many_files_in_one_directory_$i.dat; done";
  if (!for_7z) {
    cmd += " && echo long > " + std::string(150, 'L') +
           ".txt && ln -s a.txt link && ln -s /abs/target/x absl"
           " && ln -s ../../d1 d1/d2/up && echo ok > noext.";
    if (long_link) {
      std::string target;
      for (int i = 0; i < 25; ++i) target += "component" + std::to_string(10 + i) + "_abcdefgh/";
      cmd += " && ln -s " + target + "end longlink";
    }
  }
  // Whole seconds (ISO 9660 records no fractions), a few distinct values;
  // directories last, as creating entries changes their times.
  cmd +=
      " && find . -exec touch -h -d @1650000000 {} + && touch -d @1500000000 a.txt rand.bin"
      " && find . -depth -type d -exec touch -d @1600000000 {} +";
  run_ok(cmd);
}

// xorriso's view of an image must load without complaint.
void require_xorriso_happy(const std::string& iso) {
  RunResult r = run("xorriso -indev " + sh_quote(iso) + " -find / >/dev/null");
  INFO(r.err);
  CHECK(r.exit_code == 0);
  for (const char* bad : {"SORRY", "FAILURE", "WARNING", "MISHAP", "FATAL"})
    CHECK(r.err.find(bad) == std::string::npos);
}

// Plain ISO 9660 names (no Rock Ridge, no Joliet) as Linux shows them: lower
// case, without ";1" and the trailing '.' (vdisk's default too).
std::string xorriso_extract(const std::string& iso, const std::string& dir) {
  run_ok("xorriso -osirrox on -ecma119_map lowercase -indev " + sh_quote(iso) + " -extract / " +
         sh_quote(dir) + " >/dev/null 2>&1");
  return dir;
}

std::string vdisk_extract(const std::string& iso, const std::string& dir) {
  RunResult r = run_vdisk("extract -q " + sh_quote(iso) + " -C " + sh_quote(dir));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  return dir;
}

// `vdisk info --output json IMAGE`, parsed.
Json info_json(const std::string& image) {
  RunResult r = run_vdisk("info --output json " + sh_quote(image));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  return Json::parse(r.out);
}

uint32_t load_u32(const std::vector<uint8_t>& b, size_t off) {
  return load_le32(b.data() + off);
}

}  // namespace

TEST_CASE("ISOs by xorriso and genisoimage extract like xorriso extracts them", "[iso]") {
  require_tool("xorriso");
  require_tool("genisoimage");
  TempDir dir;
  make_tree(dir / "tree", false);
  make_tree(dir / "treeg", false, false);
  const std::vector<std::pair<std::string, std::string>> makers = {
      {"xorriso-RJ", "xorriso -as mkisofs -R -J"},
      {"xorriso-default", "xorriso -as mkisofs"},
      {"genisoimage-RJ", "genisoimage -quiet -R -J -joliet-long"},
      {"genisoimage-r", "genisoimage -quiet -r"},
      {"genisoimage-J", "genisoimage -quiet -J -joliet-long"},
      {"genisoimage-plain", "genisoimage -quiet"},
  };
  for (auto& [name, cmd] : makers) {
    SECTION(name) {
      std::string iso = dir / (name + ".iso");
      std::string src = dir / (cmd.rfind("genisoimage", 0) == 0 ? "treeg" : "tree");
      run_ok(cmd + " -o " + sh_quote(iso) + " " + sh_quote(src) + " 2>/dev/null");
      std::string expected = manifest(xorriso_extract(iso, dir / "x"), true);
      std::string got = manifest(vdisk_extract(iso, dir / "v"), true);
      CHECK(got == expected);
      CHECK(expected.size() > 200);
      // ls -R names the same paths.
      RunResult ls = run_vdisk("ls -R " + sh_quote(iso));
      REQUIRE(ls.exit_code == 0);
      std::string paths = run_ok("cd " + sh_quote(dir / "x") +
                                 " && find . -mindepth 1 -printf '%P\\n' | LC_ALL=C sort");
      std::string ls_sorted = run_ok("printf '%s' " + sh_quote(ls.out) + " | LC_ALL=C sort");
      CHECK(ls_sorted == paths);
    }
  }
}

TEST_CASE("xorriso's view of the test tree matches the tree (oracle sanity)", "[iso]") {
  require_tool("xorriso");
  TempDir dir;
  make_tree(dir / "tree", false);
  run_ok("xorriso -as mkisofs -R -J -o " + sh_quote(dir / "x.iso") + " " + sh_quote(dir / "tree") +
         " 2>/dev/null");
  CHECK(manifest(xorriso_extract(dir / "x.iso", dir / "x"), true) == manifest(dir / "tree", true));
}

TEST_CASE("mkiso output reads back through xorriso, 7z and vdisk", "[iso]") {
  require_tool("xorriso");
  require_tool("7z");
  TempDir dir;
  make_tree(dir / "tree", false);
  std::string iso = dir / "out.iso";
  RunResult mk =
      run_vdisk("mkiso -V 'Test Volume' " + sh_quote(dir / "tree") + " -o " + sh_quote(iso));
  INFO(mk.err);
  REQUIRE(mk.exit_code == 0);
  require_xorriso_happy(iso);
  std::string source = manifest(dir / "tree", true);
  CHECK(manifest(xorriso_extract(iso, dir / "x"), true) == source);
  CHECK(manifest(vdisk_extract(iso, dir / "v"), true) == source);
  // Deep directories went through RR_MOVED: an ISO-9660-only reader sees it.
  std::string plain =
      run_ok("xorriso -read_fs ecma119 -indev " + sh_quote(iso) + " -find / 2>/dev/null");
  CHECK_THAT(plain, Catch::Contains("'/RR_MOVED/D8/D9/D10/D11/D12/F.TXT'"));
  // The Joliet tree keeps the real hierarchy.
  std::string joliet =
      run_ok("xorriso -read_fs norock -indev " + sh_quote(iso) + " -find / 2>/dev/null");
  CHECK_THAT(joliet, Catch::Contains("'/d1/d2/d3/d4/d5/d6/d7/d8/d9/d10/d11/d12/f.txt'"));
  CHECK_THAT(joliet, Catch::Contains("'/Ελληνικά.txt'"));
  // isoinfo (genisoimage's reader) finds both extensions.
  std::string d = run_ok("isoinfo -d -i " + sh_quote(iso));
  CHECK_THAT(d, Catch::Contains("Joliet with UCS level 3"));
  CHECK_THAT(d, Catch::Contains("Rock Ridge"));

  // 7z reads the Joliet tree (no symlinks there; names up to 64 characters).
  make_tree(dir / "tree7", true);
  std::string iso7 = dir / "out7.iso";
  REQUIRE(run_vdisk("mkiso " + sh_quote(dir / "tree7") + " -o " + sh_quote(iso7)).exit_code == 0);
  run_ok("7z x -y -o" + sh_quote(dir / "z") + " " + sh_quote(iso7) + " >/dev/null");
  CHECK(manifest(dir / "z", false) == manifest(dir / "tree7", false));

  // Without Rock Ridge: Joliet names, real hierarchy; without both: ISO names.
  for (const char* flags : {"--no-rock-ridge", "--no-joliet", "--no-rock-ridge --no-joliet"}) {
    std::string o = dir / ("o" + std::to_string(std::strlen(flags)) + ".iso");
    REQUIRE(run_vdisk(std::string("mkiso ") + flags + " " + sh_quote(dir / "tree7") + " -o " +
                      sh_quote(o))
                .exit_code == 0);
    require_xorriso_happy(o);
    std::string x = dir / ("xo" + std::to_string(std::strlen(flags)));
    std::string v = dir / ("vo" + std::to_string(std::strlen(flags)));
    CHECK(manifest(xorriso_extract(o, x), true) == manifest(vdisk_extract(o, v), true));
    if (std::string(flags) == "--no-rock-ridge")
      CHECK(manifest(x, false) == manifest(dir / "tree7", false));
  }
}

TEST_CASE("mkiso is reproducible with SOURCE_DATE_EPOCH", "[iso]") {
  require_tool("xorriso");
  TempDir dir;
  make_tree(dir / "tree", false);
  std::string a = dir / "a.iso", b = dir / "b.iso";
  std::string tree = sh_quote(dir / "tree");
  REQUIRE(run("SOURCE_DATE_EPOCH=1700000000 " + std::string(VDISK_BIN) + " mkiso " + tree + " -o " +
              sh_quote(a))
              .exit_code == 0);
  run_ok("sleep 1");  // a different "now" must not matter
  REQUIRE(run("SOURCE_DATE_EPOCH=1700000000 " + std::string(VDISK_BIN) + " mkiso " + tree + " -o " +
              sh_quote(b))
              .exit_code == 0);
  CHECK(coreutils_digest("sha256sum", a) == coreutils_digest("sha256sum", b));
  // 1700000000 = 2023-11-14 22:13:20 UTC.
  CHECK_THAT(run_ok("xorriso -indev " + sh_quote(a) + " -pvd_info 2>/dev/null"),
             Catch::Contains("Creation Time: 2023111422132000"));
  // Times after the epoch are clamped to it (xorriso and find as oracles).
  run_ok("touch -d @1800000000 " + sh_quote(dir / "tree/a.txt"));
  REQUIRE(run("SOURCE_DATE_EPOCH=1700000000 " + std::string(VDISK_BIN) + " mkiso " + tree + " -o " +
              sh_quote(dir / "d.iso"))
              .exit_code == 0);
  xorriso_extract(dir / "d.iso", dir / "dx");
  CHECK(run_ok("find " + sh_quote(dir / "dx/a.txt") + " -printf '%T@'") == "1700000000.0000000000");
  CHECK(run_ok("find " + sh_quote(dir / "dx/rand.bin") + " -printf '%T@'") ==
        "1500000000.0000000000");
  // Without it the dates are now: a different image.
  REQUIRE(run_vdisk("mkiso " + tree + " -o " + sh_quote(dir / "c.iso")).exit_code == 0);
  CHECK(coreutils_digest("sha256sum", dir / "c.iso") != coreutils_digest("sha256sum", a));
}

TEST_CASE("a file over 4 GiB, sparse on the host, round-trips as a multi-extent file", "[iso]") {
  require_tool("xorriso");
  TempDir dir;
  const uint64_t size = (4ull << 30) + (1 << 20);
  const uint64_t boundary = 0xFFFFF800ull;  // end of the first extent
  std::string src = dir / "tree/huge.bin";
  run_ok("mkdir " + sh_quote(dir / "tree") + " && truncate -s " + std::to_string(size) + " " +
         sh_quote(src));
  write_at(src, 0, {'H', 'E', 'A', 'D'});
  write_at(src, boundary - 3, {'M', 'I', 'D', 'D', 'L', 'E'});
  write_at(src, size - 4, {'T', 'A', 'I', 'L'});
  std::string iso = dir / "big.iso";
  RunResult mk = run_vdisk("mkiso " + sh_quote(dir / "tree") + " -o " + sh_quote(iso));
  INFO(mk.err);
  REQUIRE(mk.exit_code == 0);
  CHECK(allocated_bytes_on_host(iso) < (16u << 20));  // holes stayed holes
  require_xorriso_happy(iso);
  // xorriso: one file of the full size, in two extents; the bytes at the LBAs
  // it reports are the source's.
  CHECK_THAT(run_ok("xorriso -indev " + sh_quote(iso) + " -find /huge.bin -exec lsdl 2>/dev/null"),
             Catch::Contains(std::to_string(size)));
  // The Joliet tree carries the same multi-extent file.
  CHECK_THAT(run_ok("xorriso -read_fs norock -indev " + sh_quote(iso) +
                    " -find /huge.bin -exec lsdl 2>/dev/null"),
             Catch::Contains(std::to_string(size)));
  std::string lba =
      run_ok("xorriso -indev " + sh_quote(iso) + " -find /huge.bin -exec report_lba 2>/dev/null");
  std::smatch m;
  REQUIRE(std::regex_search(lba, m, std::regex(R"(File data lba:\s*\d+\s*,\s*(\d+)\s*,)")));
  uint64_t start = std::stoull(m[1]) * 2048;
  auto at = [&](uint64_t off, int n) {
    return run_ok("dd if=" + sh_quote(iso) + " bs=1 skip=" + std::to_string(start + off) +
                  " count=" + std::to_string(n) + " status=none");
  };
  CHECK(at(0, 4) == "HEAD");
  CHECK(at(boundary - 3, 6) == "MIDDLE");
  CHECK(at(size - 4, 4) == "TAIL");
  // vdisk reads it back across both extents.
  RunResult ls = run_vdisk("ls -l " + sh_quote(iso) + " huge.bin");
  CHECK_THAT(ls.out, Catch::Contains(std::to_string(size)));
  vdisk_extract(iso, dir / "v");
  std::string out = dir / "v/huge.bin";
  CHECK(file_size(out) == size);
  CHECK(allocated_bytes_on_host(out) < (16u << 20));
  auto bytes_at = [&](uint64_t off, int n) {
    return run_ok("dd if=" + sh_quote(out) + " bs=1 skip=" + std::to_string(off) +
                  " count=" + std::to_string(n) + " status=none");
  };
  CHECK(bytes_at(0, 4) == "HEAD");
  CHECK(bytes_at(boundary - 3, 6) == "MIDDLE");
  CHECK(bytes_at(size - 4, 4) == "TAIL");
  CHECK(bytes_at(1 << 30, 4) == std::string(4, '\0'));
}

TEST_CASE("El Torito boot entries: written by mkiso, read from xorriso's", "[iso]") {
  require_tool("xorriso");
  TempDir dir;
  run_ok("mkdir -p " + sh_quote(dir / "tree/boot") + " && head -c 5000 /dev/urandom > " +
         sh_quote(dir / "tree/boot/boot.img") + " && echo x > " + sh_quote(dir / "tree/readme"));
  std::string iso = dir / "boot.iso";
  REQUIRE(run_vdisk("mkiso --boot boot/boot.img " + sh_quote(dir / "tree") + " -o " + sh_quote(iso))
              .exit_code == 0);
  require_xorriso_happy(iso);
  std::string rep =
      run_ok("xorriso -indev " + sh_quote(iso) + " -report_el_torito plain 2>/dev/null");
  CHECK_THAT(rep, Catch::Contains("El Torito boot img :   1  BIOS  y   none"));
  // The entry's load RBA holds the boot image.
  Json j = info_json(iso);
  const Json* d = j.find("details");
  REQUIRE(d != nullptr);
  const Json& e = d->find("boot_entries")->as_array().at(0);
  CHECK(e.find("emulation")->as_string() == "no emulation");
  CHECK(e.find("sector_count")->as_u64() == 10);  // 5000 bytes in 512-byte sectors
  uint64_t rba = e.find("load_rba")->as_u64();
  CHECK(run_ok("dd if=" + sh_quote(iso) + " bs=2048 skip=" + std::to_string(rba) +
               " count=3 status=none | head -c 5000 | sha256sum") ==
        run_ok("sha256sum < " + sh_quote(dir / "tree/boot/boot.img")));

  // xorriso's boot ISO with an MBR ahead (hybrid): info sees both, ls works.
  std::string x = dir / "x.iso";
  run_ok(
      "xorriso -as mkisofs -R -b boot/boot.img -no-emul-boot -boot-load-size 4 "
      "--protective-msdos-label -o " +
      sh_quote(x) + " " + sh_quote(dir / "tree") + " 2>/dev/null");
  Json xj = info_json(x);
  CHECK(xj.find("format")->as_string() == "iso");
  const Json* xd = xj.find("details");
  CHECK(xd->find("hybrid")->as_string() == "MBR");
  const Json& xe = xd->find("boot_entries")->as_array().at(0);
  CHECK(xe.find("sector_count")->as_u64() == 4);
  CHECK(xe.find("platform")->as_string() == "x86");
  std::string xrep =
      run_ok("xorriso -indev " + sh_quote(x) + " -report_el_torito plain 2>/dev/null");
  CHECK_THAT(xrep, Catch::Contains(std::to_string(xe.find("load_rba")->as_u64())));
  CHECK(run_vdisk("ls " + sh_quote(x) + " boot").out == "boot.img\n");

  run_ok("head -c 70000 /dev/urandom > " + sh_quote(dir / "tree/boot/efi.img"));
  // A GPT in the system area (an appended EFI partition): still an ISO.
  std::string g = dir / "gpt.iso";
  run_ok("xorriso -as mkisofs -R -append_partition 2 0xef " + sh_quote(dir / "tree/boot/efi.img") +
         " -appended_part_as_gpt -o " + sh_quote(g) + " " + sh_quote(dir / "tree") +
         " 2>/dev/null");
  require_tool("sgdisk");
  run_ok("sgdisk -p " + sh_quote(g) + " >/dev/null");  // the oracle agrees there is a GPT
  Json gj = info_json(g);
  CHECK(gj.find("format")->as_string() == "iso");
  CHECK(gj.find("details")->find("hybrid")->as_string() == "GPT");
  CHECK(run_vdisk("ls " + sh_quote(g) + " boot").out == "boot.img\nefi.img\n");
  // A BIOS and a UEFI entry (a section after the default entry).
  std::string two = dir / "two.iso";
  run_ok(
      "xorriso -as mkisofs -R -b boot/boot.img -no-emul-boot -boot-load-size 4 -eltorito-alt-boot "
      "-e boot/efi.img "
      "-no-emul-boot -o " +
      sh_quote(two) + " " + sh_quote(dir / "tree") + " 2>/dev/null");
  Json tj = info_json(two);
  const Json::Array& entries = tj.find("details")->find("boot_entries")->as_array();
  REQUIRE(entries.size() == 2);
  CHECK(entries[1].find("platform")->as_string() == "EFI");
  CHECK(entries[1].find("sector_count")->as_u64() == 140);  // 70000 bytes
  std::string trep =
      run_ok("xorriso -indev " + sh_quote(two) + " -report_el_torito plain 2>/dev/null");
  CHECK(
      std::regex_search(trep, std::regex("boot img :   2  UEFI  y   none  0x0000  0x00    140\\s+" +
                                         std::to_string(entries[1].find("load_rba")->as_u64()))));
}

TEST_CASE("an ISO is a disk image too: info, cat, hash, convert", "[iso]") {
  require_tool("xorriso");
  TempDir dir;
  make_tree(dir / "tree", false);
  std::string iso = dir / "x.iso";
  run_ok("xorriso -as mkisofs -R -J -V MYVOL -publisher PUB -o " + sh_quote(iso) + " " +
         sh_quote(dir / "tree") + " 2>/dev/null");
  Json j = info_json(iso);
  CHECK(j.find("format")->as_string() == "iso");
  const Json* d = j.find("details");
  CHECK(d->find("volume_id")->as_string() == "MYVOL");
  CHECK(d->find("publisher")->as_string() == "PUB");
  CHECK(d->find("joliet_level")->as_u64() == 3);
  CHECK_THAT(d->find("rock_ridge")->as_string(), Catch::Contains("RRIP_1991A"));
  RunResult h = run_vdisk("hash " + sh_quote(iso));
  CHECK(parse_tagged_digest(h.out, "SHA256") == coreutils_digest("sha256sum", iso));
  REQUIRE(run_vdisk("convert -O raw " + sh_quote(iso) + " " + sh_quote(dir / "x.raw")).exit_code ==
          0);
  CHECK(coreutils_digest("sha256sum", dir / "x.raw") == coreutils_digest("sha256sum", iso));
  // cat, also through a symlink inside the image.
  CHECK(run("sh -c " +
            sh_quote(std::string(VDISK_BIN) + " cat " + sh_quote(iso) + " /rand.bin | sha256sum"))
            .out == run_ok("sha256sum < " + sh_quote(dir / "tree/rand.bin")));
  CHECK(run_vdisk("cat " + sh_quote(iso) + " link").out == "hello\n");
  RunResult l = run_vdisk("ls -l " + sh_quote(iso) + " /");
  CHECK_THAT(l.out, Catch::Contains("link -> a.txt"));
  CHECK_THAT(l.out, Catch::Contains("-rw------- "));
  CHECK(run_vdisk("cat " + sh_quote(iso) + " nothere").exit_code == 2);
}

TEST_CASE("garbage, truncated and looping ISOs exit 2 with a clear message", "[iso]") {
  require_tool("xorriso");
  TempDir dir;
  // Random bytes named .iso: no file system.
  run_ok("head -c 100000 /dev/urandom > " + sh_quote(dir / "junk.iso"));
  RunResult r = run_vdisk("ls " + sh_quote(dir / "junk.iso"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("no file system recognised"));

  make_tree(dir / "tree", false);
  std::string iso = dir / "good.iso";
  REQUIRE(run_vdisk("mkiso " + sh_quote(dir / "tree") + " -o " + sh_quote(iso)).exit_code == 0);
  std::vector<uint8_t> good = read_file(iso);

  // Truncated after the descriptors: directories lie past the end.
  std::vector<uint8_t> t(good.begin(), good.begin() + 19 * 2048);
  write_file(dir / "trunc1.iso", t);
  r = run_vdisk("ls -R " + sh_quote(dir / "trunc1.iso"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("past the end of the image"));
  // Truncated inside file data: listing works, extraction fails cleanly.
  std::vector<uint8_t> t2(good.begin(), good.end() - 100 * 1024);
  write_file(dir / "trunc2.iso", t2);
  CHECK(run_vdisk("ls -R " + sh_quote(dir / "trunc2.iso")).exit_code == 0);
  r = run_vdisk("extract " + sh_quote(dir / "trunc2.iso") + " -C " + sh_quote(dir / "t2"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("truncated"));
  // Only the first sector of descriptors.
  std::vector<uint8_t> t3(good.begin(), good.begin() + 16 * 2048 + 2048);
  write_file(dir / "trunc3.iso", t3);
  r = run_vdisk("ls " + sh_quote(dir / "trunc3.iso"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("trunc3.iso"));

  // A directory record pointing back at the root: a loop.
  {
    TempDir d2;
    run_ok("mkdir -p " + sh_quote(d2 / "t/sub") + " && echo x > " + sh_quote(d2 / "t/sub/f"));
    std::string p = d2 / "plain.iso";
    REQUIRE(
        run_vdisk("mkiso --no-joliet --no-rock-ridge " + sh_quote(d2 / "t") + " -o " + sh_quote(p))
            .exit_code == 0);
    std::vector<uint8_t> b = read_file(p);
    uint32_t root = load_u32(b, 16 * 2048 + 156 + 2);
    size_t rec = static_cast<size_t>(root) * 2048 + 34 + 34;  // after "." and ".."
    REQUIRE(std::string(reinterpret_cast<char*>(&b[rec + 33]), 3) == "SUB");
    uint32_t sub = load_u32(b, rec + 2);
    store_le32(&b[rec + 2], root);
    store_be32(&b[rec + 6], root);
    write_file(d2 / "loop.iso", b);
    r = run_vdisk("ls -R " + sh_quote(d2 / "loop.iso"));
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("loop"));
    r = run_vdisk("extract " + sh_quote(d2 / "loop.iso") + " -C " + sh_quote(d2 / "out"));
    CHECK(r.exit_code == 2);
    // A directory extent claimed to be 3 GiB.
    store_le32(&b[rec + 2], sub);
    store_be32(&b[rec + 6], sub);
    store_le32(&b[rec + 10], 0xC0000000u);
    store_be32(&b[rec + 14], 0xC0000000u);
    write_file(d2 / "huge.iso", b);
    r = run_vdisk("ls -R " + sh_quote(d2 / "huge.iso"));
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("huge.iso"));
  }

  // A Rock Ridge continuation area whose CE points at itself.
  {
    std::vector<uint8_t> b = good;
    uint32_t root = load_u32(b, 16 * 2048 + 156 + 2);
    size_t dot = static_cast<size_t>(root) * 2048;
    size_t len = b[dot];
    size_t ce = 0;
    for (size_t k = dot + 34; k + 28 <= dot + len; ++k) {
      if (b[k] == 'C' && b[k + 1] == 'E' && b[k + 2] == 28) ce = k;
    }
    REQUIRE(ce != 0);
    uint32_t blk = load_u32(b, ce + 4), off = load_u32(b, ce + 12);
    size_t area = static_cast<size_t>(blk) * 2048 + off;
    std::memcpy(&b[area], &b[ce], 28);  // the area now continues into itself
    store_le32(&b[area + 20], 28);
    store_be32(&b[area + 24], 28);
    write_file(dir / "celoop.iso", b);
    r = run_vdisk("ls " + sh_quote(dir / "celoop.iso"));
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("loop"));
  }
}

TEST_CASE("extract never writes outside its directory", "[iso]") {
  TempDir dir;
  run_ok("mkdir -p " + sh_quote(dir / "t/d2") + " " + sh_quote(dir / "outside") + " && cd " +
         sh_quote(dir / "t") +
         " && echo a > zz && echo b > qqq && ln -s ../outside d1 && echo evil > d2/f");
  std::string iso = dir / "a.iso";
  REQUIRE(
      run_vdisk("mkiso --no-joliet " + sh_quote(dir / "t") + " -o " + sh_quote(iso)).exit_code ==
      0);
  std::vector<uint8_t> b = read_file(iso);
  // Rename through the Rock Ridge NM entries: "zz" -> "..", "qqq" -> "a/b",
  // and the directory "d2" -> "d1", the name of a symlink to ../outside.
  auto rename = [&](const std::string& from, const std::string& to) {
    std::string nm = std::string("NM") + static_cast<char>(5 + from.size()) + '\1' + '\0' + from;
    auto it = std::search(b.begin(), b.end(), nm.begin(), nm.end());
    REQUIRE(it != b.end());
    std::memcpy(&*(it + 5), to.data(), to.size());
  };
  rename("zz", "..");
  rename("qqq", "a/b");
  rename("d2", "d1");
  write_file(dir / "evil.iso", b);
  RunResult r = run_vdisk("extract " + sh_quote(dir / "evil.iso") + " -C " + sh_quote(dir / "out"));
  INFO(r.err);
  // d1 exists as a symlink: skipped (never followed), and so are ".." and
  // "a/b", each with a warning; exit 3.
  CHECK(r.exit_code == 3);
  CHECK_THAT(r.err, Catch::Contains("d1: it exists"));
  CHECK(run_ok("ls -A " + sh_quote(dir / "outside")).empty());
  CHECK(!file_exists(dir / "a/b"));
  CHECK(!file_exists(dir / "out/a/b"));
  CHECK(run_ok("readlink " + sh_quote(dir / "out/d1")) == "../outside\n");
}

TEST_CASE(
    "Rock Ridge devices, fifos, 255-byte names and long links: written, then read by xorriso and "
    "vdisk",
    "[iso]") {
  require_tool("xorriso");
  TempDir dir;
  write_file(dir / "content", {'d', 'a', 't', 'a', '\n'});
  using iso9660::MkisoNode;
  MkisoNode root;
  root.type = NodeType::kDirectory;
  root.mode = 0755;
  root.mtime = root.atime = root.ctime = 1600000000;
  auto add = [&](const std::string& name, NodeType type, uint32_t mode) -> MkisoNode& {
    MkisoNode n;
    n.name = name;
    n.type = type;
    n.mode = mode;
    n.uid = 1234;
    n.gid = 567;
    n.mtime = n.atime = n.ctime = 1600000000;
    root.children.push_back(n);
    return root.children.back();
  };
  add("null", NodeType::kCharDevice, 0666).rdev = (1ull << 32) | 3;
  add("sda1", NodeType::kBlockDevice, 0660).rdev = (8ull << 32) | 1;
  add("pipe", NodeType::kFifo, 0644);
  std::string long_name = std::string(251, 'n') + ".txt";  // 255 bytes: two NM entries
  MkisoNode& f = add(long_name, NodeType::kRegular, 0640);
  f.size = 5;
  f.source_path = dir / "content";
  std::string target =
      "/" + std::string(250, 'a') + "/" + std::string(250, 'b') + "/../c";  // several SL entries
  add("ln", NodeType::kSymlink, 0777).link_target = target;

  iso9660::MkisoOptions opts;
  opts.source_date_epoch = 1700000000;
  opts.env = &Env::posix();
  std::string iso = dir / "dev.iso";
  iso9660::write_iso(root, opts, iso);
  require_xorriso_happy(iso);

  std::string l = run_ok("xorriso -indev " + sh_quote(iso) + " -find / -exec lsdl 2>/dev/null");
  CHECK_THAT(l, Catch::Contains("crw-rw-rw-"));
  CHECK(std::regex_search(l, std::regex(R"(c[rw-]{9}\s+1\s+1234\s+567\s+1,\s*3 .*'/null')")));
  CHECK(std::regex_search(l, std::regex(R"(b[rw-]{9}\s+1\s+1234\s+567\s+8,\s*1 .*'/sda1')")));
  CHECK(std::regex_search(l, std::regex(R"(p[rw-]{9}\s+1\s+1234\s+567\s+.*'/pipe')")));
  CHECK_THAT(l, Catch::Contains("'/" + long_name + "'"));
  CHECK_THAT(l, Catch::Contains("'/ln' -> '" + target + "'"));

  // vdisk's reader, straight through the library.
  auto file = std::shared_ptr<const File>(Env::posix().open_read(iso));
  auto dev = std::make_shared<FileDevice>(file, 0, file->size(), "iso");
  std::unique_ptr<FileTree> tree = open_file_tree(dev, iso);
  REQUIRE(tree);
  NodeStat null_st = tree->stat(resolve_tree_path(*tree, "/null", iso));
  CHECK(null_st.type == NodeType::kCharDevice);
  CHECK(null_st.rdev == ((1ull << 32) | 3));
  CHECK(null_st.uid == 1234);
  CHECK(null_st.mode == 0666);
  CHECK(tree->stat(resolve_tree_path(*tree, "/sda1", iso)).type == NodeType::kBlockDevice);
  CHECK(tree->stat(resolve_tree_path(*tree, "/pipe", iso)).type == NodeType::kFifo);
  NodeId fid = resolve_tree_path(*tree, "/" + long_name, iso);
  char buf[16] = {};
  CHECK(tree->read(fid, 0, buf, sizeof buf) == 5);
  CHECK(std::string(buf, 5) == "data\n");
  CHECK(tree->stat(fid).mtime.seconds == 1600000000);
  CHECK(tree->readlink(resolve_tree_path(*tree, "/ln", iso)) == target);
}

TEST_CASE("the ISO file tree answers many threads at once", "[iso]") {
  require_tool("xorriso");
  TempDir dir;
  make_tree(dir / "tree", false);
  std::string iso = dir / "x.iso";
  run_ok("xorriso -as mkisofs -R -J -o " + sh_quote(iso) + " " + sh_quote(dir / "tree") +
         " 2>/dev/null");
  auto file = std::shared_ptr<const File>(Env::posix().open_read(iso));
  auto dev = std::make_shared<FileDevice>(file, 0, file->size(), "iso");
  std::unique_ptr<FileTree> tree = open_file_tree(dev, iso);
  REQUIRE(tree);
  // Every regular file in the source, as (path, bytes) — read from the host.
  std::vector<std::pair<std::string, std::vector<uint8_t>>> files;
  std::string list = run_ok("cd " + sh_quote(dir / "tree") + " && find . -type f -printf '%P\\n'");
  size_t start = 0;
  while (start < list.size()) {
    size_t nl = list.find('\n', start);
    std::string p = list.substr(start, nl - start);
    start = nl + 1;
    files.emplace_back(p, read_file(dir / ("tree/" + p)));
  }
  REQUIRE(files.size() > 40);
  std::atomic<int> mismatches{0}, errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 3; ++round) {
        for (size_t i = static_cast<size_t>(t); i < files.size() + static_cast<size_t>(t); ++i) {
          auto& [path, bytes] = files[i % files.size()];
          try {
            NodeId id = resolve_tree_path(*tree, path, iso);
            std::vector<uint8_t> got(bytes.size() + 10);
            size_t n = 0, r;
            while (n < got.size() && (r = tree->read(id, n, got.data() + n,
                                                     std::min<size_t>(7001, got.size() - n))) > 0) {
              n += r;
            }
            got.resize(n);
            if (got != bytes) ++mismatches;
          } catch (...) {
            ++errors;
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(mismatches == 0);
  CHECK(errors == 0);
}
