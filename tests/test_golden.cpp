// Golden output of `vdisk info` and `vdisk map` (human and JSON) for a few
// fixed images, compared byte for byte with testdata/golden/ (how each image
// is made and what was checked: testdata/golden/README.md). Our own images are
// made in-process by the writers under a MemEnv with a fixed clock and seed,
// so they are the same bytes on every run; the VMDK chain is made by qemu-img
// and qemu-io. Host-dependent text is normalised: the image folder is left
// out of paths, and "disk size" / actual_size (the host's st_blocks) become
// "<host>".
//
// Each run also checks the images against qemu-img (virtual size, and the
// ranges `qemu-img map` calls data against vdisk's data extents), the oracle
// the golden text was checked against when it was made.
//
// UPDATE_GOLDEN=1 rewrites the golden files instead of comparing.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>

#include "formats/core/file.h"
#include "formats/core/json.h"
#include "formats/registry.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

constexpr uint64_t kKiB = 1024, kMiB = 1024 * 1024;

const std::string kGoldenDir = std::string(VDISK_SOURCE_DIR) + "/testdata/golden";

// One of our images: a format, its options and its guest content, written
// like the converter writes (data, then declared zero runs).
struct OurImage {
  std::string name;  // file name in the image folder (the first part of a split set)
  std::string format;
  std::string options;
  std::string qemu_format;  // empty: qemu-img cannot read it (see split_parts)
  // Whether `qemu-img map` reports this format's allocation. qemu's VHDX
  // driver answers no block status: qemu-img 7.2 maps a whole VHDX as data.
  bool qemu_maps = true;
  // A raw image cut into parts of this many bytes named NAME with the last
  // three characters counting up (.001, .002, …): a split set.
  uint64_t split_parts = 0;
};

// The guest content every image of ours holds: 4 MiB + 64 KiB with data at
// the start, a declared zero run, data at 1 MiB and 2.5 MiB, a hole, and data
// in the last 4 KiB.
constexpr uint64_t kSize = 4 * kMiB + 64 * kKiB;
struct Piece {
  uint64_t offset, length;
  bool zero;
};
const Piece kPieces[] = {
    {0, 64 * kKiB, false},
    {64 * kKiB, 192 * kKiB, true},
    {kMiB, 192 * kKiB, false},
    {2 * kMiB + 512 * kKiB, 4 * kKiB, false},
    {kSize - 4 * kKiB, 4 * kKiB, false},
};

// Writes the image's files into `dir` (full files, not sparse: what the
// formats' own tables say is what map shows).
void make_our_image(const OurImage& img, const std::string& dir) {
  MemEnv env;
  env.set_clock(1700000000);  // 2023-11-14T22:13:20Z
  env.seed_random(2024);
  const FormatDescriptor& f = require_format(img.format);
  CreateRequest req;
  const std::string base = img.split_parts ? "whole.raw" : img.name;
  req.path = "img/" + base;
  req.virtual_size = kSize;
  req.env = &env;
  req.options = parse_options(img.options, f.create_options, f.name);
  std::unique_ptr<ImageWriter> w = f.create(req);
  for (const Piece& p : kPieces) {
    if (p.zero) {
      w->write_zeroes(p.offset, p.length);
    } else {
      std::vector<uint8_t> b =
          pattern_bytes(static_cast<size_t>(p.length), static_cast<uint32_t>(p.offset / kKiB));
      w->write(p.offset, b.data(), b.size());
    }
  }
  w->finish();
  if (!img.split_parts) {
    for (const std::string& out : w->output_files())
      write_file(dir + "/" + path_basename(out), *env.contents(out));
    return;
  }
  const std::vector<uint8_t>& whole = *env.contents(req.path);
  const std::string stem = img.name.substr(0, img.name.size() - 3);
  for (uint64_t at = 0, n = 1; at < whole.size(); at += img.split_parts, ++n) {
    char num[8];
    std::snprintf(num, sizeof num, "%03llu", static_cast<unsigned long long>(n));
    const auto first = whole.begin() + static_cast<std::ptrdiff_t>(at);
    const uint64_t len = std::min<uint64_t>(img.split_parts, whole.size() - at);
    write_file(dir + "/" + stem + num,
               std::vector<uint8_t>(first, first + static_cast<std::ptrdiff_t>(len)));
  }
}

// The qemu-img/qemu-io chain: base.vmdk (4 MiB) under child.vmdk, each with
// its own writes, and a zeroed range in the child that hides base data.
void make_qemu_chain(const std::string& dir) {
  require_tool("qemu-img");
  require_tool("qemu-io");
  auto q = [&](const std::string& args) { run_ok("cd " + sh_quote(dir) + " && " + args); };
  q("qemu-img create -q -f vmdk base.vmdk 4M");
  q("qemu-io -f vmdk -c 'write -P 1 0 128k' -c 'write -P 2 2M 64k' base.vmdk >/dev/null");
  q("qemu-img create -q -f vmdk -b base.vmdk -F vmdk chain.vmdk");
  q("qemu-io -f vmdk -c 'write -P 3 64k 64k' -c 'write -P 4 3M 64k' chain.vmdk >/dev/null");
}

// Text replaced by a name for it ("5e133096" -> "<cid of base.vmdk>").
using Replacements = std::vector<std::pair<std::string, std::string>>;

void replace_all(std::string& text, const std::string& from, const std::string& to) {
  for (size_t at = 0; (at = text.find(from, at)) != std::string::npos; at += to.size())
    text.replace(at, from.size(), to);
}

// Host-dependent text out: the folder, the host's allocation, and `more`.
std::string normalise(std::string text, const std::string& dir, const Replacements& more = {}) {
  replace_all(text, dir + "/", "");
  replace_all(text, dir, "");
  for (const auto& [from, to] : more) replace_all(text, from, to);
  text = std::regex_replace(text, std::regex("(disk size: )[^\n]*"), "$1<host>");
  text = std::regex_replace(text, std::regex("(\"actual_size\": )[0-9]+"), "$1\"<host>\"");
  return text;
}

// `vdisk ARGS` run in `dir`, normalised.
std::string vdisk_output(const std::string& dir, const std::string& args,
                         const Replacements& more = {}) {
  RunResult r = run("cd " + sh_quote(dir) + " && " + VDISK_BIN + " " + args);
  INFO("vdisk " << args << "\nstderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  return normalise(r.out, dir, more);
}

// Compares with testdata/golden/FILE, or rewrites it under UPDATE_GOLDEN=1.
void check_golden(const std::string& file, const std::string& got) {
  const std::string path = kGoldenDir + "/" + file;
  if (const char* u = std::getenv("UPDATE_GOLDEN"); u && std::string(u) == "1") {
    std::ofstream(path, std::ios::binary) << got;
    return;
  }
  std::ifstream in(path, std::ios::binary);
  INFO("golden file " << path << " (UPDATE_GOLDEN=1 rewrites it; see testdata/golden/README.md)");
  REQUIRE(in.good());
  std::stringstream want;
  want << in.rdbuf();
  if (got == want.str()) return;
  // The first line that differs, then both texts.
  std::istringstream a(got), b(want.str());
  std::string la, lb;
  int line = 1;
  while (std::getline(a, la) && std::getline(b, lb) && la == lb) ++line;
  INFO("first difference at line " << line << ":\n  got:  " << la << "\n  want: " << lb);
  CHECK(got == want.str());
}

void check_goldens(const std::string& dir, const std::string& image, const std::string& stem,
                   const Replacements& more = {}) {
  INFO("image " << image);
  check_golden(stem + ".info.txt", vdisk_output(dir, "info " + sh_quote(image), more));
  check_golden(stem + ".info.json",
               vdisk_output(dir, "info --output json " + sh_quote(image), more));
  check_golden(stem + ".map.txt", vdisk_output(dir, "map " + sh_quote(image), more));
  check_golden(stem + ".map.json", vdisk_output(dir, "map --output json " + sh_quote(image), more));
}

// Data ranges and the layer holding each, adjacent ones merged.
struct Range {
  uint64_t start = 0, end = 0, depth = 0;
  bool operator==(const Range&) const = default;
};
using Ranges = std::vector<Range>;
void add_range(Ranges& r, const Json& e) {
  const uint64_t start = e.find("start")->as_u64(), depth = e.find("depth")->as_u64();
  if (!r.empty() && r.back().end == start && r.back().depth == depth)
    r.back().end += e.find("length")->as_u64();
  else
    r.push_back({start, start + e.find("length")->as_u64(), depth});
}

// The oracle: qemu-img's virtual size, its reading of the content against
// `expected_raw` (qemu-img compare), where qemu-img maps the format the
// ranges it calls data (and their depth) against vdisk's data extents, and
// for VMDK the descriptor fields qemu-img shows (CIDs, create type, grain).
void check_against_qemu(const std::string& dir, const std::string& image,
                        const std::string& qemu_format, bool qemu_maps,
                        const std::string& expected_raw) {
  INFO("image " << image << " against qemu-img");
  const std::string path = sh_quote(dir + "/" + image);
  const Json qi = Json::parse(run_ok("qemu-img info --output json -f " + qemu_format + " " + path));
  const Json vi = Json::parse(vdisk_output(dir, "info --output json " + sh_quote(image)));
  CHECK(qi.find("virtual-size")->as_u64() == vi.find("virtual_size")->as_u64());
  if (qemu_format == "vmdk") {
    const Json& q = *qi.find("format-specific")->find("data");
    const Json& v = *vi.find("details");
    CHECK(q.find("cid")->as_u64() == std::stoull(v.find("cid")->as_string(), nullptr, 16));
    if (const Json* parent = q.find("parent-cid"); parent && v.find("parent_cid"))
      CHECK(parent->as_u64() == std::stoull(v.find("parent_cid")->as_string(), nullptr, 16));
    CHECK(q.find("create-type")->as_string() == v.find("create_type")->as_string());
    CHECK(qi.find("cluster-size")->as_u64() == v.find("grain_size")->as_u64());
    if (const Json* backing = qi.find("backing-filename"))
      CHECK(backing->as_string() == vi.find("parent")->as_string());
  }
  if (!expected_raw.empty())
    run_ok("qemu-img compare -q -f " + qemu_format + " -F raw " + path + " " +
           sh_quote(expected_raw));
  if (!qemu_maps) return;
  const Json qm = Json::parse(run_ok("qemu-img map --output json -f " + qemu_format + " " + path));
  const Json vm = Json::parse(vdisk_output(dir, "map --output json " + sh_quote(image)));
  Ranges qemu, ours;
  for (const Json& e : qm.as_array())
    if (e.find("data")->as_bool()) add_range(qemu, e);
  for (const Json& e : vm.as_array())
    if (e.find("type")->as_string() == "data") add_range(ours, e);
  REQUIRE(qemu.size() == ours.size());
  for (size_t i = 0; i < qemu.size(); ++i) {
    INFO("data range " << i);
    CHECK(qemu[i].start == ours[i].start);
    CHECK(qemu[i].end == ours[i].end);
    CHECK(qemu[i].depth == ours[i].depth);
  }
}

const OurImage kOurImages[] = {
    {"monolithic-sparse.vmdk", "vmdk", "subformat=monolithicSparse", "vmdk", true, 0},
    {"dynamic.vhd", "vhd", "subformat=dynamic,block_size=1M", "vpc", true, 0},
    {"dynamic.vhdx", "vhdx", "subformat=dynamic,block_size=1M", "vhdx", false, 0},
    {"dynamic.vdi", "vdi", "subformat=dynamic", "vdi", true, 0},
    {"split.001", "raw", "", "", false, 1536 * kKiB},
};

}  // namespace

TEST_CASE("golden: info and map of images our writers make", "[golden]") {
  TempDir dir;
  // The guest content as a plain file, written here from the same pieces.
  const std::string expected = dir / "expected.raw";
  write_file(expected, std::vector<uint8_t>(static_cast<size_t>(kSize), 0));
  for (const Piece& p : kPieces) {
    if (!p.zero)
      write_at(
          expected, p.offset,
          pattern_bytes(static_cast<size_t>(p.length), static_cast<uint32_t>(p.offset / kKiB)));
  }
  for (const OurImage& img : kOurImages) {
    INFO("image " << img.name);
    make_our_image(img, dir.path());
    std::string stem = img.name;
    std::replace(stem.begin(), stem.end(), '.', '-');
    check_goldens(dir.path(), img.name, stem);
    if (!img.qemu_format.empty()) {
      require_tool("qemu-img");
      check_against_qemu(dir.path(), img.name, img.qemu_format, img.qemu_maps, expected);
    }
  }
  // The split set: qemu-img cannot read one, so its parts joined by cat are
  // the oracle: the same content as the expected file, by coreutils' hash.
  run_ok("cd " + sh_quote(dir.path()) + " && cat split.001 split.002 split.003 > joined.raw");
  CHECK_FALSE(file_exists(dir / "split.004"));
  const std::string sha = coreutils_digest("sha256sum", expected);
  CHECK(coreutils_digest("sha256sum", dir / "joined.raw") == sha);
  CHECK(parse_tagged_digest(vdisk_output(dir.path(), "hash --algo sha256 split.001"), "SHA256") ==
        sha);
}

TEST_CASE("golden: info and map of a two-level VMDK chain made by qemu-img", "[golden]") {
  TempDir dir;
  make_qemu_chain(dir.path());
  // qemu-img picks a random CID for each image: each is replaced by a name
  // for it, so the golden text still shows that the child's parentCID is
  // its base's CID.
  auto cid = [&](const std::string& image) {
    const Json info = Json::parse(vdisk_output(dir.path(), "info --output json " + image));
    return info.find("details")->find("cid")->as_string();
  };
  const std::string base_cid = cid("base.vmdk"), chain_cid = cid("chain.vmdk");
  REQUIRE(base_cid.size() == 8);
  REQUIRE(chain_cid.size() == 8);
  REQUIRE(base_cid != chain_cid);
  check_goldens(dir.path(), "chain.vmdk", "chain-vmdk",
                {{base_cid, "<cid of base.vmdk>"}, {chain_cid, "<cid of chain.vmdk>"}});
  check_against_qemu(dir.path(), "chain.vmdk", "vmdk", true, "");
}
