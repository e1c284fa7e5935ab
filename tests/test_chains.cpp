// Children of VHD, VDI and VMDK images: vdisk create -b (and convert -o
// backing_file=), rebase and commit. The guest content expected is built
// here byte by byte (base.raw, mod.raw, newbase.raw), never by vdisk.
// Judges: for VMDK, QEMU both ways (qemu-img compare/check/info on what we
// write, qemu-img commit/rebase as the comparison). QEMU opens no
// differencing VHD or VDI: tests/tools/chain_fields.py, a reader written
// from the specifications, checks the identity fields we write and
// flattens the chain on its own; qemu-img judges the stand-alone results
// (a committed parent, a child rebased onto nothing) and vdisk convert -O
// raw is compared with the expected bytes too.
#include <catch2/catch.hpp>

#include "formats/core/json.h"
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

  // Not changed in place: refused by name, nothing written.
  const auto before = read_file(dir / "child.vhdx");
  r = run_vdisk("rebase -b base.vhdx " + sh_quote(dir / "child.vhdx"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("rebasing vhdx images is not supported"));
  r = run_vdisk("commit " + sh_quote(dir / "child.vhdx"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("committing into vhdx images is not supported"));
  CHECK(read_file(dir / "child.vhdx") == before);
}
