// The checks of fuzz/device_contract.h can fail: fake devices that each break
// one promise of block_device.h are caught, with a message naming it, and an
// honest device passes. Without this, a fuzz run or a regression replay that
// reports nothing could mean the checks check nothing.
#include <catch2/catch.hpp>
#include <cstring>
#include <functional>

#include "formats/core/error.h"
#include "fuzz/device_contract.h"
#include "fuzz/fuzz_exercise.h"
#include "fuzz/fuzz_text_targets.h"

using namespace vdisk;

namespace {

// A 64 KiB device: data in [0, 16 KiB) (bytes 0x5a), zero in [16, 32 KiB),
// unallocated after. Each hook, when set, replaces one honest answer.
class FakeDevice final : public BlockDevice {
 public:
  static constexpr uint64_t kSize = 64 * 1024;
  std::function<Extent(uint64_t, uint64_t)> status_hook;
  std::function<void(uint64_t, uint8_t*, size_t)> read_hook;
  std::function<ImageInfo()> info_hook;

  uint64_t size() const override { return kSize; }
  ImageInfo info() const override {
    if (info_hook) return info_hook();
    ImageInfo i;
    i.path = "fake";
    i.format = "fake";
    i.virtual_size = kSize;
    return i;
  }
  std::string label() const override { return "fake"; }

 protected:
  void do_read(uint64_t offset, void* buf, size_t len) const override {
    auto* p = static_cast<uint8_t*>(buf);
    for (size_t i = 0; i < len; ++i) p[i] = offset + i < 16384 ? 0x5a : 0;
    if (read_hook) read_hook(offset, p, len);
  }
  Extent do_block_status(uint64_t offset, uint64_t len) const override {
    if (status_hook) return status_hook(offset, len);
    return honest(offset, len);
  }

 public:
  static Extent honest(uint64_t offset, uint64_t len) {
    const uint64_t end = offset < 16384 ? 16384 : offset < 32768 ? 32768 : kSize;
    const ExtentType t = offset < 16384   ? ExtentType::kData
                         : offset < 32768 ? ExtentType::kZero
                                          : ExtentType::kUnallocated;
    return {std::min(len, end - offset), t, 0};
  }
};

std::string violation(const BlockDevice& dev, fuzz::DeviceCheck c = {}) {
  try {
    fuzz::check_device(dev, c);
  } catch (const fuzz::ContractViolation& v) {
    return v.what();
  }
  return "";
}

}  // namespace

TEST_CASE("device contract: an honest device passes", "[contract]") {
  FakeDevice dev;
  CHECK(violation(dev) == "");
  std::vector<uint8_t> expected(FakeDevice::kSize, 0);
  std::memset(expected.data(), 0x5a, 16384);
  fuzz::DeviceCheck c;
  c.expected = expected;
  CHECK(violation(dev, c) == "");
}

TEST_CASE("device contract: each broken promise is caught and named", "[contract]") {
  SECTION("a data extent that overlaps a zero answer") {
    // From 0 it says 32 KiB of data, but asked at 16 KiB it says zero.
    FakeDevice dev;
    dev.status_hook = [](uint64_t off, uint64_t len) {
      if (off == 0) return Extent{std::min<uint64_t>(len, 32768), ExtentType::kData, 0};
      return FakeDevice::honest(off, len);
    };
    CHECK_THAT(violation(dev), Catch::Contains("overlapping answers"));
  }
  SECTION("a shorter question about the same start gets another type") {
    FakeDevice dev;
    dev.status_hook = [](uint64_t off, uint64_t len) {
      if (off == 32768 && len < FakeDevice::kSize - 32768 && len > 1)
        return Extent{len, ExtentType::kZero, 0};
      return FakeDevice::honest(off, len);
    };
    CHECK_THAT(violation(dev), Catch::Contains("to a shorter one"));
  }
  SECTION("a zero extent that reads non-zero") {
    FakeDevice dev;
    dev.read_hook = [](uint64_t off, uint8_t* p, size_t len) {
      if (off <= 20000 && off + len > 20000) p[20000 - off] = 7;
    };
    CHECK_THAT(violation(dev), Catch::Contains("byte 20000 of the zero extent") &&
                                   Catch::Contains("reads 7, not 0"));
  }
  SECTION("an unallocated extent that reads non-zero") {
    FakeDevice dev;
    dev.read_hook = [](uint64_t off, uint8_t* p, size_t len) {
      if (off + len == FakeDevice::kSize) p[len - 1] = 1;
    };
    CHECK_THAT(violation(dev), Catch::Contains("unallocated extent") && Catch::Contains("not 0"));
  }
  SECTION("data that differs from the source") {
    FakeDevice dev;
    std::vector<uint8_t> expected(FakeDevice::kSize, 0);
    std::memset(expected.data(), 0x5a, 16384);
    expected[100] = 0x5b;
    fuzz::DeviceCheck c;
    c.expected = expected;
    CHECK_THAT(violation(dev, c), Catch::Contains("byte 100") && Catch::Contains("source has 91"));
  }
  SECTION("reads that depend on how they are cut") {
    FakeDevice dev;
    dev.read_hook = [](uint64_t off, uint8_t* p, size_t len) {
      if (off == 0 && len > 4096) p[5000] ^= 1;  // wrong only in a long read
    };
    CHECK_THAT(violation(dev), Catch::Contains("differs from the same read in pieces"));
  }
  SECTION("info() that throws") {
    FakeDevice dev;
    dev.info_hook = []() -> ImageInfo {
      throw Error(ErrorKind::kCorrupt, "fake", 0, "cannot describe myself");
    };
    CHECK_THAT(violation(dev), Catch::Contains("info() threw for an opened device"));
  }
  SECTION("info() that disagrees with size()") {
    FakeDevice dev;
    dev.info_hook = [] {
      ImageInfo i;
      i.virtual_size = 512;
      return i;
    };
    CHECK_THAT(violation(dev), Catch::Contains("info() says virtual size 512"));
  }
  SECTION("a source of another size") {
    FakeDevice dev;
    std::vector<uint8_t> expected(1000, 0);
    fuzz::DeviceCheck c;
    c.expected = expected;
    CHECK_THAT(violation(dev, c), Catch::Contains("the source has 1000 bytes"));
  }
}

TEST_CASE("device contract: an error from the device is bad input, not a violation", "[contract]") {
  FakeDevice dev;
  dev.read_hook = [](uint64_t off, uint8_t*, size_t) {
    if (off >= 32768) throw Error(ErrorKind::kCorrupt, "fake", off, "table entry out of range");
  };
  const fuzz::Outcome o = fuzz::judge([&] { fuzz::check_device(dev); });
  CHECK(o.refused(ErrorKind::kCorrupt));
  CHECK_THAT(o.describe(),
             Catch::StartsWith("refused corrupt: ") && Catch::Contains("table entry out of range"));
  const fuzz::Outcome v = fuzz::judge([] { throw fuzz::ContractViolation("x"); });
  CHECK(v.violation());
  CHECK(v.describe() == "VIOLATION: x");
}

TEST_CASE("fuzz exercise: outcomes of whole inputs", "[contract]") {
  // A raw disk of 4 KiB is read; an empty file is no VHD; an unknown target
  // is a violation of the fuzz setup itself.
  std::vector<uint8_t> disk(4096, 0x11);
  CHECK(fuzz::exercise_input("raw", disk.data(), disk.size()).accepted());
  CHECK(fuzz::exercise_input("probe", disk.data(), disk.size()).accepted());
  const fuzz::Outcome vhd = fuzz::exercise_input("vhd", disk.data(), 0);
  CHECK(vhd.refused());
  CHECK_FALSE(vhd.violation());
  CHECK(fuzz::exercise_input("no-such-format", disk.data(), disk.size()).violation());
  // The text targets: a mapfile that parses, and one that does not.
  const std::string map = "0x0 +\n0x0 0x1000 +\n";
  CHECK(fuzz::exercise_ddrescue_map_input(reinterpret_cast<const uint8_t*>(map.data()), map.size())
            .accepted());
  const std::string bad = "0x0 +\n0x0 0x1000 x\n";
  CHECK(fuzz::exercise_ddrescue_map_input(reinterpret_cast<const uint8_t*>(bad.data()), bad.size())
            .refused(ErrorKind::kCorrupt));
}
