// qcow2 read and write, judged by QEMU: images made by qemu-img and qemu-io
// (every version, cluster size, compression, extended L2, backing chains,
// snapshots, external data files, dirty and corrupt marks) are read by vdisk
// and compared with `qemu-img convert -O raw` through sha256sum and with
// `qemu-img map`; every image vdisk writes must pass `qemu-img check` and
// `qemu-img compare` with its source.
#include <catch2/catch.hpp>
#include <cstring>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/json.h"
#include "formats/qcow2/qcow2_reader.h"
#include "formats/registry.h"
#include "tests/support/memory_bound.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

// Not a multiple of the 64 KiB cluster (whole sectors).
const uint64_t kDiskSize = 20ull * 1024 * 1024 + 512 * 5;

std::string vdisk_sha256(const std::string& image, const std::string& extra = "") {
  RunResult r = run_vdisk("hash " + extra + " " + sh_quote(image));
  INFO("vdisk hash " << image << ": " << r.err);
  REQUIRE(r.exit_code == 0);
  return parse_tagged_digest(r.out, "SHA256");
}

// sha256sum of qemu-img's raw rendering: the independent oracle.
std::string qemu_sha256(const std::string& image, const std::string& extra = "") {
  std::string raw = image + ".qemu-render.raw";
  run_ok("qemu-img convert " + extra + " -O raw " + sh_quote(image) + " " + sh_quote(raw));
  std::string h = coreutils_digest("sha256sum", raw);
  run_ok("rm -f " + sh_quote(raw));
  return h;
}

// `qemu-img check`: exit 0, and no leak, error or corruption reported.
void qemu_check_clean(const std::string& image) {
  RunResult r = run("qemu-img check " + sh_quote(image));
  INFO("qemu-img check " << image << ":\n" << r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("No errors were found") != std::string::npos);
  CHECK(r.out.find("leaked") == std::string::npos);
}

void qemu_compare_same(const std::string& a, const std::string& b) {
  RunResult r = run("qemu-img compare " + sh_quote(a) + " " + sh_quote(b));
  INFO("qemu-img compare " << a << " " << b << ": " << r.out << r.err);
  CHECK(r.exit_code == 0);
}

Json vdisk_info(const std::string& image, const std::string& extra = "") {
  RunResult r = run_vdisk("info --output json " + extra + " " + sh_quote(image));
  INFO("vdisk info " << image << ": " << r.err);
  REQUIRE(r.exit_code == 0);
  return Json::parse(r.out);
}

// Pokes `bytes` into the file at `offset`.
void poke(const std::string& path, uint64_t offset, const std::vector<uint8_t>& bytes) {
  write_at(path, offset, bytes);
}

std::vector<uint8_t> be64(uint64_t v) {
  std::vector<uint8_t> b(8);
  store_be64(b.data(), v);
  return b;
}

}  // namespace

TEST_CASE("qcow2: every kind of image qemu-img writes reads back identically, map included",
          "[qcow2]") {
  require_tool("qemu-img");
  TempDir dir;
  const std::string src = dir / "src.img";
  make_sample_disk(src, kDiskSize);
  const std::string want = coreutils_digest("sha256sum", src);
  struct Kind {
    std::string name, args;
    bool map;  // compare with qemu-img map
  };
  const std::vector<Kind> kinds = {
      {"v3", "", true},
      {"v2", "-o compat=0.10", true},
      {"c512", "-o cluster_size=512", true},
      {"c4k", "-o cluster_size=4k", true},
      {"c2m", "-o cluster_size=2M", true},
      {"ext-l2", "-o extended_l2=on,cluster_size=64k", true},
      {"refcount1", "-o refcount_bits=1", true},
      {"refcount64", "-o refcount_bits=64", true},
      {"zlib", "-c", true},
      {"zlib-v2", "-c -o compat=0.10,cluster_size=4k", true},
      {"zstd", "-c -o compression_type=zstd", true},
      {"prealloc-metadata", "-o preallocation=metadata", true},
  };
  for (const Kind& k : kinds) {
    INFO(k.name);
    const std::string img = dir / (k.name + ".qcow2");
    run_ok("qemu-img convert -f raw -O qcow2 " + k.args + " " + sh_quote(src) + " " +
           sh_quote(img));
    const std::string oracle = qemu_sha256(img);
    CHECK(oracle == want);
    CHECK(vdisk_sha256(img) == oracle);
    if (k.map) check_same_map(qemu_map_runs(img), vdisk_map_runs(img));
    Json info = vdisk_info(img);
    CHECK(info.find("format")->as_string() == "qcow2");
    CHECK(info.find("virtual_size")->as_u64() == kDiskSize);
  }
}

TEST_CASE("qcow2: a backing chain with zero clusters reads and maps like qemu-img", "[qcow2]") {
  require_tool("qemu-img");
  require_tool("qemu-io");
  TempDir dir;
  auto q = [&](const std::string& args) { run_ok("cd " + sh_quote(dir.path()) + " && " + args); };
  q("qemu-img create -q -f qcow2 base.qcow2 4M");
  q("qemu-io -f qcow2 -c 'write -P 1 0 192k' -c 'write -P 5 2M 128k' base.qcow2");
  q("qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 mid.qcow2");
  // A zeroed cluster over the base's data (the zero flag), and new data.
  q("qemu-io -f qcow2 -c 'write -P 2 1M 64k' -c 'write -z 64k 64k' -c 'write -P 6 2M 64k' "
    "mid.qcow2");
  // The top is larger than its parents and has a raw grandparent below all.
  q("qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2 6M");
  q("qemu-io -f qcow2 -c 'write -P 3 3M 64k' -c 'write -z 2M 32k' top.qcow2");
  for (const std::string name : {"top.qcow2", "mid.qcow2"}) {
    INFO(name);
    check_same_map(qemu_map_runs(dir / name), vdisk_map_runs(dir / name));
    CHECK(vdisk_sha256(dir / name) == qemu_sha256(dir / name));
  }
  Json info = vdisk_info(dir / "top.qcow2");
  REQUIRE(info.find("chain")->as_array().size() == 2);
  CHECK(info.find("details")->find("backing_file")->as_string() == "mid.qcow2");
  CHECK(info.find("details")->find("backing_format")->as_string() == "qcow2");

  // A raw backing file, named with its format; and one outside the folder,
  // refused unless --allow-outside-paths.
  run_ok("mkdir " + sh_quote(dir / "sub"));
  run_ok("head -c 1M /dev/urandom > " + sh_quote(dir / "b.raw"));
  q("qemu-img create -q -f qcow2 -b b.raw -F raw c.qcow2 1M");
  q("qemu-io -f qcow2 -c 'write -P 7 4k 4k' c.qcow2");
  CHECK(vdisk_sha256(dir / "c.qcow2") == qemu_sha256(dir / "c.qcow2"));
  q("qemu-img create -q -f qcow2 -b ../b.raw -F raw sub/d.qcow2 1M");
  RunResult r = run_vdisk("hash " + sh_quote(dir / "sub/d.qcow2"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("allow-outside-paths"));
  CHECK(vdisk_sha256(dir / "sub/d.qcow2", "--allow-outside-paths") ==
        qemu_sha256(dir / "sub/d.qcow2"));
}

TEST_CASE("qcow2: internal snapshots are listed and read with --snapshot", "[qcow2]") {
  require_tool("qemu-img");
  require_tool("qemu-io");
  TempDir dir;
  const std::string img = dir / "s.qcow2";
  run_ok("qemu-img create -q -f qcow2 " + sh_quote(img) + " 8M");
  run_ok("qemu-io -f qcow2 -c 'write -P 1 0 1M' " + sh_quote(img));
  run_ok("qemu-img snapshot -c first " + sh_quote(img));
  run_ok("qemu-io -f qcow2 -c 'write -P 2 512k 1M' -c 'write -z 0 64k' " + sh_quote(img));
  run_ok("qemu-img snapshot -c second " + sh_quote(img));
  run_ok("qemu-io -f qcow2 -c 'write -P 3 4M 64k' " + sh_quote(img));

  Json info = vdisk_info(img);
  const auto& snaps = info.find("details")->find("snapshots")->as_array();
  REQUIRE(snaps.size() == 2);
  CHECK(snaps[0].find("name")->as_string() == "first");
  CHECK(snaps[1].find("name")->as_string() == "second");
  CHECK(snaps[0].find("id")->as_string() == "1");
  CHECK(snaps[0].find("disk_size")->as_u64() == 8ull << 20);
  CHECK(!snaps[0].find("date")->as_string().empty());

  CHECK(vdisk_sha256(img) == qemu_sha256(img));
  CHECK(vdisk_sha256(img, "--snapshot first") == qemu_sha256(img, "-l snapshot.name=first"));
  CHECK(vdisk_sha256(img, "--snapshot 2") == qemu_sha256(img, "-l snapshot.id=2"));
  CHECK(vdisk_sha256(img, "--snapshot first") != vdisk_sha256(img, "--snapshot second"));
  RunResult r = run_vdisk("hash --snapshot nope " + sh_quote(img));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("first"));
  // A format without internal snapshots refuses the option.
  run_ok("qemu-img convert -O raw " + sh_quote(img) + " " + sh_quote(dir / "x.raw"));
  CHECK(run_vdisk("hash -f raw --snapshot first " + sh_quote(dir / "x.raw")).exit_code == 2);
}

TEST_CASE("qcow2: external data files, dirty, corrupt, encrypted and unknown features", "[qcow2]") {
  require_tool("qemu-img");
  require_tool("qemu-io");
  TempDir dir;
  auto q = [&](const std::string& args) { run_ok("cd " + sh_quote(dir.path()) + " && " + args); };

  // External data file, in the folder: read through the image's L2 tables.
  q("qemu-img create -q -f qcow2 -o data_file=e.data x.qcow2 4M");
  q("qemu-io -f qcow2 -c 'write -P 9 64k 128k' -c 'write -P 4 3M 4k' x.qcow2");
  // QEMU 7.2 looks for the data file relative to its working directory.
  q("qemu-img convert -O raw x.qcow2 x.raw");
  CHECK(vdisk_sha256(dir / "x.qcow2") == coreutils_digest("sha256sum", dir / "x.raw"));
  CHECK(vdisk_info(dir / "x.qcow2").find("details")->find("data_file")->as_string() == "e.data");
  check_same_map(qemu_map_runs("x.qcow2", "", dir.path()), vdisk_map_runs(dir / "x.qcow2"));

  // Dirty (a killed qemu-io under lazy refcounts): read, and said in info.
  q("qemu-img create -q -f qcow2 -o lazy_refcounts=on d.qcow2 4M");
  run("cd " + sh_quote(dir.path()) +
      " && qemu-io -f qcow2 -c 'write -P 1 0 64k' -c 'sigraise 9' d.qcow2 >/dev/null 2>&1");
  REQUIRE((read_file(dir / "d.qcow2")[79] & 1) == 1);  // the dirty bit is set
  CHECK(vdisk_sha256(dir / "d.qcow2") == qemu_sha256(dir / "d.qcow2"));
  CHECK_THAT(vdisk_info(dir / "d.qcow2").find("details")->find("dirty")->as_string(),
             Catch::StartsWith("yes"));

  // Corrupt bit set: refused, naming it.
  q("qemu-img create -q -f qcow2 k.qcow2 1M");
  std::vector<uint8_t> k = read_file(dir / "k.qcow2");
  poke(dir / "k.qcow2", 72, be64(load_be64(k.data() + 72) | 2));
  RunResult r = run_vdisk("info " + sh_quote(dir / "k.qcow2"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("corrupt"));
  CHECK_THAT(r.err, Catch::Contains("k.qcow2"));

  // An unknown incompatible feature: refused, naming the bit.
  q("qemu-img create -q -f qcow2 u.qcow2 1M");
  poke(dir / "u.qcow2", 72, be64(1ull << 20));
  r = run_vdisk("info " + sh_quote(dir / "u.qcow2"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("bit 20"));

  // LUKS: refused with a message that says so. qemu-img times its PBKDF by
  // CPU usage and, on a loaded machine, sometimes fails with "Unable to get
  // accurate CPU usage": the oracle's benchmark, so it gets a few tries.
  RunResult made;
  for (int attempt = 0; attempt < 5; ++attempt) {
    made = run("cd " + sh_quote(dir.path()) +
               " && rm -f l.qcow2 && qemu-img create -q -f qcow2 --object secret,id=s0,data=pw "
               "-o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10 l.qcow2 1M");
    if (made.exit_code == 0 || made.err.find("accurate CPU usage") == std::string::npos) break;
  }
  INFO(made.err);
  REQUIRE(made.exit_code == 0);
  r = run_vdisk("info " + sh_quote(dir / "l.qcow2"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("LUKS"));
}

TEST_CASE("qcow2: what vdisk writes passes qemu-img check and compares identical", "[qcow2]") {
  require_tool("qemu-img");
  TempDir dir;
  const std::string src = dir / "src.img";
  make_sample_disk(src, kDiskSize);
  const std::vector<std::string> option_sets = {
      "",
      "-o compat=0.10",
      "-o cluster_size=512",
      "-o cluster_size=4K",
      "-o cluster_size=2M",
      "-o compression=zlib",
      "-o compression=zlib,compat=0.10,cluster_size=4K",
      "-o compression=zstd",
      "-o compression=zlib,refcount_bits=1",
      "-o refcount_bits=64",
      "-o preallocation=metadata",
      "-o preallocation=full,cluster_size=4K",
      "-o extended_l2=on",
  };
  for (const std::string& o : option_sets) {
    INFO("options: " << o);
    const std::string out = dir / "out.qcow2";
    run_ok("rm -f " + sh_quote(out));
    RunResult r = run_vdisk("convert -O qcow2 " + o + " " + sh_quote(src) + " " + sh_quote(out));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    qemu_check_clean(out);
    qemu_compare_same(src, out);
    Json qi = Json::parse(run_ok("qemu-img info --output json " + sh_quote(out)));
    CHECK(qi.find("virtual-size")->as_u64() == kDiskSize);
    if (o.find("compression") != std::string::npos) {
      // Smaller than the data it holds.
      CHECK(file_size(out) < kDiskSize / 2);
    }
  }
  // Standard output: planned layout, piped into a file.
  for (const std::string o :
       {"", "-o compat=0.10,cluster_size=4K", "-o extended_l2=on", "-o preallocation=metadata"}) {
    INFO("stdout, options: " << o);
    const std::string out = dir / "piped.qcow2";
    RunResult r = run(std::string(VDISK_BIN) + " convert -O qcow2 " + o + " " + sh_quote(src) +
                      " - > " + sh_quote(out));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    qemu_check_clean(out);
    qemu_compare_same(src, out);
  }
  // What cannot stream is refused before anything is written.
  RunResult r = run(std::string(VDISK_BIN) + " convert -O qcow2 -o compression=zlib " +
                    sh_quote(src) + " - > " + sh_quote(dir / "no.qcow2"));
  CHECK(r.exit_code == 2);
  CHECK(file_size(dir / "no.qcow2") == 0);
}

TEST_CASE("qcow2: a child over a backing image stores only what differs", "[qcow2]") {
  require_tool("qemu-img");
  TempDir dir;
  const std::string base_raw = dir / "base.raw";
  make_sample_disk(base_raw, kDiskSize);
  run_ok("qemu-img convert -O qcow2 " + sh_quote(base_raw) + " " + sh_quote(dir / "base.qcow2"));
  // The new content: one cluster changed, data zeroed, data added past
  // where the base had any.
  const std::string src = dir / "new.raw";
  run_ok("cp " + sh_quote(base_raw) + " " + sh_quote(src));
  const std::vector<uint8_t> base = read_file(base_raw);
  uint64_t data_at = 0;
  while (data_at + 65536 < base.size() && is_zero(base.data() + data_at, 65536)) data_at += 65536;
  REQUIRE(data_at + 65536 < base.size());
  write_at(src, data_at + 4096, pattern_bytes(4096, 7));
  write_at(src, data_at + 65536, std::vector<uint8_t>(65536, 0));
  write_at(src, kDiskSize - 65536 * 3, pattern_bytes(65536, 9));
  for (const std::string o : {"", ",compat=0.10", ",extended_l2=on", ",compression=zlib"}) {
    for (const bool to_stdout : {false, true}) {
      if (to_stdout && o == ",compression=zlib") continue;
      INFO("options " << o << (to_stdout ? ", to stdout" : ""));
      const std::string out = dir / "child.qcow2";
      run_ok("rm -f " + sh_quote(out));
      const std::string cmd = std::string(VDISK_BIN) +
                              " convert -O qcow2 -o backing_file=base.qcow2,backing_fmt=qcow2" + o +
                              " " + sh_quote(src) + " " + (to_stdout ? "- > " : "") + sh_quote(out);
      RunResult r = run(to_stdout ? "cd " + sh_quote(dir.path()) + " && " + cmd : cmd);
      INFO(r.err);
      REQUIRE(r.exit_code == 0);
      qemu_check_clean(out);
      qemu_compare_same(src, out);
      Json qi = Json::parse(run_ok("qemu-img info --output json " + sh_quote(out)));
      CHECK(qi.find("backing-filename")->as_string() == "base.qcow2");
      // Only the differing clusters are the child's own.
      uint64_t own = 0;
      for (const MapRun& m : qemu_map_runs(out))
        if (m.depth == 0 && m.type != "unallocated") own += m.length;
      CHECK(own <= 3 * 65536);
      CHECK(own >= 3 * 4096);
      CHECK(vdisk_sha256(out) == coreutils_digest("sha256sum", src));
    }
  }
}

TEST_CASE("qcow2: a 2^50-byte empty source converts in bounded memory and time", "[qcow2]") {
  require_tool("qemu-img");
  TempDir dir;
  // A raw file of 2^50 bytes is beyond ext4; an empty qcow2 of that size is not.
  const std::string src = dir / "huge-src.qcow2";
  run_ok("qemu-img create -q -f qcow2 " + sh_quote(src) + " 1P");
  const std::string out = dir / "huge.qcow2";
  RunResult r = run("/usr/bin/time -f '%M' " + std::string(VDISK_BIN) +
                    " convert --hash none -O qcow2 " + sh_quote(src) + " " + sh_quote(out));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  // Peak RSS in KiB on the last line of stderr: the source's 16 MiB L1 table
  // and the writer's few clusters, never tables sized by the disk.
  const uint64_t kib = std::stoull(r.err.substr(r.err.find_last_of('\n', r.err.size() - 2) + 1));
  CHECK(kib < rss_bound_kib(64 * 1024));
  Json qi = Json::parse(run_ok("qemu-img info --output json " + sh_quote(out)));
  CHECK(qi.find("virtual-size")->as_u64() == (1ull << 50));
  qemu_check_clean(out);
  // 512-byte clusters cannot map it within QEMU's L1 limit: refused by name.
  r = run_vdisk("convert -O qcow2 -o cluster_size=512 " + sh_quote(src) + " " +
                sh_quote(dir / "no.qcow2"));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("32 MiB"));
}

TEST_CASE("qcow2: the L2 cache keeps a sequential reader from loading a table twice", "[qcow2]") {
  require_tool("qemu-img");
  TempDir dir;
  const std::string src = dir / "src.img";
  make_sample_disk(src, kDiskSize);
  const std::string img = dir / "small.qcow2";
  // 4 KiB clusters: an L2 table maps 2 MiB, so the disk has 11 of them.
  run_ok("qemu-img convert -O qcow2 -o cluster_size=4k " + sh_quote(src) + " " + sh_quote(img));
  BlockDevicePtr dev = open_image(img, "qcow2", OpenOptions{});
  std::vector<uint8_t> buf(12345);
  const uint64_t before = qcow2::Qcow2Device::l2_loads();
  for (uint64_t off = 0; off < dev->size(); off += buf.size()) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), dev->size() - off));
    dev->read(off, buf.data(), n);
  }
  // Each L2 table that exists was loaded once (tables of holes are absent).
  CHECK(qcow2::Qcow2Device::l2_loads() - before <= 11);
  std::vector<uint8_t> all(static_cast<size_t>(dev->size()));
  dev->read(0, all.data(), all.size());
  CHECK(all == read_file(src));
}
