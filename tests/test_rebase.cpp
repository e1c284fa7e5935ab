// vdisk rebase and commit on qcow2 chains made by qemu-img and written by
// qemu-io, judged by QEMU: `qemu-img compare` against the guest content
// before (rendered by qemu-img convert), `qemu-img check` clean, `qemu-img
// info` naming the new backing file, and the same operation done by
// qemu-img rebase / qemu-img commit on a copy giving the same content.
#include <catch2/catch.hpp>

#include "formats/core/json.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

void qemu_io(const std::string& img, const std::string& cmds) {
  run_ok("qemu-io " + cmds + " " + sh_quote(img));
}

std::string render(const std::string& img) {
  const std::string raw = img + ".render.raw";
  run_ok("qemu-img convert -O raw " + sh_quote(img) + " " + sh_quote(raw));
  return raw;
}

void same_content(const std::string& raw, const std::string& img) {
  RunResult r = run("qemu-img compare -f raw " + sh_quote(raw) + " " + sh_quote(img));
  INFO("qemu-img compare " << raw << " " << img << ": " << r.out << r.err);
  CHECK(r.exit_code == 0);
}

void check_clean(const std::string& img) {
  RunResult r = run("qemu-img check " + sh_quote(img));
  INFO("qemu-img check " << img << ":\n" << r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("leaked") == std::string::npos);
}

std::string backing_of(const std::string& img) {
  const Json j = Json::parse(run_ok("qemu-img info --output json " + sh_quote(img)));
  const Json* b = j.find("backing-filename");
  return b ? b->as_string() : "";
}

// base (A at 0 and 3M) <- mid (B at 1M) <- top (C at 2M, zeroes 3M); newbase
// with other bytes at 0 and 1M.
struct Chain {
  explicit Chain(const TempDir& dir) {
    run_ok("cd " + sh_quote(dir.path()) +
           " && qemu-img create -q -f qcow2 base.qcow2 8M"
           " && qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 mid.qcow2"
           " && qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2"
           " && qemu-img create -q -f qcow2 newbase.qcow2 8M");
    qemu_io(dir / "base.qcow2", "-c 'write -P 0xa1 0 256k' -c 'write -P 0xa2 3M 128k'");
    qemu_io(dir / "mid.qcow2", "-c 'write -P 0xb1 1M 64k'");
    qemu_io(dir / "top.qcow2", "-c 'write -P 0xc1 2M 64k' -c 'write -z 3M 64k'");
    qemu_io(dir / "newbase.qcow2", "-c 'write -P 0xd1 0 128k' -c 'write -P 0xa1 128k 128k'");
  }
};

}  // namespace

TEST_CASE("rebase: safe rebase keeps the guest content, as qemu-img rebase does", "[rebase]") {
  require_tool("qemu-img");
  require_tool("qemu-io");
  TempDir dir;
  Chain chain(dir);
  const std::string top = dir / "top.qcow2";
  const std::string before = render(top);
  run_ok("cp " + sh_quote(top) + " " + sh_quote(dir / "qtop.qcow2"));

  RunResult r = run_vdisk("rebase -b newbase.qcow2 -F qcow2 " + sh_quote(top));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(backing_of(top) == "newbase.qcow2");
  same_content(before, top);
  check_clean(top);

  run_ok("cd " + sh_quote(dir.path()) +
         " && qemu-img rebase -q -b newbase.qcow2 -F qcow2 qtop.qcow2");
  RunResult cmp = run("qemu-img compare " + sh_quote(top) + " " + sh_quote(dir / "qtop.qcow2"));
  INFO(cmp.out << cmp.err);
  CHECK(cmp.exit_code == 0);
}

TEST_CASE("rebase: -b '' makes the child stand alone with the same content", "[rebase]") {
  require_tool("qemu-img");
  require_tool("qemu-io");
  TempDir dir;
  Chain chain(dir);
  const std::string top = dir / "top.qcow2";
  const std::string before = render(top);
  RunResult r = run_vdisk("rebase -b '' " + sh_quote(top));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(backing_of(top).empty());
  run_ok("rm " + sh_quote(dir / "base.qcow2") + " " + sh_quote(dir / "mid.qcow2"));
  same_content(before, top);
  check_clean(top);
}

TEST_CASE("rebase: -u names a moved parent without copying", "[rebase]") {
  require_tool("qemu-img");
  require_tool("qemu-io");
  TempDir dir;
  Chain chain(dir);
  const std::string top = dir / "top.qcow2";
  const std::string before = render(top);
  const auto size_before = file_size(top);
  run_ok("mv " + sh_quote(dir / "mid.qcow2") + " " + sh_quote(dir / "moved-mid.qcow2"));
  RunResult r = run_vdisk("rebase -u -b moved-mid.qcow2 -F qcow2 " + sh_quote(top));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(backing_of(top) == "moved-mid.qcow2");
  CHECK(file_size(top) == size_before);
  same_content(before, top);
  check_clean(top);
}

TEST_CASE("commit: the child's data goes into its parent, as qemu-img commit does",
          "[rebase][commit]") {
  require_tool("qemu-img");
  require_tool("qemu-io");
  TempDir dir;
  Chain chain(dir);
  const std::string top = dir / "top.qcow2";
  const std::string mid = dir / "mid.qcow2";
  const std::string before = render(top);
  run_ok("cp " + sh_quote(top) + " " + sh_quote(dir / "qtop.qcow2") + " && cp " + sh_quote(mid) +
         " " + sh_quote(dir / "qmid.qcow2"));
  run_ok("cd " + sh_quote(dir.path()) +
         " && qemu-img rebase -u -q -b qmid.qcow2 -F qcow2 qtop.qcow2");

  RunResult r = run_vdisk("commit " + sh_quote(top));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  same_content(before, mid);  // mid over base now reads as top did
  same_content(before, top);  // and top still does
  check_clean(mid);

  run_ok("qemu-img commit -q -d " + sh_quote(dir / "qtop.qcow2"));
  RunResult cmp = run("qemu-img compare " + sh_quote(mid) + " " + sh_quote(dir / "qmid.qcow2"));
  INFO(cmp.out << cmp.err);
  CHECK(cmp.exit_code == 0);
}

TEST_CASE("commit: a unit is written and counted once however many extents of the child it holds",
          "[rebase][commit]") {
  require_tool("qemu-img");
  require_tool("qemu-io");
  TempDir dir;
  // A child with subclusters (extended L2: 32 of 2 KiB per 64 KiB cluster):
  // two writes 8 KiB apart leave two allocated runs inside cluster 0 and two
  // inside cluster 2, while the parent's unit is its 64 KiB cluster.
  run_ok("cd " + sh_quote(dir.path()) +
         " && qemu-img create -q -f qcow2 base.qcow2 4M"
         " && qemu-img create -q -f qcow2 -o extended_l2=on -b base.qcow2 -F qcow2 top.qcow2");
  qemu_io(dir / "base.qcow2", "-c 'write -P 0xa1 0 1M'");
  qemu_io(dir / "top.qcow2",
          "-c 'write -P 0xc1 0 4k' -c 'write -P 0xc2 8k 4k' -c 'write -P 0xc3 128k 2k' "
          "-c 'write -P 0xc4 160k 2k'");
  const std::string before = render(dir / "top.qcow2");
  RunResult r = run_vdisk("commit " + sh_quote(dir / "top.qcow2"));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  // Clusters 0 and 2 of base.qcow2 (64 KiB each, qemu-img's default).
  CHECK_THAT(r.out, Catch::Contains(": 131072 bytes committed into"));
  same_content(before, dir / "base.qcow2");
  check_clean(dir / "base.qcow2");
}

TEST_CASE("commit: into a raw parent", "[rebase][commit]") {
  require_tool("qemu-img");
  require_tool("qemu-io");
  TempDir dir;
  run_ok("cd " + sh_quote(dir.path()) +
         " && qemu-img create -q -f raw base.raw 4M"
         " && qemu-img create -q -f qcow2 -b base.raw -F raw child.qcow2");
  qemu_io(dir / "base.raw", "-f raw -c 'write -P 0x11 0 1M'");
  qemu_io(dir / "child.qcow2", "-c 'write -P 0x22 512k 64k' -c 'write -z 3M 64k'");
  const std::string before = render(dir / "child.qcow2");
  RunResult r = run_vdisk("commit " + sh_quote(dir / "child.qcow2"));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  RunResult cmp = run("cmp " + sh_quote(before) + " " + sh_quote(dir / "base.raw"));
  INFO(cmp.out << cmp.err);
  CHECK(cmp.exit_code == 0);
}

TEST_CASE("rebase/commit: formats not done are refused by name", "[rebase]") {
  require_tool("qemu-img");
  require_tool("gzip");
  TempDir dir;
  // A gzip-compressed raw image is read, never written in place.
  run_ok("cd " + sh_quote(dir.path()) +
         " && truncate -s 4M base.raw && gzip -k base.raw"
         " && qemu-img create -q -f vhdx base.vhdx 4M"
         " && qemu-img create -q -f qcow2 -b base.raw.gz -F raw child.qcow2 4M"
         " && qemu-img create -q -f vhdx other.vhdx 4M");
  const auto before = read_file(dir / "base.raw.gz");
  RunResult r = run_vdisk("rebase -b other.vhdx " + sh_quote(dir / "base.raw.gz"));
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("rebasing gzip images is not supported (formats that rebase: ") !=
        std::string::npos);
  r = run_vdisk("commit " + sh_quote(dir / "child.qcow2"));
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("committing into gzip images is not supported") != std::string::npos);
  CHECK(read_file(dir / "base.raw.gz") == before);
  // A stand-alone image has no parent to commit into.
  r = run_vdisk("commit " + sh_quote(dir / "base.vhdx"));
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("has no parent") != std::string::npos);
}
