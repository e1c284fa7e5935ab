// Children of VHD, VDI, VMDK and VHDX images: vdisk create -b (and convert
// -o backing_file=), rebase and commit. The guest content expected is built
// here byte by byte (base.raw, mod.raw, newbase.raw), never by vdisk.
// Judges: for VMDK, QEMU both ways (qemu-img compare/check/info on what we
// write, qemu-img commit/rebase as the comparison). QEMU opens no
// differencing VHD or VDI: tests/tools/chain_fields.py, a reader written
// from the specifications, checks the identity fields we write and
// flattens the chain on its own; qemu-img judges the stand-alone results
// (a committed parent, a child rebased onto nothing) and vdisk convert -O
// raw is compared with the expected bytes too.
#include <algorithm>
#include <catch2/catch.hpp>
#include <functional>

#include "formats/core/file.h"
#include "formats/core/json.h"
#include "formats/registry.h"
#include "tests/support/fault_support.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kKiB = 1 << 10;
constexpr uint64_t kSize = 8 * kMiB;

std::string tool() {
  require_tool("python3");
  return std::string("python3 ") + VDISK_SOURCE_DIR + "/tests/tools/chain_fields.py";
}

Json fields(const std::string& img) {
  return Json::parse(run_ok(tool() + " fields " + sh_quote(img)));
}

// Flattens child..base with the independent reader and compares with `raw`.
void flattens_to(const std::string& raw, const std::vector<std::string>& chain) {
  std::string args;
  for (const auto& p : chain) args += " " + sh_quote(p);
  const std::string out = chain.front() + ".flat";
  RunResult r = run(tool() + " flatten " + sh_quote(out) + args);
  INFO("chain_fields flatten" << args << ": " << r.err);
  REQUIRE(r.exit_code == 0);
  RunResult c = run("cmp " + sh_quote(raw) + " " + sh_quote(out));
  INFO("cmp " << raw << " " << out << ": " << c.out << c.err);
  CHECK(c.exit_code == 0);
}

// vdisk's own flattening, compared with the expected bytes by cmp.
void vdisk_reads(const std::string& raw, const std::string& img) {
  const std::string out = img + ".vdisk.raw";
  run_ok("rm -f " + sh_quote(out));
  RunResult r = run_vdisk("convert -O raw " + sh_quote(img) + " " + sh_quote(out));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  RunResult c = run("cmp " + sh_quote(raw) + " " + sh_quote(out));
  INFO("cmp " << raw << " " << out << ": " << c.out << c.err);
  CHECK(c.exit_code == 0);
}

void qemu_same(const std::string& raw, const std::string& img, const std::string& fmt) {
  RunResult r =
      run("qemu-img compare -f raw -F " + fmt + " " + sh_quote(raw) + " " + sh_quote(img));
  INFO("qemu-img compare " << raw << " " << img << ": " << r.out << r.err);
  CHECK(r.exit_code == 0);
}

int64_t mtime(const std::string& path) {
  return std::stoll(run_ok("stat -c %Y " + sh_quote(path)));
}

// base.raw: data at [0,1M), [3M,3.5M), [6M,8M). mod.raw: base with 4 KiB
// written into a hole at 1M+4K, 64 KiB of zeros over data at 3M, 64 KiB
// rewritten at 6M+100K and [7M,8M) zeroed. newbase.raw: base with other
// bytes at [0,64K) and zeros at [6M,6M+64K).
struct Raws {
  explicit Raws(const TempDir& dir)
      : base(dir / "base.raw"), mod(dir / "mod.raw"), newbase(dir / "newbase.raw") {
    for (const std::string& p : {base, mod, newbase}) {
      run_ok("truncate -s " + std::to_string(kSize) + " " + sh_quote(p));
      write_at(p, 0, pattern_bytes(kMiB, 1));
      write_at(p, 3 * kMiB, pattern_bytes(512 * kKiB, 2));
      write_at(p, 6 * kMiB, pattern_bytes(2 * kMiB, 3));
    }
    write_at(mod, kMiB + 4 * kKiB, pattern_bytes(4 * kKiB, 4));
    write_at(mod, 3 * kMiB, std::vector<uint8_t>(64 * kKiB, 0));
    write_at(mod, 6 * kMiB + 100 * kKiB, pattern_bytes(64 * kKiB, 5));
    write_at(mod, 7 * kMiB, std::vector<uint8_t>(kMiB, 0));
    write_at(newbase, 0, pattern_bytes(64 * kKiB, 6));
    write_at(newbase, 6 * kMiB, std::vector<uint8_t>(64 * kKiB, 0));
  }
  std::string base, mod, newbase;
};

// In `dir`: base.FMT from base.raw, child.FMT over it holding mod.raw
// (written by vdisk convert -o backing_file=base.FMT), newbase.FMT.
void make_chain(const TempDir& dir, const Raws& raws, const std::string& fmt) {
  for (const auto& [raw, img] :
       {std::pair{raws.base, "base." + fmt}, std::pair{raws.newbase, "newbase." + fmt}}) {
    RunResult r = run_vdisk("convert -O " + fmt + " " + sh_quote(raw) + " " + sh_quote(dir / img));
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
  }
  RunResult r = run_vdisk("convert -O " + fmt + " -o backing_file=base." + fmt + " " +
                          sh_quote(raws.mod) + " " + sh_quote(dir / ("child." + fmt)));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
}

// vdisk create -O FMT -b base.FMT: a child that stores nothing (`count_key`
// of its fields is 0) and reads as base.raw.
void empty_child(const TempDir& dir, const Raws& raws, const std::string& fmt,
                 const std::string& count_key) {
  const std::string img = dir / ("empty." + fmt);
  RunResult r = run_vdisk("create -O " + fmt + " -b base." + fmt + " " + sh_quote(img));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(fields(img).find(count_key)->as_u64() == 0);
  flattens_to(raws.base, {img, dir / ("base." + fmt)});
}

}  // namespace

TEST_CASE("chains: a VHD child records its parent as the specification says", "[chains][vhd]") {
  require_tool("qemu-img");
  TempDir dir;
  Raws raws(dir);
  make_chain(dir, raws, "vhd");
  qemu_same(raws.base, dir / "base.vhd", "vpc");
  const Json base = fields(dir / "base.vhd");
  const Json child = fields(dir / "child.vhd");
  INFO(child.dump());
  CHECK(child.find("disk_type")->as_u64() == 4);
  CHECK(child.find("parent_unique_id")->as_string() == base.find("unique_id")->as_string());
  CHECK(child.find("parent_timestamp_unix")->as_i64() == mtime(dir / "base.vhd"));
  CHECK(child.find("parent_name")->as_string() == "base.vhd");
  const auto& locs = child.find("locators")->as_array();
  REQUIRE(locs.size() == 2);
  CHECK(locs[0].find("code")->as_string() == "W2ru");
  CHECK(locs[0].find("text")->as_string() == ".\\base.vhd");
  CHECK(locs[1].find("code")->as_string() == "W2ku");
  const std::string abs = locs[1].find("text")->as_string();
  CHECK(abs.size() > 10);
  CHECK(abs.substr(abs.size() - 9) == "\\base.vhd");
  // 2 MiB blocks: [0,2M), [2M,4M), [6M,8M) differ from the parent.
  CHECK(child.find("allocated_blocks")->as_u64() == 3);
  CHECK(locs[0].find("space")->as_u64() == 1);  // sectors (spec "Parent Locator Entry")
  flattens_to(raws.mod, {dir / "child.vhd", dir / "base.vhd"});
  vdisk_reads(raws.mod, dir / "child.vhd");
  CHECK(run_vdisk("check " + sh_quote(dir / "child.vhd")).exit_code == 0);

  // create -b: nothing stored, the parent's content.
  empty_child(dir, raws, "vhd", "allocated_blocks");
  CHECK(fields(dir / "empty.vhd").find("disk_type")->as_u64() == 4);
  // The independent reader refuses a wrong parent: the check can fail.
  RunResult wrong = run(tool() + " flatten " + sh_quote(dir / "x.raw") + " " +
                        sh_quote(dir / "empty.vhd") + " " + sh_quote(dir / "newbase.vhd"));
  CHECK(wrong.exit_code == 1);
}

TEST_CASE("chains: VHD commit writes the child into its parent", "[chains][vhd][commit]") {
  require_tool("qemu-img");
  TempDir dir;
  Raws raws(dir);
  make_chain(dir, raws, "vhd");
  RunResult r = run_vdisk("commit " + sh_quote(dir / "child.vhd"));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  qemu_same(raws.mod, dir / "base.vhd", "vpc");
  flattens_to(raws.mod, {dir / "base.vhd"});
  flattens_to(raws.mod, {dir / "child.vhd", dir / "base.vhd"});
  CHECK(run_vdisk("check " + sh_quote(dir / "base.vhd")).exit_code == 0);
}

TEST_CASE("chains: VHD rebase, safe, unsafe and onto nothing", "[chains][vhd][rebase]") {
  require_tool("qemu-img");
  TempDir dir;
  Raws raws(dir);
  make_chain(dir, raws, "vhd");
  const std::string child = dir / "child.vhd";
  RunResult r = run_vdisk("rebase -b newbase.vhd " + sh_quote(child));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  Json f = fields(child);
  CHECK(f.find("parent_unique_id")->as_string() ==
        fields(dir / "newbase.vhd").find("unique_id")->as_string());
  CHECK(f.find("parent_name")->as_string() == "newbase.vhd");
  CHECK(f.find("locators")->as_array()[0].find("text")->as_string() == ".\\newbase.vhd");
  flattens_to(raws.mod, {child, dir / "newbase.vhd"});
  vdisk_reads(raws.mod, child);

  // -u: the parent moved; only the names change.
  run_ok("mv " + sh_quote(dir / "newbase.vhd") + " " + sh_quote(dir / "moved.vhd"));
  r = run_vdisk("rebase -u -b moved.vhd " + sh_quote(child));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  f = fields(child);
  CHECK(f.find("locators")->as_array()[0].find("text")->as_string() == ".\\moved.vhd");
  flattens_to(raws.mod, {child, dir / "moved.vhd"});
  vdisk_reads(raws.mod, child);

  // -b '': a dynamic disk QEMU reads alone.
  r = run_vdisk("rebase -b '' " + sh_quote(child));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(fields(child).find("disk_type")->as_u64() == 3);
  run_ok("rm " + sh_quote(dir / "moved.vhd") + " " + sh_quote(dir / "base.vhd"));
  qemu_same(raws.mod, child, "vpc");
}

TEST_CASE("chains: a VDI child links its parent's UUIDs", "[chains][vdi]") {
  require_tool("qemu-img");
  TempDir dir;
  Raws raws(dir);
  make_chain(dir, raws, "vdi");
  qemu_same(raws.base, dir / "base.vdi", "vdi");
  const Json base = fields(dir / "base.vdi");
  const Json child = fields(dir / "child.vdi");
  INFO(child.dump());
  CHECK(child.find("image_type")->as_u64() == 4);
  CHECK(child.find("uuid_linkage")->as_string() == base.find("uuid_create")->as_string());
  CHECK(child.find("uuid_parent_modify")->as_string() == base.find("uuid_modify")->as_string());
  // 1 MiB blocks: 1 and 3 and 6 differ; 7 is all zeros over parent data.
  CHECK(child.find("allocated_blocks")->as_u64() == 3);
  CHECK(child.find("zero_blocks")->as_u64() == 1);
  flattens_to(raws.mod, {dir / "child.vdi", dir / "base.vdi"});
  vdisk_reads(raws.mod, dir / "child.vdi");

  empty_child(dir, raws, "vdi", "allocated_blocks");
}

TEST_CASE("chains: VDI commit and rebase", "[chains][vdi][commit][rebase]") {
  require_tool("qemu-img");
  TempDir dir;
  Raws raws(dir);
  make_chain(dir, raws, "vdi");
  run_ok("cp " + sh_quote(dir / "child.vdi") + " " + sh_quote(dir / "child2.vdi"));
  RunResult r = run_vdisk("rebase -b newbase.vdi " + sh_quote(dir / "child2.vdi"));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(fields(dir / "child2.vdi").find("uuid_linkage")->as_string() ==
        fields(dir / "newbase.vdi").find("uuid_create")->as_string());
  flattens_to(raws.mod, {dir / "child2.vdi", dir / "newbase.vdi"});
  run_ok("rm " + sh_quote(dir / "child2.vdi"));

  r = run_vdisk("commit " + sh_quote(dir / "child.vdi"));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  qemu_same(raws.mod, dir / "base.vdi", "vdi");
  flattens_to(raws.mod, {dir / "base.vdi"});
  flattens_to(raws.mod, {dir / "child.vdi", dir / "base.vdi"});
  RunResult chk = run("qemu-img check -f vdi " + sh_quote(dir / "base.vdi"));
  INFO(chk.out << chk.err);
  CHECK(chk.exit_code == 0);

  r = run_vdisk("rebase -b '' " + sh_quote(dir / "child.vdi"));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(fields(dir / "child.vdi").find("image_type")->as_u64() == 1);
  qemu_same(raws.mod, dir / "child.vdi", "vdi");
}

TEST_CASE("chains: QEMU reads the VMDK snapshots vdisk writes", "[chains][vmdk]") {
  require_tool("qemu-img");
  TempDir dir;
  Raws raws(dir);
  run_ok("qemu-img convert -q -f raw -O vmdk " + sh_quote(raws.base) + " " +
         sh_quote(dir / "base.vmdk"));
  RunResult r = run_vdisk("convert -O vmdk -o backing_file=base.vmdk " + sh_quote(raws.mod) + " " +
                          sh_quote(dir / "child.vmdk"));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  const Json info =
      Json::parse(run_ok("qemu-img info --output json " + sh_quote(dir / "child.vmdk")));
  CHECK(info.find("backing-filename")->as_string() == "base.vmdk");
  qemu_same(raws.mod, dir / "child.vmdk", "vmdk");
  RunResult chk = run("qemu-img check " + sh_quote(dir / "child.vmdk"));
  INFO(chk.out << chk.err);
  CHECK(chk.exit_code == 0);
  // Only the grains that differ: 4K + 64K zeros + 64K (two grains, unaligned) + 1M of zeros.
  CHECK(file_size(dir / "child.vmdk") < 2 * kMiB);

  r = run_vdisk("create -O vmdk -b base.vmdk " + sh_quote(dir / "empty.vmdk"));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  qemu_same(raws.base, dir / "empty.vmdk", "vmdk");
  CHECK(run("qemu-img check " + sh_quote(dir / "empty.vmdk")).exit_code == 0);
}

TEST_CASE("chains: VMDK commit and rebase on QEMU's snapshots; commit as qemu-img commit does",
          "[chains][vmdk][commit][rebase]") {
  require_tool("qemu-img");
  require_tool("qemu-io");
  TempDir dir;
  Raws raws(dir);
  // Two identical chains made by QEMU: one for vdisk, one for qemu-img commit
  // (qemu-img rebase does not change a VMDK's backing file: "Operation not
  // supported", so the rebase is judged by content alone).
  for (const std::string p : {"", "q"}) {
    run_ok("cd " + sh_quote(dir.path()) + " && qemu-img convert -q -f raw -O vmdk base.raw " + p +
           "base.vmdk && qemu-img create -q -f vmdk -b " + p + "base.vmdk -F vmdk " + p +
           "child.vmdk");
    run_ok(
        "qemu-io -f vmdk -c 'write -P 0x5c 1028k 4k' -c 'write -z 3M 64k'"
        " -c 'write -P 0x6d 6244k 64k' " +
        sh_quote(dir / (p + "child.vmdk")));
  }
  run_ok("cd " + sh_quote(dir.path()) +
         " && qemu-img convert -q -f raw -O vmdk newbase.raw newbase.vmdk"
         " && cp child.vmdk rchild.vmdk");
  const std::string expect = dir / "expect.raw";
  run_ok("qemu-img convert -f vmdk -O raw " + sh_quote(dir / "child.vmdk") + " " +
         sh_quote(expect));
  vdisk_reads(expect, dir / "child.vmdk");  // we read QEMU's snapshot
  // rebase: safe onto newbase, then unsafe onto a moved copy.
  RunResult r = run_vdisk("rebase -b newbase.vmdk " + sh_quote(dir / "rchild.vmdk"));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  Json info = Json::parse(run_ok("qemu-img info --output json " + sh_quote(dir / "rchild.vmdk")));
  CHECK(info.find("backing-filename")->as_string() == "newbase.vmdk");
  qemu_same(expect, dir / "rchild.vmdk", "vmdk");
  CHECK(run("qemu-img check " + sh_quote(dir / "rchild.vmdk")).exit_code == 0);
  run_ok("cp " + sh_quote(dir / "newbase.vmdk") + " " + sh_quote(dir / "moved.vmdk"));
  r = run_vdisk("rebase -u -b moved.vmdk " + sh_quote(dir / "rchild.vmdk"));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  info = Json::parse(run_ok("qemu-img info --output json " + sh_quote(dir / "rchild.vmdk")));
  CHECK(info.find("backing-filename")->as_string() == "moved.vmdk");
  qemu_same(expect, dir / "rchild.vmdk", "vmdk");

  // commit, then the same by qemu-img commit on the copies.
  r = run_vdisk("commit " + sh_quote(dir / "child.vmdk"));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  qemu_same(expect, dir / "base.vmdk", "vmdk");
  RunResult chk = run("qemu-img check " + sh_quote(dir / "base.vmdk"));
  INFO(chk.out << chk.err);
  CHECK(chk.exit_code == 0);
  run_ok("qemu-img commit -q -d " + sh_quote(dir / "qchild.vmdk"));
  RunResult cmp =
      run("qemu-img compare " + sh_quote(dir / "base.vmdk") + " " + sh_quote(dir / "qbase.vmdk"));
  INFO(cmp.out << cmp.err);
  CHECK(cmp.exit_code == 0);
}

TEST_CASE("chains: refusals are one line, exit 2, nothing written", "[chains][hostile]") {
  require_tool("qemu-img");
  TempDir dir;
  Raws raws(dir);
  make_chain(dir, raws, "vhd");
  run_ok("cd " + sh_quote(dir.path()) +
         " && qemu-img create -q -f vpc -o subformat=dynamic,force_size=on small.vhd 4M");
  const auto before = read_file(dir / "child.vhd");
  auto refused = [&](const std::string& args, const std::string& what) {
    RunResult r = run_vdisk(args);
    INFO("vdisk " << args << ": " << r.out << r.err);
    CHECK(r.exit_code == 2);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK_THAT(r.err, Catch::Contains(what));
  };
  refused("rebase -b small.vhd " + sh_quote(dir / "child.vhd"), "of its own size");
  refused("rebase -u -b small.vhd " + sh_quote(dir / "child.vhd"), "of its own size");
  refused("rebase -b child.vhd " + sh_quote(dir / "child.vhd"), "its own parent");
  refused("commit " + sh_quote(dir / "base.vhd"), "has no parent");
  CHECK(read_file(dir / "child.vhd") == before);
  refused("create -O vhd -b missing.vhd " + sh_quote(dir / "c.vhd"), "missing.vhd");
  CHECK(!file_exists(dir / "c.vhd"));
  refused("create -O vhd --force -b child.vhd " + sh_quote(dir / "child.vhd"), "would overwrite");
  CHECK(read_file(dir / "child.vhd") == before);
  run_ok("cp " + sh_quote(raws.base) + " " + sh_quote(dir / "plain.raw"));
  refused("create -O vhd -b plain.raw " + sh_quote(dir / "c.vhd"), "its parent must be vhd");
  refused("create -O vdi -b base.vhd " + sh_quote(dir / "c.vdi"), "its parent must be vdi");
  CHECK(!file_exists(dir / "c.vhd"));
  CHECK(!file_exists(dir / "c.vdi"));
}

TEST_CASE("chains: a VHDX child over a QEMU-made parent", "[chains][vhdx]") {
  require_tool("qemu-img");
  TempDir dir;
  Raws raws(dir);
  run_ok("qemu-img convert -q -f raw -O vhdx " + sh_quote(raws.base) + " " +
         sh_quote(dir / "base.vhdx"));
  RunResult r = run_vdisk("convert -O vhdx -o backing_file=base.vhdx,block_size=1M " +
                          sh_quote(raws.mod) + " " + sh_quote(dir / "child.vhdx"));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  const Json base = fields(dir / "base.vhdx");
  const Json child = fields(dir / "child.vhdx");
  INFO(child.dump());
  CHECK(child.find("has_parent")->as_bool());
  CHECK(child.find("parent_locator_type")->as_string() == "{b04aefb7-d19e-4a81-b789-25b8e9445913}");
  CHECK(child.find("parent_locator_flags")->as_u64() == 4);  // IsRequired
  const Json* loc = child.find("parent_locator");
  CHECK(loc->find("parent_linkage")->as_string() == base.find("data_write_guid")->as_string());
  CHECK(loc->find("relative_path")->as_string() == ".\\base.vhdx");
  const std::string abs = loc->find("absolute_win32_path")->as_string();
  CHECK(abs.size() > 11);
  CHECK(abs.substr(abs.size() - 10) == "\\base.vhdx");
  // 1 MiB blocks 1, 3, 6 and 7 differ from the parent.
  CHECK(child.find("present_blocks")->as_u64() == 4);
  flattens_to(raws.mod, {dir / "child.vhdx", dir / "base.vhdx"});
  vdisk_reads(raws.mod, dir / "child.vhdx");

  empty_child(dir, raws, "vhdx", "present_blocks");
}

namespace {

// In `dir`: base.vhdx and newbase.vhdx made by qemu-img from base.raw and
// newbase.raw (1 MiB blocks; base.vhdx by vdisk as a fixed VHDX when
// `fixed_base`: QEMU's converted "fixed" VHDX leaves zero blocks
// unallocated), child.vhdx over base.vhdx holding mod.raw (vdisk, 1 MiB
// blocks: blocks 1, 3, 6 and 7 stored).
void make_vhdx_chain(const TempDir& dir, const Raws& raws, bool fixed_base = false) {
  if (fixed_base) {
    RunResult r = run_vdisk("convert -O vhdx -o subformat=fixed,block_size=1M " +
                            sh_quote(raws.base) + " " + sh_quote(dir / "base.vhdx"));
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    qemu_same(raws.base, dir / "base.vhdx", "vhdx");
  } else {
    run_ok("qemu-img convert -q -f raw -O vhdx -o block_size=1M " + sh_quote(raws.base) + " " +
           sh_quote(dir / "base.vhdx"));
  }
  run_ok("qemu-img convert -q -f raw -O vhdx -o block_size=1M " + sh_quote(raws.newbase) + " " +
         sh_quote(dir / "newbase.vhdx"));
  RunResult r = run_vdisk("convert -O vhdx -o backing_file=base.vhdx,block_size=1M " +
                          sh_quote(raws.mod) + " " + sh_quote(dir / "child.vhdx"));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
}

// Block `b` of the differencing VHDX `img` made partially present, its
// logical sectors [first, first + count) marked (by the independent tool).
void make_partial(const std::string& img, int b, int first, int count) {
  run_ok(tool() + " partial " + sh_quote(img) + " " + std::to_string(b) + " " +
         std::to_string(first) + " " + std::to_string(count));
}

// `raw` with the byte ranges `from_other` taken from `other`, into `out`.
std::string splice(const std::string& raw, const std::string& other,
                   const std::vector<std::pair<uint64_t, uint64_t>>& from_other,
                   const std::string& out) {
  std::vector<uint8_t> a = read_file(raw);
  const std::vector<uint8_t> b = read_file(other);
  for (const auto& [from, to] : from_other)
    std::copy(b.begin() + static_cast<ptrdiff_t>(from), b.begin() + static_cast<ptrdiff_t>(to),
              a.begin() + static_cast<ptrdiff_t>(from));
  write_file(out, a);
  return out;
}

std::string data_write_guid(const std::string& img) {
  return fields(img).find("data_write_guid")->as_string();
}

std::vector<uint64_t> block_states(const std::string& img) {
  const Json f = fields(img);
  std::vector<uint64_t> out;
  for (const Json& j : f.find("block_states")->as_array()) out.push_back(j.as_u64());
  return out;
}

constexpr const char* kNilGuid = "{00000000-0000-0000-0000-000000000000}";

}  // namespace

TEST_CASE("chains: VHDX commit into QEMU's dynamic and fixed parents", "[chains][vhdx][commit]") {
  require_tool("qemu-img");
  for (const std::string sub : {"dynamic", "fixed"}) {
    DYNAMIC_SECTION(sub) {
      TempDir dir;
      Raws raws(dir);
      make_vhdx_chain(dir, raws, sub == "fixed");
      const std::string base = dir / "base.vhdx", child = dir / "child.vhdx";
      const std::string old_guid = data_write_guid(base);
      const uint64_t old_size = file_size(base);
      RunResult r = run_vdisk("commit " + sh_quote(child));
      INFO(r.out << r.err);
      REQUIRE(r.exit_code == 0);
      RunResult chk = run("qemu-img check -f vhdx " + sh_quote(base));
      INFO(chk.out << chk.err);
      CHECK(chk.exit_code == 0);
      qemu_same(raws.mod, base, "vhdx");
      flattens_to(raws.mod, {base});
      const Json f = fields(base);
      INFO(f.dump());
      // 2.2.2: the guest data changed, so DataWriteGuid did; the log is empty.
      CHECK(f.find("data_write_guid")->as_string() != old_guid);
      CHECK(f.find("log_guid")->as_string() == kNilGuid);
      if (sub == "fixed") {
        CHECK(file_size(base) == old_size);  // written in place only
        CHECK(f.find("present_blocks")->as_u64() == 8);
      } else {
        // base.raw's blocks 0, 3, 6, 7 and the child's new block 1 (QEMU
        // stores zero blocks as PAYLOAD_BLOCK_ZERO).
        CHECK(block_states(base) == std::vector<uint64_t>{6, 6, 2, 6, 2, 2, 6, 6});
      }
      // The child names the old DataWriteGuid: refused until relinked.
      RunResult info = run_vdisk("info " + sh_quote(child));
      CHECK(info.exit_code == 2);
      CHECK_THAT(info.err, Catch::Contains("DataWriteGuid"));
      CHECK(run(tool() + " flatten " + sh_quote(dir / "x.raw") + " " + sh_quote(child) + " " +
                sh_quote(base))
                .exit_code == 1);
      r = run_vdisk("rebase -u -b base.vhdx " + sh_quote(child));
      INFO(r.out << r.err);
      REQUIRE(r.exit_code == 0);
      flattens_to(raws.mod, {child, base});
    }
  }
}

TEST_CASE("chains: VHDX rebase, safe, unsafe and onto nothing, over partially present blocks",
          "[chains][vhdx][rebase]") {
  require_tool("qemu-img");
  TempDir dir;
  Raws raws(dir);
  make_vhdx_chain(dir, raws);
  const std::string child = dir / "child.vhdx";
  // Block 6 keeps only its first 64 KiB; the rest is the parent's again.
  make_partial(child, 6, 0, 128);
  const std::string expect =
      splice(raws.mod, raws.base, {{6 * kMiB + 64 * kKiB, 7 * kMiB}}, dir / "expect.raw");
  flattens_to(expect, {child, dir / "base.vhdx"});
  vdisk_reads(expect, child);
  const std::string old_guid = data_write_guid(child);

  RunResult r = run_vdisk("rebase -b newbase.vhdx " + sh_quote(child));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  Json f = fields(child);
  INFO(f.dump());
  const Json* loc = f.find("parent_locator");
  CHECK(loc->find("parent_linkage")->as_string() == data_write_guid(dir / "newbase.vhdx"));
  CHECK(loc->find("relative_path")->as_string() == ".\\newbase.vhdx");
  const std::string abs = loc->find("absolute_win32_path")->as_string();
  CHECK(abs.substr(abs.size() - 13) == "\\newbase.vhdx");
  CHECK(f.find("parent_locator_flags")->as_u64() == 4);
  // Block 0 copied (newbase differs in its first 64 KiB), block 6 whole.
  CHECK(block_states(child) == std::vector<uint64_t>{6, 6, 0, 6, 0, 0, 6, 6});
  CHECK(f.find("data_write_guid")->as_string() != old_guid);
  CHECK(f.find("log_guid")->as_string() == kNilGuid);
  flattens_to(expect, {child, dir / "newbase.vhdx"});
  vdisk_reads(expect, child);
  CHECK(run_vdisk("check " + sh_quote(child)).exit_code == 0);

  // A dynamic VHDX (QEMU's, zero blocks PAYLOAD_BLOCK_ZERO) becomes a
  // differencing one over newbase, reading as before.
  const std::string alone_base = dir / "standalone.vhdx";
  run_ok("cp " + sh_quote(dir / "base.vhdx") + " " + sh_quote(alone_base));
  r = run_vdisk("rebase -b newbase.vhdx " + sh_quote(alone_base));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  f = fields(alone_base);
  CHECK(f.find("has_parent")->as_bool());
  CHECK(f.find("parent_locator")->find("parent_linkage")->as_string() ==
        data_write_guid(dir / "newbase.vhdx"));
  flattens_to(raws.base, {alone_base, dir / "newbase.vhdx"});
  vdisk_reads(raws.base, alone_base);

  // -u: the parent moved; only the locator changes.
  run_ok("mv " + sh_quote(dir / "newbase.vhdx") + " " + sh_quote(dir / "moved.vhdx"));
  r = run_vdisk("rebase -u -b moved.vhdx " + sh_quote(child));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  f = fields(child);
  CHECK(f.find("parent_locator")->find("relative_path")->as_string() == ".\\moved.vhdx");
  flattens_to(expect, {child, dir / "moved.vhdx"});

  // -u -b '' over a partially present block: the child alone, its unmarked
  // sectors zeros, a dynamic VHDX QEMU reads.
  make_partial(child, 3, 128, 128);
  r = run_vdisk("rebase -u -b '' " + sh_quote(child));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  f = fields(child);
  INFO(f.dump());
  CHECK(!f.find("has_parent")->as_bool());
  CHECK(f.find("parent_locator") == nullptr);
  CHECK(block_states(child) == std::vector<uint64_t>{6, 6, 0, 6, 0, 0, 6, 6});
  std::vector<uint8_t> alone(kSize, 0);
  const std::vector<uint8_t> e = read_file(expect);
  for (const auto& [from, to] : std::vector<std::pair<uint64_t, uint64_t>>{
           {0, 2 * kMiB}, {3 * kMiB + 64 * kKiB, 3 * kMiB + 128 * kKiB}, {6 * kMiB, 8 * kMiB}})
    std::copy(e.begin() + static_cast<ptrdiff_t>(from), e.begin() + static_cast<ptrdiff_t>(to),
              alone.begin() + static_cast<ptrdiff_t>(from));
  write_file(dir / "alone.raw", alone);
  RunResult chk = run("qemu-img check -f vhdx " + sh_quote(child));
  INFO(chk.out << chk.err);
  CHECK(chk.exit_code == 0);
  qemu_same(dir / "alone.raw", child, "vhdx");
  flattens_to(dir / "alone.raw", {child});
}

TEST_CASE("chains: VHDX safe rebase copies a block with two unmarked runs once",
          "[chains][vhdx][rebase]") {
  require_tool("qemu-img");
  TempDir dir;
  Raws raws(dir);
  make_vhdx_chain(dir, raws);
  const std::string child = dir / "child.vhdx";
  // Block 6 keeps [64K, 128K): its sectors before and after are two
  // unmarked runs of one block.
  make_partial(child, 6, 128, 128);
  const std::string expect = splice(
      raws.mod, raws.base, {{6 * kMiB, 6 * kMiB + 64 * kKiB}, {6 * kMiB + 128 * kKiB, 7 * kMiB}},
      dir / "expect.raw");
  flattens_to(expect, {child, dir / "base.vhdx"});
  RunResult r = run_vdisk("rebase -b newbase.vhdx " + sh_quote(child));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  // newbase differs from base in the first 64 KiB of blocks 0 and 6 (Raws),
  // and the child does not hold those wholly: two 1 MiB blocks copied.
  CHECK_THAT(r.out, Catch::Contains("; 2097152 bytes copied into the child"));
  CHECK(block_states(child)[6] == 6);
  flattens_to(expect, {child, dir / "newbase.vhdx"});
}

TEST_CASE("chains: VHDX commit into a differencing parent with partially present blocks",
          "[chains][vhdx][commit]") {
  require_tool("qemu-img");
  TempDir dir;
  Raws raws(dir);
  make_vhdx_chain(dir, raws);
  const std::string mid = dir / "child.vhdx", top = dir / "top.vhdx";
  // Block 3 keeps [64K, 128K) (mod's bytes there are base's), block 6 its
  // first 64 KiB; the rest of both is base's again.
  make_partial(mid, 3, 128, 128);
  make_partial(mid, 6, 0, 128);
  const std::string expect = splice(
      raws.mod, raws.base, {{3 * kMiB, 3 * kMiB + 64 * kKiB}, {6 * kMiB + 64 * kKiB, 7 * kMiB}},
      dir / "expect.raw");
  flattens_to(expect, {mid, dir / "base.vhdx"});
  // top over mid holds newbase.raw: what differs from mid's chain.
  RunResult r = run_vdisk("convert -O vhdx -o backing_file=child.vhdx,block_size=1M " +
                          sh_quote(raws.newbase) + " " + sh_quote(top));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  const std::string old_guid = data_write_guid(mid);
  r = run_vdisk("commit " + sh_quote(top));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  const Json f = fields(mid);
  INFO(f.dump());
  // Block 3 reads as newbase already: not written, still partial; block 6
  // was written whole and is fully present.
  CHECK(f.find("partial_blocks")->as_array().size() == 1);
  CHECK(f.find("partial_blocks")->as_array()[0].as_u64() == 3);
  CHECK(block_states(mid)[6] == 6);
  CHECK(f.find("data_write_guid")->as_string() != old_guid);
  flattens_to(raws.newbase, {mid, dir / "base.vhdx"});
  vdisk_reads(raws.newbase, mid);
  CHECK(run_vdisk("check " + sh_quote(mid)).exit_code == 0);
}

namespace {

// One in-place change of a VHDX in memory, stopped by a crash after `budget`
// writes (negative: none); returns the writes it asked for. The image's
// bytes are `original`, named `name` in a MemEnv; `change` drives the
// updater; the result is written to `cut`.
int crash_update(const std::vector<uint8_t>& original, const std::string& cut, int budget,
                 const std::function<void(ImageUpdater&, const BlockDevice&)>& change) {
  MemEnv env;
  env.add_file("image.vhdx", original);
  OpenOptions opts;
  opts.env = &env;
  std::shared_ptr<UpdateFile> shared(env.open_update("image.vhdx"));
  const FormatDescriptor* f = find_format("vhdx");
  REQUIRE(f);
  REQUIRE(f->update);
  BlockDevicePtr layer = f->open(shared, opts);
  Crash power{budget};
  CrashingFile crash(*shared, power);
  std::unique_ptr<ImageUpdater> u = f->update(crash, *layer);
  try {
    change(*u, *layer);
  } catch (const Error&) {
    // Past the crash the process would be gone: what it did next (a later
    // log entry refused over the pending one) does not count.
    if (power.steps <= budget || budget < 0) throw;
  }
  write_file(cut, *env.contents("image.vhdx"));
  return power.steps;
}

}  // namespace

TEST_CASE("chains: a crash at any write of a VHDX commit leaves each block old or new",
          "[chains][vhdx][commit][crash]") {
  require_tool("qemu-img");
  TempDir dir;
  Raws raws(dir);
  make_vhdx_chain(dir, raws);
  const std::vector<uint8_t> original = read_file(dir / "base.vhdx");
  const std::string old_guid = data_write_guid(dir / "base.vhdx");
  const std::vector<uint8_t> old_raw = read_file(raws.base), new_raw = read_file(raws.mod);
  // What vdisk commit writes: the child's stored blocks, from mod.raw.
  auto commit = [&](ImageUpdater& u, const BlockDevice&) {
    REQUIRE(u.granularity() == kMiB);
    for (uint64_t b : {1, 3, 6, 7}) u.write(b * kMiB, new_raw.data() + b * kMiB, kMiB);
    u.flush();
  };
  const std::string cut = dir / "cut.vhdx", flat = dir / "cut.flat", qemu = dir / "cut.qemu";
  int total = 0, pending = 0, fully_new = 0;
  for (int budget = 0;; ++budget) {
    total = crash_update(original, cut, budget, commit);
    INFO("crash after " << budget << " of " << total << " writes");
    const Json f = fields(cut);  // replays a pending log itself
    INFO(f.dump());
    if (f.find("log_replayed_entries")->as_u64() > 0) ++pending;
    run_ok(tool() + " flatten " + sh_quote(flat) + " " + sh_quote(cut));
    const std::vector<uint8_t> got = read_file(flat);
    REQUIRE(got.size() == kSize);
    bool any_new = false, all_new = true;
    for (uint64_t b = 0; b < kSize / kMiB; ++b) {
      const auto at = static_cast<ptrdiff_t>(b * kMiB);
      const bool is_old =
          std::equal(got.begin() + at, got.begin() + at + kMiB, old_raw.begin() + at);
      const bool is_new =
          std::equal(got.begin() + at, got.begin() + at + kMiB, new_raw.begin() + at);
      INFO("block " << b);
      CHECK((is_old || is_new));
      any_new |= is_new && !is_old;
      all_new &= is_new;
    }
    fully_new += all_new;
    // 2.2.2: no new data is visible under the old DataWriteGuid.
    if (any_new) CHECK(f.find("data_write_guid")->as_string() != old_guid);
    // QEMU replays the log (in place, on a copy) and must read the same.
    run_ok("cp " + sh_quote(cut) + " " + sh_quote(qemu));
    RunResult rep = run("qemu-img check -r all -f vhdx " + sh_quote(qemu));
    INFO(rep.out << rep.err);
    CHECK(rep.exit_code == 0);
    RunResult cmp = run("qemu-img compare -f raw -F vhdx " + sh_quote(flat) + " " + sh_quote(qemu));
    INFO(cmp.out << cmp.err);
    CHECK(cmp.exit_code == 0);
    vdisk_reads(flat, cut);
    run_ok("rm -f " + sh_quote(cut) + " " + sh_quote(qemu) + " " + sh_quote(flat));
    if (budget >= total) break;
  }
  CHECK(total >= 6);
  CHECK(pending >= 1);
  CHECK(fully_new >= 1);
}

TEST_CASE("chains: a crash at any write of a VHDX rebase leaves the old or the new parent",
          "[chains][vhdx][rebase][crash]") {
  require_tool("qemu-img");
  TempDir dir;
  Raws raws(dir);
  make_vhdx_chain(dir, raws);
  const std::string child = dir / "child.vhdx", base = dir / "base.vhdx",
                    newbase = dir / "newbase.vhdx";
  make_partial(child, 6, 0, 128);
  const std::string expect =
      splice(raws.mod, raws.base, {{6 * kMiB + 64 * kKiB, 7 * kMiB}}, dir / "expect.raw");
  const std::vector<uint8_t> original = read_file(child);
  const std::string new_guid = data_write_guid(newbase), old_guid = data_write_guid(base);
  OpenOptions opts;
  BlockDevicePtr old_chain = open_image(child, "vhdx", opts);
  BlockDevicePtr new_parent = open_image(newbase, "vhdx", opts);
  // What vdisk rebase does: every unit the child does not wholly store and
  // whose content differs under the new parent is copied in; then the name.
  auto rebase = [&](ImageUpdater& u, const BlockDevice& layer) {
    const uint64_t unit = u.granularity();
    std::vector<uint8_t> want(unit), have(unit);
    for (uint64_t at = 0; at < kSize; at += unit) {
      const Extent e = layer.block_status(at, unit);
      if (e.type != ExtentType::kUnallocated && e.length == unit) continue;
      old_chain->read(at, want.data(), unit);
      new_parent->read(at, have.data(), unit);
      if (want != have) u.write(at, want.data(), unit);
    }
    u.flush();
    u.set_parent("newbase.vhdx", "vhdx", new_parent->layers().front());
  };
  const std::string cut = dir / "cut.vhdx";
  int total = 0, pending = 0, on_new = 0, on_old = 0;
  for (int budget = 0;; ++budget) {
    total = crash_update(original, cut, budget, rebase);
    INFO("crash after " << budget << " of " << total << " writes");
    const Json f = fields(cut);
    INFO(f.dump());
    if (f.find("log_replayed_entries")->as_u64() > 0) ++pending;
    const std::string linkage = f.find("parent_locator")->find("parent_linkage")->as_string();
    CHECK((linkage == new_guid || linkage == old_guid));
    if (linkage == new_guid) {
      ++on_new;
      CHECK(f.find("parent_locator")->find("relative_path")->as_string() == ".\\newbase.vhdx");
    } else {
      ++on_old;
    }
    flattens_to(expect, {cut, linkage == new_guid ? newbase : base});
    vdisk_reads(expect, cut);
    run_ok("rm -f " + sh_quote(cut));
    if (budget >= total) break;
  }
  CHECK(total >= 6);
  CHECK(pending >= 2);  // the BAT entries, the locator
  CHECK(on_new >= 1);
  CHECK(on_old >= 1);
}

TEST_CASE("chains: VHDX refusals are one line, exit 2, nothing written",
          "[chains][vhdx][hostile]") {
  require_tool("qemu-img");
  TempDir dir;
  Raws raws(dir);
  make_vhdx_chain(dir, raws);
  run_ok("cd " + sh_quote(dir.path()) +
         " && qemu-img create -q -f vhdx small.vhdx 4M && cp base.raw plain.raw");
  const std::string child = dir / "child.vhdx";
  // An image whose log is pending: a commit into it stopped after the log
  // entry and the header naming it were written.
  const std::vector<uint8_t> base_bytes = read_file(dir / "base.vhdx");
  const std::vector<uint8_t> mod = read_file(raws.mod);
  const std::string pend = dir / "pending.vhdx";
  bool made = false;
  for (int budget = 0; !made; ++budget) {
    const int total =
        crash_update(base_bytes, pend, budget, [&](ImageUpdater& u, const BlockDevice&) {
          u.write(kMiB, mod.data() + kMiB, kMiB);
          u.flush();
        });
    made = fields(pend).find("log_replayed_entries")->as_u64() > 0;
    REQUIRE(budget < total);
  }
  const auto before = read_file(child), pend_before = read_file(pend);
  auto refused = [&](const std::string& args, const std::string& what) {
    RunResult r = run_vdisk(args);
    INFO("vdisk " << args << ": " << r.out << r.err);
    CHECK(r.exit_code == 2);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK_THAT(r.err, Catch::Contains(what));
  };
  refused("rebase -b small.vhdx " + sh_quote(child), "of its own size");
  refused("rebase -u -b small.vhdx " + sh_quote(child), "of its own size");
  refused("rebase -b child.vhdx " + sh_quote(child), "its own parent");
  refused("rebase -u -b plain.raw " + sh_quote(child),
          "names its parent by a VHDX's DataWriteGuid");
  refused("commit " + sh_quote(dir / "base.vhdx"), "has no parent");
  refused("rebase -b newbase.vhdx " + sh_quote(pend), "log holds entries not yet applied");
  refused("rebase -u -b newbase.vhdx " + sh_quote(pend), "log holds entries not yet applied");
  // A child over it reads (the log replayed in memory); committing into it
  // is refused.
  RunResult r = run_vdisk("create -O vhdx -b pending.vhdx " + sh_quote(dir / "over.vhdx"));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  refused("commit " + sh_quote(dir / "over.vhdx"), "log holds entries not yet applied");
  // (Not decomposed: Catch would print both files byte by byte.)
  CHECK((read_file(child) == before));
  CHECK((read_file(pend) == pend_before));
}
