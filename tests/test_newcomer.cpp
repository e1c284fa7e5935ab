// What a new user trips over (issues #17 and #18), each judged by another
// tool: the output format taken from DST's extension (qemu-img info, gzip),
// foreign containers listed by `formats`, a resized output reported with both
// sizes and both hashes (head + sha256sum of the fixed VHD's data), compare
// strict by default and like qemu-img compare on request, allocated_bytes one
// number in info, the report and qemu-img map, and the partition table in
// info as sfdisk and sgdisk wrote it.
#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

#include "formats/core/json.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

const uint64_t kMiB = 1024 * 1024;

std::string first_line(const std::string& s) {
  return s.substr(0, s.find('\n'));
}

// A raw disk of `size` bytes with pseudo-random data in a few places.
void make_raw(const std::string& path, uint64_t size, uint32_t seed) {
  run_ok("truncate -s " + std::to_string(size) + " " + sh_quote(path));
  write_at(path, 0, pattern_bytes(70000, seed));
  write_at(path, size / 2, pattern_bytes(4096, seed + 1));
  write_at(path, size - 3000, pattern_bytes(3000, seed + 2));
}

std::string qemu_format(const std::string& path) {
  Json j = Json::parse(run_ok("qemu-img info --output json " + sh_quote(path)));
  return j.find("format")->as_string();
}

Json read_json(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file(path);
  return Json::parse(std::string(bytes.begin(), bytes.end()));
}

const Json& at(const Json& j, const char* key) {
  const Json* v = j.find(key);
  INFO("key " << key << " in " << j.dump());
  REQUIRE(v != nullptr);
  return *v;
}

}  // namespace

TEST_CASE("convert without -O takes the format from DST's extension or refuses",
          "[cli][newcomer]") {
  require_tool("qemu-img");
  TempDir dir;
  const std::string src = dir / "src.img";
  make_raw(src, 4 * kMiB, 1);
  const std::string want = coreutils_digest("sha256sum", src);

  for (const std::string& ext : {"vmdk", "vhdx", "vdi", "qcow2", "vhd"}) {
    INFO(ext);
    const std::string dst = dir / ("out." + ext);
    RunResult r = run_vdisk("convert " + sh_quote(src) + " " + sh_quote(dst));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(first_line(r.out),
               Catch::Contains("the extension ." + ext + " chooses format " + ext));
    CHECK(qemu_format(dst) == (ext == "vhd" ? "vpc" : ext));
    CHECK(run("qemu-img compare -f raw " + sh_quote(src) + " " + sh_quote(dst)).exit_code == 0);
  }

  // .gz: raw with gzip compression, as gzip itself reads it.
  RunResult gz = run_vdisk("convert " + sh_quote(src) + " " + sh_quote(dir / "out.img.gz"));
  INFO(gz.err);
  REQUIRE(gz.exit_code == 0);
  CHECK_THAT(first_line(gz.out), Catch::Contains("raw with -o compression=gzip"));
  CHECK(run_ok("gzip -dc " + sh_quote(dir / "out.img.gz") + " | sha256sum").substr(0, 64) == want);

  // .img: raw, said too.
  RunResult img = run_vdisk("convert " + sh_quote(src) + " " + sh_quote(dir / "copy.img"));
  REQUIRE(img.exit_code == 0);
  CHECK_THAT(first_line(img.out), Catch::Contains("chooses format raw"));
  CHECK(coreutils_digest("sha256sum", dir / "copy.img") == want);

  // No format by that name, or one vdisk cannot write: refused, nothing made.
  for (const std::string& name : {"out.bin2", "noext", "out.dmg", "out.E01x"}) {
    INFO(name);
    RunResult r = run_vdisk("convert " + sh_quote(src) + " " + sh_quote(dir / name));
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("pass -O FMT"));
    CHECK_FALSE(file_exists(dir / name));
  }
  // -O still decides: raw bytes into a .vmdk only when asked for by name.
  RunResult forced = run_vdisk("convert -O raw " + sh_quote(src) + " " + sh_quote(dir / "r.vmdk"));
  REQUIRE(forced.exit_code == 0);
  CHECK(coreutils_digest("sha256sum", dir / "r.vmdk") == want);
}

TEST_CASE("formats lists the containers vdisk recognises but does not read", "[cli][newcomer]") {
  RunResult human = run_vdisk("formats");
  REQUIRE(human.exit_code == 0);
  CHECK_THAT(human.out, Catch::Contains("Recognised but not read"));
  for (const char* name : {"QED", "LUKS2", "Parallels", "AFF"})
    CHECK_THAT(human.out, Catch::Contains(name));

  RunResult js = run_vdisk("formats --output json");
  REQUIRE(js.exit_code == 0);
  bool qed = false, raw = false;
  const Json list = Json::parse(js.out);
  for (const Json& f : list.as_array()) {
    const std::string name = f.find("name")->as_string();
    if (name == "QED") {
      qed = true;
      CHECK(f.find("recognised_only")->as_bool());
      CHECK_FALSE(f.find("read")->as_bool());
      CHECK(f.find("kind")->as_string() == "disk image");
    }
    if (name == "raw") raw = !f.find("recognised_only")->as_bool();
  }
  CHECK(qed);
  CHECK(raw);
  RunResult o = run_vdisk("convert -O qed -o help");
  CHECK(o.exit_code == 2);
  CHECK_THAT(o.err, Catch::Contains("cannot be written"));
}

TEST_CASE("a resized output says so first and reports both sizes and both hashes",
          "[cli][newcomer][resize]") {
  TempDir dir;
  const uint64_t size = 25 * kMiB + 512;
  const uint64_t padded = 26 * kMiB;
  const std::string src = dir / "src.img", dst = dir / "out.vhd", rep = dir / "rep.json";
  make_raw(src, size, 7);
  const std::string src_sha = coreutils_digest("sha256sum", src);

  RunResult r = run_vdisk("convert -O vhd -o target=azure --hash-file " + sh_quote(rep) + " " +
                          sh_quote(src) + " " + sh_quote(dst));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  const std::string first = first_line(r.out);
  CHECK_THAT(first, Catch::Contains("RESIZED"));
  CHECK_THAT(first, Catch::Contains(std::to_string(size)));
  CHECK_THAT(first, Catch::Contains(std::to_string(padded)));
  // The oracle of the output's content: a fixed VHD is the disk followed by
  // a 512-byte footer.
  REQUIRE(file_size(dst) == padded + 512);
  const std::string out_sha =
      run_ok("head -c " + std::to_string(padded) + " " + sh_quote(dst) + " | sha256sum")
          .substr(0, 64);
  CHECK(out_sha != src_sha);
  CHECK(parse_tagged_digest(r.out, "SHA256") == src_sha);
  CHECK_THAT(r.out, Catch::Contains("SHA256 (source content, " + std::to_string(size) +
                                    " bytes) = " + src_sha));
  CHECK_THAT(r.out, Catch::Contains("SHA256 (output content, " + std::to_string(padded) +
                                    " bytes) = " + out_sha));
  // The output hash is the one verify confirms.
  CHECK(run_vdisk("verify " + sh_quote(dst) + " --expect sha256:" + out_sha).exit_code == 0);

  Json j = read_json(rep);
  CHECK(at(at(j, "size_changed"), "old").as_u64() == size);
  CHECK(at(at(j, "size_changed"), "new").as_u64() == padded);
  CHECK(at(at(j, "hashes"), "sha256").as_string() == src_sha);
  CHECK(at(at(at(j, "destination"), "hashes"), "sha256").as_string() == out_sha);
  CHECK(at(at(j, "destination"), "virtual_size").as_u64() == padded);

  // Without a reason to resize, no format changes the size: 25 MiB + 512 is
  // not whole 4 KiB sectors.
  RunResult vhdx = run_vdisk("convert -O vhdx -o logical_sector_size=4096 " + sh_quote(src) + " " +
                             sh_quote(dir / "o.vhdx"));
  INFO(vhdx.err);
  CHECK(vhdx.exit_code == 2);
  CHECK_THAT(vhdx.err, Catch::Contains("--allow-resize"));
  CHECK_FALSE(file_exists(dir / "o.vhdx"));
  // A size kept exactly says nothing about resizing.
  RunResult same = run_vdisk("convert -O vhd " + sh_quote(src) + " " + sh_quote(dir / "s.vhd"));
  REQUIRE(same.exit_code == 0);
  CHECK_THAT(same.out, !Catch::Contains("RESIZED"));
  CHECK_THAT(same.out, !Catch::Contains("output content"));
}

TEST_CASE("compare is strict on size by default and like qemu-img with --allow-size-mismatch",
          "[cli][newcomer][compare]") {
  require_tool("qemu-img");
  TempDir dir;
  const std::string a = dir / "a.img";
  make_raw(a, 4 * kMiB, 3);
  // b: a padded with zeros; c: a padded with data; d: a changed in the
  // common part and padded with zeros; e: the same size as a.
  const std::string b = dir / "b.img", c = dir / "c.img", d = dir / "d.img", e = dir / "e.img";
  run_ok("cp " + sh_quote(a) + " " + sh_quote(b) + " && truncate -s 5M " + sh_quote(b));
  run_ok("cp " + sh_quote(b) + " " + sh_quote(c));
  write_at(c, 4 * kMiB + 4096, {1, 2, 3});
  run_ok("cp " + sh_quote(b) + " " + sh_quote(d));
  write_at(d, 100, {0xEE});
  run_ok("cp " + sh_quote(a) + " " + sh_quote(e));

  struct Case {
    std::string other;
    bool common_same, extra_zero;
  };
  for (const Case& k : {Case{b, true, true}, Case{c, true, false}, Case{d, false, true}}) {
    INFO(k.other);
    RunResult strict = run_vdisk("compare " + sh_quote(a) + " " + sh_quote(k.other));
    INFO(strict.out);
    CHECK(strict.exit_code == 1);
    CHECK_THAT(strict.out, Catch::Contains("Image sizes differ"));
    if (k.common_same) {
      CHECK_THAT(strict.out, Catch::Contains("common part (the first 4194304 bytes) is identical"));
      CHECK_THAT(strict.out, Catch::Contains(k.extra_zero ? "are all zeros" : "hold data"));
    } else {
      CHECK_THAT(strict.out, Catch::Contains("differs: Content mismatch at offset 100 "));
    }
    // Both orders, against qemu-img compare's verdict.
    for (bool swap : {false, true}) {
      const std::string x = swap ? k.other : a, y = swap ? a : k.other;
      RunResult q = run("qemu-img compare -f raw -F raw " + sh_quote(x) + " " + sh_quote(y));
      RunResult v = run_vdisk("compare --allow-size-mismatch -f raw -F raw " + sh_quote(x) + " " +
                              sh_quote(y));
      INFO(q.out << v.out << v.err);
      REQUIRE((q.exit_code == 0 || q.exit_code == 1));
      CHECK(v.exit_code == q.exit_code);
      CHECK_THAT(v.out, Catch::Contains("Warning: Image size mismatch!"));
      // qemu-img names the start of the first differing chunk, vdisk the
      // differing byte: the same verdict, not the same number.
      if (q.exit_code == 1) CHECK_THAT(v.out, Catch::Contains("Content mismatch at offset"));
    }
  }
  RunResult same = run_vdisk("compare " + sh_quote(a) + " " + sh_quote(e));
  CHECK(same.exit_code == 0);
  CHECK_THAT(same.out, Catch::Contains("Images are identical."));
}

TEST_CASE("allocated_bytes is one number in info, the report and qemu-img map",
          "[cli][newcomer][allocated]") {
  require_tool("qemu-img");
  require_tool("qemu-io");
  TempDir dir;
  const std::string vmdk = dir / "d.vmdk";
  run_ok("qemu-img create -q -f vmdk " + sh_quote(vmdk) + " 8M");
  // Partial grains (512 bytes of a 64 KiB grain) and whole ones.
  run_ok(
      "qemu-io -f vmdk -c 'write -P 0x11 0 512' -c 'write -P 0x22 1M 64k' -c 'write -P 0x33 "
      "3M 100k' " +
      sh_quote(vmdk));
  uint64_t qemu_data = 0;
  for (const MapRun& m : qemu_map_runs(vmdk))
    if (m.type == "data" && m.depth == 0) qemu_data += m.length;
  REQUIRE(qemu_data > 0);

  Json info = Json::parse(run_ok(std::string(VDISK_BIN) + " info --output json " + sh_quote(vmdk)));
  CHECK(at(info, "allocated_bytes").as_u64() == qemu_data);
  const std::string rep = dir / "r.json";
  run_ok(std::string(VDISK_BIN) + " hash --hash-file " + sh_quote(rep) + " " + sh_quote(vmdk));
  Json h = read_json(rep);
  CHECK(at(at(h, "source"), "allocated_bytes").as_u64() == qemu_data);

  const std::string rep2 = dir / "c.json", out = dir / "o.vmdk";
  RunResult conv = run_vdisk("convert -O vmdk --hash-file " + sh_quote(rep2) + " " +
                             sh_quote(vmdk) + " " + sh_quote(out));
  REQUIRE(conv.exit_code == 0);
  Json c = read_json(rep2);
  CHECK(at(at(c, "source"), "allocated_bytes").as_u64() == qemu_data);
  uint64_t out_data = 0;
  for (const MapRun& m : qemu_map_runs(out))
    if (m.type == "data" && m.depth == 0) out_data += m.length;
  CHECK(at(at(c, "destination"), "allocated_bytes").as_u64() == out_data);

  // A fully preallocated output is allocated whole, and the summary says so.
  const std::string full = dir / "full.vhdx";
  RunResult pre =
      run_vdisk("convert -O vhdx -o preallocation=full " + sh_quote(vmdk) + " " + sh_quote(full));
  INFO(pre.out << pre.err);
  REQUIRE(pre.exit_code == 0);
  CHECK_THAT(pre.out, !Catch::Contains("unallocated"));
  CHECK_THAT(pre.out, Catch::Contains("8 MiB (8388608 bytes) allocated in the output"));
  Json fi = Json::parse(run_ok(std::string(VDISK_BIN) + " info --output json " + sh_quote(full)));
  CHECK(at(fi, "allocated_bytes").as_u64() == 8 * kMiB);
}

TEST_CASE("info shows the partition table as sgdisk and sfdisk wrote it",
          "[cli][newcomer][partition]") {
  require_tool("sgdisk");
  require_tool("sfdisk");
  require_tool("mkfs.fat");
  require_tool("mkfs.ext4");
  TempDir dir;
  const std::string gpt = dir / "gpt.img";
  run_ok("truncate -s 64M " + sh_quote(gpt));
  run_ok(
      "sgdisk -o -n 1:2048:+16M -t 1:ef00 -c 1:ESP -n 2:0:+20M -t 2:8300 -c 2:rootfs "
      "-n 3:0:+4M -t 3:8200 " +
      sh_quote(gpt) + " >/dev/null");
  run_ok("mkfs.fat -F 16 --offset=2048 " + sh_quote(gpt) + " 16384 >/dev/null");
  const std::string p2 = run_ok("sgdisk -i 2 " + sh_quote(gpt));
  const uint64_t p2_first = std::stoull(p2.substr(p2.find("First sector: ") + 14));
  run_ok("mkfs.ext4 -q -F -E offset=" + std::to_string(p2_first * 512) + " " + sh_quote(gpt) +
         " 20M");

  Json info = Json::parse(run_ok(std::string(VDISK_BIN) + " info --output json " + sh_quote(gpt)));
  const Json& t = at(info, "partition_table");
  CHECK(at(t, "scheme").as_string() == "gpt");
  const std::string listing = run_ok("sgdisk -p " + sh_quote(gpt));
  const size_t gid = listing.find("Disk identifier (GUID): ");
  REQUIRE(gid != std::string::npos);
  CHECK(at(t, "disk_guid").as_string() == listing.substr(gid + 24, 36));
  const Json::Array& parts = at(t, "partitions").as_array();
  REQUIRE(parts.size() == 3);
  const char* contents[] = {"FAT16", "ext4", nullptr};
  for (size_t i = 0; i < 3; ++i) {
    INFO("partition " << i + 1);
    const std::string s = run_ok("sgdisk -i " + std::to_string(i + 1) + " " + sh_quote(gpt));
    auto field = [&](const std::string& name) {
      const size_t p = s.find(name + ": ");
      REQUIRE(p != std::string::npos);
      const std::string rest = s.substr(p + name.size() + 2);
      return rest.substr(0, rest.find('\n'));
    };
    const Json& p = parts[i];
    CHECK(at(p, "number").as_u64() == i + 1);
    CHECK(at(p, "start").as_u64() == std::stoull(field("First sector")) * 512);
    CHECK(at(p, "size").as_u64() ==
          (std::stoull(field("Last sector")) - std::stoull(field("First sector")) + 1) * 512);
    const std::string code = field("Partition GUID code");  // "GUID (name)"
    CHECK(at(p, "type_code").as_string() == code.substr(0, 36));
    CHECK("(" + at(p, "type_name").as_string() + ")" == code.substr(37));
    CHECK(at(p, "guid").as_string() == field("Partition unique GUID"));
    CHECK("'" + at(p, "label").as_string() + "'" == field("Partition name"));
    if (contents[i]) {
      CHECK(at(p, "contents").as_string() == contents[i]);
    } else {
      CHECK(at(p, "contents").is_null());
    }
  }
  RunResult human = run_vdisk("info " + sh_quote(gpt));
  // Partition lines wrap to 80 columns, continued with 6 spaces: unwrap.
  for (size_t at_nl; (at_nl = human.out.find("\n      ")) != std::string::npos;)
    human.out.replace(at_nl, 7, " ");
  CHECK_THAT(human.out,
             Catch::Contains("partition table: GPT, disk GUID " + at(t, "disk_guid").as_string()));
  CHECK_THAT(human.out,
             Catch::Contains("type Linux filesystem (0FC63DAF-8483-4772-8E79-3D69D8477DE4)"));
  CHECK_THAT(human.out, Catch::Contains("label \"rootfs\""));
  CHECK_THAT(human.out, Catch::Contains("holds ext4"));

  // MBR with a logical partition, as sfdisk writes it.
  const std::string mbr = dir / "mbr.img";
  run_ok("truncate -s 32M " + sh_quote(mbr));
  run_ok(
      "printf 'label: dos\\nlabel-id: 0x1234abcd\\nstart=2048, size=8192, type=c, bootable\\n"
      "start=10240, type=5\\nstart=12288, size=8192, type=83\\n' | sfdisk -q " +
      sh_quote(mbr));
  run_ok("mkfs.fat --offset=2048 " + sh_quote(mbr) + " 4096 >/dev/null");
  Json mi = Json::parse(run_ok(std::string(VDISK_BIN) + " info --output json " + sh_quote(mbr)));
  const Json& mt = at(mi, "partition_table");
  CHECK(at(mt, "scheme").as_string() == "mbr");
  CHECK(at(mt, "disk_signature").as_string() ==
        first_line(run_ok("sfdisk --disk-id " + sh_quote(mbr))));
  // sfdisk's own JSON dump is the oracle for numbers, starts, sizes, types.
  Json sf = Json::parse(run_ok("sfdisk --json " + sh_quote(mbr)));
  const Json::Array& want = at(at(sf, "partitiontable"), "partitions").as_array();
  const Json::Array& got = at(mt, "partitions").as_array();
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO(want[i].dump());
    const std::string node = at(want[i], "node").as_string();
    CHECK(node.substr(node.size() - std::to_string(at(got[i], "number").as_u64()).size()) ==
          std::to_string(at(got[i], "number").as_u64()));
    CHECK(at(got[i], "start").as_u64() == at(want[i], "start").as_u64() * 512);
    CHECK(at(got[i], "size").as_u64() == at(want[i], "size").as_u64() * 512);
    CHECK(at(got[i], "type_code").as_string() ==
          "0x" + std::string(at(want[i], "type").as_string().size() == 1 ? "0" : "") +
              at(want[i], "type").as_string());
    const Json* boot = want[i].find("bootable");
    CHECK(at(got[i], "bootable").as_bool() == (boot && boot->as_bool()));
  }
  CHECK(at(got[0], "type_name").as_string() == "W95 FAT32 (LBA)");
  CHECK_THAT(at(got[0], "contents").as_string(), Catch::StartsWith("FAT"));
  CHECK(at(got[1], "kind").as_string() == "extended");
  CHECK(at(got[2], "kind").as_string() == "logical");
  CHECK(at(got[2], "contents").is_null());
}
