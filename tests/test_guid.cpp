// Unit tests of formats/core/guid: byte orders and text checked against values
// published in the specifications (UEFI appendix A / the GPT type GUID table,
// RFC 4122), round trips, parse rejections and random GUIDs' version bits.
#include <catch2/catch.hpp>
#include <set>

#include "formats/core/file.h"
#include "formats/core/guid.h"

using namespace vdisk;

namespace {

Guid::Bytes bytes(std::initializer_list<int> v) {
  Guid::Bytes b{};
  size_t i = 0;
  for (int x : v) b[i++] = static_cast<uint8_t>(x);
  REQUIRE(i == 16);
  return b;
}

}  // namespace

TEST_CASE("GPT type GUIDs decode from the bytes the UEFI spec documents", "[guid]") {
  // UEFI spec, GPT partition type table: "Linux filesystem data" and the EFI
  // System Partition, with their on-disk (mixed-endian) bytes.
  const auto linux_disk = bytes({0xAF, 0x3D, 0xC6, 0x0F, 0x83, 0x84, 0x72, 0x47, 0x8E, 0x79, 0x3D,
                                 0x69, 0xD8, 0x47, 0x7D, 0xE4});
  const Guid g = Guid::decode(linux_disk.data(), GuidByteOrder::kMixedEndian);
  CHECK(g.to_string({.upper_case = true}) == "0FC63DAF-8483-4772-8E79-3D69D8477DE4");
  CHECK(g.to_string() == "0fc63daf-8483-4772-8e79-3d69d8477de4");
  CHECK(g.to_string({.braces = true}) == "{0fc63daf-8483-4772-8e79-3d69d8477de4}");
  CHECK(g.encoded(GuidByteOrder::kMixedEndian) == linux_disk);
  CHECK(Guid::parse("0FC63DAF-8483-4772-8E79-3D69D8477DE4") == g);

  const auto esp_disk = bytes({0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00,
                               0xA0, 0xC9, 0x3E, 0xC9, 0x3B});
  const auto esp = Guid::parse("C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
  REQUIRE(esp);
  CHECK(esp->encoded(GuidByteOrder::kMixedEndian) == esp_disk);
  CHECK(Guid::decode(esp_disk.data(), GuidByteOrder::kMixedEndian) == *esp);
}

TEST_CASE("RFC 4122's example UUID is stored in network order big-endian", "[guid]") {
  // RFC 4122 section 3: urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6, a
  // version 1 UUID of the RFC 4122 variant.
  const auto net = bytes({0xf8, 0x1d, 0x4f, 0xae, 0x7d, 0xec, 0x11, 0xd0, 0xa7, 0x65, 0x00, 0xa0,
                          0xc9, 0x1e, 0x6b, 0xf6});
  const Guid g = Guid::decode(net.data(), GuidByteOrder::kBigEndian);
  CHECK(g.to_string() == "f81d4fae-7dec-11d0-a765-00a0c91e6bf6");
  CHECK(g.bytes() == net);
  CHECK(g.encoded(GuidByteOrder::kBigEndian) == net);
  CHECK(g.version() == 1);
  CHECK(g.is_rfc4122_variant());
  CHECK_FALSE(g.is_nil());
  // The same value, mixed-endian: only the first three fields turn round.
  CHECK(g.encoded(GuidByteOrder::kMixedEndian) ==
        bytes({0xae, 0x4f, 0x1d, 0xf8, 0xec, 0x7d, 0xd0, 0x11, 0xa7, 0x65, 0x00, 0xa0, 0xc9, 0x1e,
               0x6b, 0xf6}));
}

TEST_CASE("GUID text and bytes round-trip in both byte orders", "[guid]") {
  for (int i = 0; i < 32; ++i) {
    const Guid g = Guid::random(Env::posix());
    CHECK(Guid::parse(g.to_string()) == g);
    CHECK(Guid::parse(g.to_string({.upper_case = true, .braces = true})) == g);
    for (auto order : {GuidByteOrder::kMixedEndian, GuidByteOrder::kBigEndian}) {
      const auto b = g.encoded(order);
      CHECK(Guid::decode(b.data(), order) == g);
    }
  }
  CHECK(Guid().is_nil());
  CHECK(Guid().to_string() == "00000000-0000-0000-0000-000000000000");
  CHECK(Guid::parse("00000000-0000-0000-0000-000000000000")->is_nil());
}

TEST_CASE("GUID parse refuses malformed text", "[guid]") {
  for (const char* bad :
       {"", "0fc63daf-8483-4772-8e79-3d69d8477de", "0fc63daf-8483-4772-8e79-3d69d8477de44",
        "0fc63daf84834772-8e79-3d69d8477de4-", "0fc63daf-8483-4772-8e79-3d69d8477dg4",
        "{0fc63daf-8483-4772-8e79-3d69d8477de4", "0fc63daf-8483-4772-8e79-3d69d8477de4}",
        "(0fc63daf-8483-4772-8e79-3d69d8477de4)", "0fc63daf-8483-4772-8e793-d69d8477de4",
        "0fc63daf 8483 4772 8e79 3d69d8477de4"}) {
    INFO(bad);
    CHECK_FALSE(Guid::parse(bad));
  }
  static_assert(Guid::parse("2DC27766-F623-4200-9D64-115E9BFD4A08").has_value());
  static_assert(!Guid::parse("2DC27766-F623-4200-9D64-115E9BFD4A0").has_value());
}

TEST_CASE("random GUIDs are version 4, RFC 4122 variant, and differ", "[guid]") {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    const Guid g = Guid::random(Env::posix());
    CHECK(g.version() == 4);
    CHECK(g.is_rfc4122_variant());
    // Where the bits land on disk: VHDX and VDI (mixed-endian) have the
    // version in the high nibble of byte 7, VHD (big-endian) of byte 6.
    CHECK((g.encoded(GuidByteOrder::kMixedEndian)[7] >> 4) == 4);
    CHECK((g.encoded(GuidByteOrder::kBigEndian)[6] >> 4) == 4);
    CHECK((g.encoded(GuidByteOrder::kMixedEndian)[8] & 0xc0) == 0x80);
    seen.insert(g.to_string());
  }
  CHECK(seen.size() == 200);
  // random_u32 covers both halves of its range over many draws.
  bool high = false, low = false;
  for (int i = 0; i < 64; ++i) {
    const uint32_t v = Env::posix().random_u32();
    (v >= 0x80000000u ? high : low) = true;
  }
  CHECK(high);
  CHECK(low);
}

TEST_CASE("MemEnv's clock and random source are deterministic and settable", "[guid]") {
  MemEnv a, b;
  CHECK(a.now_unix() == MemEnv::kDefaultClock);
  a.set_clock(946684800);
  CHECK(a.now_unix() == 946684800);
  // One seed, one stream: the same GUIDs in two environments, different ones
  // from another seed, and no two alike within a stream.
  a.seed_random(7);
  b.seed_random(7);
  std::set<std::string> seen;
  for (int i = 0; i < 50; ++i) {
    const Guid g = Guid::random(a);
    CHECK(g == Guid::random(b));
    CHECK(g.version() == 4);
    seen.insert(g.to_string());
  }
  CHECK(seen.size() == 50);
  a.seed_random(7);
  b.seed_random(8);
  CHECK_FALSE(Guid::random(a) == Guid::random(b));
  // splitmix64 from seed 0, its first output 0xe220a8397b1dcdaf (the
  // reference implementation's), little-endian byte by byte.
  MemEnv c;
  uint8_t first[8];
  c.random_bytes(first, sizeof first);
  const uint8_t expect[8] = {0xaf, 0xcd, 0x1d, 0x7b, 0x39, 0xa8, 0x20, 0xe2};
  CHECK(std::equal(first, first + 8, expect));
}
