// Hostile input, generated from the registry: for every format vdisk can both
// write and read, a valid small image is made with our own writer, then cut
// short and bit-flipped. In-process, every variant must be read with the
// device contract intact (fuzz/device_contract.h: extents tile the disk,
// holes read zeros, out-of-range requests refused) or refused with a
// vdisk::Error of a bad-input kind (see check_outcome); through the CLI it
// must exit 0 or 2 within 5 s, with a one-line message naming the file when
// it is 2.
#include <catch2/catch.hpp>
#include <chrono>

#include "formats/core/error.h"
#include "formats/registry.h"
#include "fuzz/fuzz_exercise.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

// A 3 MiB + 4 KiB disk with data at the start, the middle and the end.
std::vector<uint8_t> make_image(const FormatDescriptor& fmt) {
  MemEnv env;
  CreateRequest req;
  // Named as the format names its files (an E01 writer names its further
  // segments from the first one's extension).
  req.path = "out." + (fmt.extensions.empty() ? std::string("img") : fmt.extensions.front());
  req.virtual_size = (3u << 20) + 4096;
  req.env = &env;
  // The smallest layout a format offers keeps each mutated copy small: a
  // VHDX with its default 32 MiB blocks is a 37 MB file, copied and read
  // once per mutation (this test ran 140 s on a quiet machine).
  std::string small;
  for (const OptionSpec& o : fmt.create_options) {
    if (o.name == "block_size") small = "block_size=1M";
  }
  req.options = parse_options(small, fmt.create_options, fmt.name);
  auto w = fmt.create(req);
  auto a = pattern_bytes(64 * 1024, 1);
  auto b = pattern_bytes(4096, 2);
  w->write(0, a.data(), a.size());
  w->write(1 << 20, b.data(), b.size());
  w->write(3 << 20, b.data(), b.size());
  w->finish();
  const std::vector<uint8_t>* bytes = env.contents(req.path);
  REQUIRE(bytes != nullptr);
  return *bytes;
}

// One way to damage an image, applied on demand (materialising every variant
// at once would hold hundreds of copies of the image in memory).
struct Mutation {
  std::string what;
  enum Kind { kTruncate, kXor, kFill } kind;
  size_t pos;
  uint8_t value;
  size_t len;
  std::vector<uint8_t> apply(const std::vector<uint8_t>& good) const {
    if (kind == kTruncate)
      return std::vector<uint8_t>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(pos));
    std::vector<uint8_t> m = good;
    for (size_t k = pos; k < pos + len && k < m.size(); ++k) {
      if (kind == kXor)
        m[k] ^= value;
      else
        m[k] = value;
    }
    return m;
  }
};

std::vector<Mutation> mutations(const std::vector<uint8_t>& good) {
  std::vector<Mutation> out;
  if (good.size() < 2048) return out;
  for (size_t cut : {size_t{1}, size_t{511}, size_t{512}, size_t{4096}, good.size() / 2,
                     good.size() - 512, good.size() - 1}) {
    if (cut < good.size())
      out.push_back({"truncated to " + std::to_string(cut), Mutation::kTruncate, cut, 0, 0});
  }
  // Flip bytes in the first 64 KiB (headers, tables) and the last 1 KiB
  // (footers), one at a time.
  for (size_t pos = 0; pos < std::min<size_t>(good.size(), 65536); pos += 331) {
    out.push_back({"byte " + std::to_string(pos) + " flipped", Mutation::kXor, pos, 0xA5, 1});
  }
  for (size_t k = 1; k <= 1024; k += 41) {
    size_t pos = good.size() - k;
    out.push_back({"byte " + std::to_string(pos) + " flipped", Mutation::kXor, pos, 0xFF, 1});
  }
  // Extreme values poked into aligned 4- and 8-byte fields of the first 2 KiB.
  for (size_t pos = 0; pos + 8 <= 2048; pos += 24) {
    out.push_back(
        {"bytes " + std::to_string(pos) + "..+8 set to 0xff", Mutation::kFill, pos, 0xFF, 8});
    out.push_back(
        {"byte " + std::to_string(pos + 3) + " set to 0x7f", Mutation::kFill, pos + 3, 0x7F, 1});
  }
  return out;
}

// Guest bytes make_image writes: pseudo-random, so no format can hold them
// in fewer bytes of file.
constexpr size_t kDataBytes = 64 * 1024 + 2 * 4096;

// What a damaged image may become: read (the damage hit nothing that
// matters), or refused as bad input. Never a broken device contract; never
// an I/O error (the bytes are in memory); and an image cut shorter than the
// data it held cannot be read as if it were whole.
void check_outcome(const Mutation& mut, const fuzz::Outcome& o) {
  INFO(o.describe());
  CHECK_FALSE(o.violation());
  if (o.refused()) {
    CHECK(o.error_kind != ErrorKind::kIo);
    CHECK(o.error_kind != ErrorKind::kInterrupted);
    CHECK(o.error_kind != ErrorKind::kMismatch);
  }
  if (mut.kind == Mutation::kTruncate && mut.pos < kDataBytes) {
    CHECK((o.refused(ErrorKind::kNotThisFormat) || o.refused(ErrorKind::kCorrupt)));
  }
}

}  // namespace

TEST_CASE("truncated, bit-flipped and poked images never crash the readers", "[hostile]") {
  size_t formats = 0;
  for (const FormatDescriptor* fmt : builtin_formats()) {
    if (!fmt->create || !fmt->open || fmt->name == "raw") continue;
    ++formats;
    std::vector<uint8_t> good = make_image(*fmt);
    for (const Mutation& mut : mutations(good)) {
      std::vector<uint8_t> bytes = mut.apply(good);
      INFO(fmt->name << ": " << mut.what);
      auto t0 = std::chrono::steady_clock::now();
      check_outcome(mut, fuzz::exercise_input(fmt->name, bytes.data(), bytes.size()));
      if (mut.pos % 3 == 0) {
        const fuzz::Outcome probed = fuzz::exercise_input("probe", bytes.data(), bytes.size());
        INFO("probe: " << probed.describe());
        CHECK_FALSE(probed.violation());
      }
      CHECK(std::chrono::steady_clock::now() - t0 < kHangLimit);
    }
  }
  // Every registered format that can write and read is exercised.
  INFO("formats exercised: " << formats);
  CHECK(formats >= 4);
}

TEST_CASE("damaged images exit 2 from the CLI with a one-line message", "[hostile][cli]") {
  TempDir dir;
  for (const FormatDescriptor* fmt : builtin_formats()) {
    if (!fmt->create || !fmt->open || fmt->name == "raw") continue;
    std::vector<uint8_t> good = make_image(*fmt);
    std::string ext = fmt->extensions.empty() ? fmt->name : fmt->extensions.front();
    int i = 0;
    for (const Mutation& mut : mutations(good)) {
      if (i++ % 9 != 0) continue;  // a sample keeps the CLI part quick
      std::string path = dir / ("bad-" + fmt->name + "-" + std::to_string(i) + "." + ext);
      write_file(path, mut.apply(good));
      INFO(fmt->name << ": " << mut.what);
      auto t0 = std::chrono::steady_clock::now();
      RunResult r = run(kHangTimeout + std::string(VDISK_BIN) + " hash -f " + fmt->name + " " +
                        sh_quote(path));
      CHECK(std::chrono::steady_clock::now() - t0 < kHangLimit);
      CHECK((r.exit_code == 0 || r.exit_code == 2));
      if (r.exit_code == 2) {
        CHECK(r.err.rfind("vdisk: ", 0) == 0);
        CHECK_THAT(r.err, Catch::Contains(path));
        CHECK(std::count(r.err.begin(), r.err.end(), '\n') <= 3);  // the error (+ warnings)
      }
    }
  }
}
